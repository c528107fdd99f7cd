"""Model import: every supported format, the pickle refusal, and each kind of bad input."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from workbench.errors import InputShapeError, ModelLoadError, UntrustedPickleError
from workbench.loading import load_model


def _listing(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*")}


def test_load_onnx_reports_inputs_and_dynamic_batch(mlp_onnx):
    model = load_model(mlp_onnx)
    assert model.formats == {"onnx"}
    assert [s.name for s in model.inputs] == ["x"]
    assert model.inputs[0].shape == ("N", 16)
    assert model.input_shapes.shapes == {"x": (1, 16)} and model.input_shapes.source == "default"


def test_load_onnx_with_external_data(tmp_path, mlp_onnx):
    import onnx

    proto = onnx.load(mlp_onnx)
    target = tmp_path / "ext" / "model.onnx"
    target.parent.mkdir()
    onnx.save(onnx.load(mlp_onnx), target, save_as_external_data=True, location="weights.bin", size_threshold=0)
    assert (target.parent / "weights.bin").stat().st_size > 0
    model = load_model(target)
    weights = {i.name: onnx.numpy_helper.to_array(i) for i in model.onnx_proto.graph.initializer}
    np.testing.assert_array_equal(weights["w0"], onnx.numpy_helper.to_array(proto.graph.initializer[0]))


def test_missing_external_data_names_the_file(tmp_path, mlp_onnx):
    import onnx

    target = tmp_path / "model.onnx"
    onnx.save(onnx.load(mlp_onnx), target, save_as_external_data=True, location="weights.bin", size_threshold=0)
    (tmp_path / "weights.bin").unlink()
    with pytest.raises(ModelLoadError, match=r"model\.onnx: missing external data file 'weights\.bin'"):
        load_model(target)


def test_truncated_external_data_is_reported(tmp_path, mlp_onnx):
    import onnx

    target = tmp_path / "model.onnx"
    onnx.save(onnx.load(mlp_onnx), target, save_as_external_data=True, location="weights.bin", size_threshold=0)
    data = (tmp_path / "weights.bin").read_bytes()
    (tmp_path / "weights.bin").write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelLoadError, match="is truncated"):
        load_model(target)


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (lambda p, src: p.write_bytes(b""), "file is empty"),
        (lambda p, src: p.write_bytes(src.read_bytes()[: src.stat().st_size // 2]), "truncated"),
        (lambda p, src: p.write_bytes(np.random.default_rng(1).bytes(4096)), "not"),
        (lambda p, src: p.write_text("name,value\nalpha,1\n" * 50), "not"),
    ],
    ids=["zero-byte", "truncated", "random-bytes", "text-renamed-onnx"],
)
def test_bad_onnx_files_give_one_line_errors(tmp_path, mlp_onnx, make, reason):
    bad = tmp_path / "bad.onnx"
    make(bad, mlp_onnx)
    before = _listing(tmp_path)
    with pytest.raises(ModelLoadError) as info:
        load_model(bad)
    message = str(info.value)
    assert message.startswith(str(bad) + ": ") and reason in message
    assert "\n" not in message
    assert _listing(tmp_path) == before  # nothing written


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(ModelLoadError, match="does not exist"):
        load_model(tmp_path / "nope.onnx")
    with pytest.raises(ModelLoadError, match="is a directory"):
        load_model(tmp_path)


def test_unsupported_suffix(tmp_path):
    (tmp_path / "model.h5").write_bytes(b"\x89HDF")
    with pytest.raises(ModelLoadError, match=r"unsupported file type '\.h5'"):
        load_model(tmp_path / "model.h5")


@pytest.mark.parametrize("suffix", [".pt", ".pth"])
def test_bad_torch_files(tmp_path, suffix):
    random_file = tmp_path / f"random{suffix}"
    random_file.write_bytes(os.urandom(3000))
    with pytest.raises(ModelLoadError, match="not a PyTorch file"):
        load_model(random_file)


def test_state_dict_checkpoint_detects_architecture(demo_checkpoint, tmp_path):
    import torch

    model = load_model(demo_checkpoint)
    assert model.arch.name == "lenet5" and model.formats == {"torch"}
    bare = tmp_path / "bare.pth"  # only tensors: the architecture is recognised from names and shapes
    torch.save(model.torch_module.state_dict(), bare)
    again = load_model(bare)
    assert again.arch.name == "lenet5"
    assert again.input_shapes.shapes == {"input": (1, 1, 28, 28)}


def test_state_dict_of_unknown_architecture_is_refused(tmp_path):
    import torch

    path = tmp_path / "other.pt"
    torch.save({"encoder.weight": torch.zeros(3, 3)}, path)
    with pytest.raises(ModelLoadError, match="matches no built-in architecture"):
        load_model(path)


def test_pickled_module_is_refused_unless_trusted(tmp_path):
    import torch

    path = tmp_path / "pickled.pt"
    torch.save(torch.nn.Sequential(torch.nn.Linear(4, 2)), path)
    with pytest.raises(UntrustedPickleError, match="run code stored in the file.*--trust-pickle"):
        load_model(path)
    with pytest.raises(InputShapeError):  # trusted, but a pickled module records no input shape
        load_model(path, trust_pickle=True)
    model = load_model(path, trust_pickle=True, input_shapes={"input": (1, 4)})
    assert model.formats == {"torch"}


def test_torchscript_needs_an_input_shape_and_then_analyzes(tmp_path):
    import torch

    from workbench.analysis import analyze

    path = tmp_path / "scripted.pt"
    torch.jit.script(torch.nn.Sequential(torch.nn.Linear(8, 4), torch.nn.ReLU())).save(str(path))
    with pytest.raises(InputShapeError, match=r"scripted\.pt: .*input-shape"):
        load_model(path)
    model = load_model(path, input_shapes="2,8")
    analysis = analyze(model)
    assert analysis.params == 8 * 4 + 4
    assert analysis.macs == 2 * 8 * 4


def test_torch_export_program(tmp_path):
    import torch

    path = tmp_path / "program.pt2"
    module = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.ReLU()).eval()
    torch.export.save(torch.export.export(module, (torch.zeros(1, 3, 8, 8),)), str(path))
    with pytest.raises(ModelLoadError, match="--trust-pickle"):  # torch.export.load unpickles: only on request
        load_model(path)
    model = load_model(path, trust_pickle=True)
    assert model.input_shapes.shapes == {next(iter(model.input_shapes.shapes)): (1, 3, 8, 8)}
    from workbench.analysis import analyze

    assert analyze(model).macs == 4 * 6 * 6 * 3 * 3 * 3


def test_cli_prints_one_line_error_without_traceback(tmp_path, capsys):
    from workbench.cli import main

    bad = tmp_path / "broken.onnx"
    bad.write_bytes(b"\x00\x01garbage" * 10)
    assert main(["info", str(bad)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {bad}: ") and err.count("\n") == 1 and "Traceback" not in err
