"""Regressions found in review: ties in pruning, compiled torch graphs, odd inputs, output safety."""

from __future__ import annotations

import os
import stat

import numpy as np
import pytest
from workbench.plugins.magnitude_prune import MagnitudePruneParams, magnitude_masks

from workbench.analysis import analyze
from workbench.cli import main
from workbench.loading import load_model
from workbench.plugin import Task, discover_plugins, run_plugin


def test_tied_magnitudes_are_pruned_exactly_to_the_target():
    masks = magnitude_masks({"w": np.ones((10, 10), np.float32)}, MagnitudePruneParams(sparsity=0.5), Task())
    assert int((~masks["w"]).sum()) == 50


def test_pruning_a_torchscript_model_goes_through_onnx(tmp_path):
    import torch

    path = tmp_path / "mlp.pt"
    torch.jit.script(torch.nn.Sequential(torch.nn.Linear(16, 32), torch.nn.ReLU(), torch.nn.Linear(32, 4))).save(
        str(path)
    )
    model = load_model(path, input_shapes="1,16")
    pruned = run_plugin(discover_plugins().get("magnitude_prune"), model, {"sparsity": 0.5})
    assert pruned.formats == {"onnx"} and analyze(pruned).sparsity > 0.45


def test_torch_analysis_falls_back_to_onnx_when_weights_hide_outside_leaves():
    import torch

    from workbench.loading import model_from_module

    class WithRawParameter(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.scale = torch.nn.Parameter(torch.ones(1, 16))
            self.fc = torch.nn.Linear(16, 4)

        def forward(self, x):
            return self.fc(x * self.scale)

    analysis = analyze(model_from_module(WithRawParameter(), "raw", (1, 16)))
    assert analysis.source_format == "onnx" and analysis.params == 16 + 16 * 4 + 4


def test_column_labels_are_flattened_and_bad_labels_refused(tmp_path):
    from workbench.datasets import DatasetRef, load_dataset
    from workbench.errors import DatasetError

    np.savez(tmp_path / "col.npz", x=np.zeros((4, 3), np.float32), y=np.arange(4)[:, None])
    assert load_dataset(DatasetRef(kind="npz", path=str(tmp_path / "col.npz"))).y.shape == (4,)
    np.savez(tmp_path / "onehot.npz", x=np.zeros((4, 3), np.float32), y=np.eye(4))
    with pytest.raises(DatasetError, match="one class index per sample"):
        load_dataset(DatasetRef(kind="npz", path=str(tmp_path / "onehot.npz")))
    np.savez(tmp_path / "text.npz", x=np.array(["a", "b"]))
    with pytest.raises(DatasetError, match="must be numeric"):
        load_dataset(DatasetRef(kind="npz", path=str(tmp_path / "text.npz")))


def test_bad_numbers_on_the_command_line_are_usage_errors(mlp_onnx, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["eval", str(mlp_onnx), "--data", "mnist-sample", "--limit", "-3"])
    assert exit_info.value.code == 2 and "expected a number >= 0" in capsys.readouterr().err


def test_zero_sized_shape_is_refused_for_torchscript(tmp_path):
    import torch

    from workbench.errors import InputShapeError

    path = tmp_path / "ts.pt"
    torch.jit.script(torch.nn.Linear(16, 4)).save(str(path))
    with pytest.raises(InputShapeError, match="dimensions must be positive"):
        load_model(path, input_shapes="0,16")


def test_apply_never_overwrites_the_models_external_data(tmp_path, mlp_onnx, capsys):
    import onnx

    from workbench.fileio import sha256_file

    target = tmp_path / "ext" / "model.onnx"
    target.parent.mkdir()
    onnx.save(onnx.load(mlp_onnx), target, save_as_external_data=True, location="weights.bin", size_threshold=0)
    recipe = tmp_path / "r.yaml"
    recipe.write_text(
        "base: {name: model.onnx, input_shapes: {x: [1, 16]}}\nsteps: [{plugin: magnitude_prune, params: {sparsity: 0.5}}]\n"
    )
    before = sha256_file(target.parent / "weights.bin")
    assert main(["apply", "--recipe", str(recipe), str(target), "-o", str(target.parent / "weights.bin")]) == 2
    assert "refusing to overwrite" in capsys.readouterr().err
    assert sha256_file(target.parent / "weights.bin") == before
    assert main(["apply", "--recipe", str(recipe), str(target), "-o", str(tmp_path)]) == 2


def test_written_files_get_normal_permissions(tmp_path):
    from workbench.fileio import atomic_write_bytes

    mask = os.umask(0o022)
    try:
        path = atomic_write_bytes(tmp_path / "out.bin", b"data")
    finally:
        os.umask(mask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
