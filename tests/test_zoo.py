"""Built-in architectures: build, run, export to ONNX with matching outputs, scale with width, and
load back from a bare state dict."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from workbench.archs import ARCHITECTURES, match_architecture
from workbench.loading import load_model, model_from_module

ZOO_NAMES = sorted(ARCHITECTURES)


def test_every_architecture_the_issue_names_is_built_in():
    assert {
        "lenet5",
        "mobilenet_v2",
        "mobilenet_v3_small",
        "squeezenet",
        "shufflenet_v2",
        "efficientnet_lite",
        "mobilevit_small",
        "ds_cnn",
    } <= set(ZOO_NAMES)


@pytest.mark.parametrize("name", ZOO_NAMES)
def test_architecture_exports_and_matches_onnxruntime(name):
    import onnxruntime as ort

    torch.manual_seed(0)
    arch = ARCHITECTURES[name]
    module = arch.build().eval()
    shape = arch.default_input_shape({})
    x = torch.randn(2, *shape[1:])
    with torch.no_grad():
        expected = module(x).numpy()
    model = model_from_module(module, name, shape)
    session = ort.InferenceSession(model.onnx_bytes(), providers=["CPUExecutionProvider"])
    got = session.run(None, {session.get_inputs()[0].name: x.numpy()})[0]
    np.testing.assert_allclose(got, expected, rtol=1e-3, atol=1e-4)


@pytest.mark.parametrize("name", [n for n in ZOO_NAMES if n != "lenet5"])
def test_width_multiplier_scales_the_network(name):
    arch = ARCHITECTURES[name]
    small, full = arch.build(width=0.5), arch.build(width=1.0)
    assert sum(p.numel() for p in small.parameters()) < 0.8 * sum(p.numel() for p in full.parameters())


@pytest.mark.parametrize("name", ["mobilenet_v3_small", "ds_cnn", "squeezenet"])
def test_bare_state_dict_is_recognised(tmp_path, name):
    module = ARCHITECTURES[name].build(num_classes=7)
    found = match_architecture(module.state_dict())
    assert found is not None and found[0].name == name and found[1]["num_classes"] == 7
    path = tmp_path / f"{name}.pth"
    torch.save(module.state_dict(), path)
    model = load_model(path, remember_shapes=False)
    assert (
        model.arch.name == name
        and model.input_shapes.shapes["input"][1:] == ARCHITECTURES[name].default_input_shape({})[1:]
    )


def test_cli_trains_a_built_in_architecture_as_a_starting_point(tmp_path, capsys):
    from workbench.cli import main
    from workbench.datasets import load_dataset, mnist_sample_ref
    from workbench.evaluate import measure

    out = tmp_path / "squeezenet.pt"
    assert (
        main(["train", "squeezenet", "--data", "mnist-sample", "--epochs", "3", "--width", "0.5", "-o", str(out)]) == 0
    )
    model = load_model(out)
    assert model.arch.name == "squeezenet" and model.input_shapes.shapes["input"] == (1, 1, 28, 28)
    assert measure(model, dataset=load_dataset(mnist_sample_ref("test", limit=300)), runs=0).accuracy > 0.5
    assert "wrote" in capsys.readouterr().out
