"""Class 7: values that make no sense are refused where they enter, never carried into a figure, a
label or a file: device profiles with a throughput of 0, below 0 or NaN; labels of 1e300, NaN or -1;
models onnxruntime cannot load (an unknown opset, duplicate node names)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

PROFILE = """
id: {id}
name: Bad board
cpu: none
runtime: onnxruntime
precisions: [fp32]
ram_bytes: 1048576
storage_bytes: 1048576
throughput_macs_per_s: {{fp32: {throughput}}}
throughput_source: a typo
energy_per_mac_j: {energy}
energy_source: a typo
export: {{format: onnx}}
"""


@pytest.mark.parametrize(
    ("throughput", "energy"), [("0", "1e-9"), ("-3.0e9", "1e-9"), (".nan", "1e-9"), (".inf", "1e-9"), ("1e9", ".nan")]
)
def test_device_profiles_with_impossible_figures_are_skipped_with_the_reason(sandbox, mlp_onnx, throughput, energy):
    devices = sandbox.root / "config" / "devices"
    devices.mkdir(parents=True)
    (devices / "bad.yaml").write_text(PROFILE.format(id="bad-board", throughput=throughput, energy=energy))
    listed = sandbox.cli("devices")
    sandbox.assert_succeeded(listed)
    assert "skipped" in listed.stdout and "bad.yaml" in listed.stdout, listed.describe()
    assert "bad-board" not in listed.stdout.split("your own profiles")[0], listed.describe()
    run = sandbox.cli("export", mlp_onnx, "--device", "bad-board", "-o", sandbox.root / "out")
    sandbox.assert_refused(run, mlp_onnx, reason="no device 'bad-board'")
    assert not (sandbox.root / "out").exists()


def test_a_manifest_is_never_written_with_nan():
    from workbench.device_export import strict_json
    from workbench.errors import WorkbenchError

    assert json.loads(strict_json({"latency_s": 0.5})) == {"latency_s": 0.5}
    with pytest.raises(WorkbenchError, match="NaN"):
        strict_json({"latency_s": float("nan")})


@pytest.mark.parametrize(
    ("labels", "reason"),
    [
        (np.array([0, 1, 1e300, 2], np.float64), "labels from"),
        (np.array([0, 1, np.nan, 2], np.float64), "NaN"),
        (np.array([0, 1, 2.5, 2], np.float64), "fractional"),
        (np.array([0, -1, 1, 2], np.int64), "labels from"),
        (np.array([True, False, True, False]), "integer class labels"),
    ],
    ids=["1e300", "nan", "fraction", "negative", "bool"],
)
def test_labels_that_are_not_class_indices_are_refused(sandbox, mlp_onnx, labels, reason):
    data = sandbox.files / "data.npz"
    np.savez(data, x=np.zeros((4, 16), np.float32), y=labels)
    unchanged = sandbox.snapshot()
    run = sandbox.cli("eval", mlp_onnx, "--data", data, "--runs", "0")
    sandbox.assert_refused(run, data, reason=reason)
    unchanged()


def _relu_chain(
    sandbox, path: Path, *, opset: int = 17, duplicate_names: bool = False, custom_op: bool = False
) -> Path:
    import onnx
    from onnx import TensorProto, helper

    second = (
        helper.make_node("Mystery", ["a"], ["y"], name="relu2", domain="com.example")
        if custom_op
        else helper.make_node("Relu", ["a"], ["y"], name="relu" if duplicate_names else "relu2")
    )
    sandbox.save_graph(
        path,
        [helper.make_node("Relu", ["x"], ["a"], name="relu"), second],
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 4])],
        opset=opset,
    )
    if custom_op:  # onnx's checker accepts an unknown domain; onnxruntime has no kernel for it
        model = onnx.load(path)
        model.opset_import.append(helper.make_opsetid("com.example", 1))
        onnx.save(model, path)
    return path


@pytest.mark.parametrize(
    ("kind", "reason"),
    [("opset-99", "opset"), ("duplicate-node-names", "same node name"), ("unknown-op", "com.example:Mystery")],
)
def test_models_onnxruntime_refuses_are_refused_and_nothing_is_written(sandbox, kind, reason):
    model = _relu_chain(
        sandbox,
        sandbox.files / f"{kind}.onnx",
        opset=99 if kind == "opset-99" else 17,
        duplicate_names=kind == "duplicate-node-names",
        custom_op=kind == "unknown-op",
    )
    recipe = sandbox.files / "recipe.json"
    recipe.write_text(
        json.dumps(
            {
                "format": "model-workbench-recipe",
                "version": 1,
                "base": {"name": "chain", "input_shapes": {"x": [1, 4]}},
                "steps": [{"plugin": "simplify_graph", "params": {}}],
            }
        )
    )
    unchanged = sandbox.snapshot()
    out = sandbox.root / "out.onnx"
    run = sandbox.cli("apply", "--recipe", recipe, model, "-o", out)
    sandbox.assert_refused(run, model, reason="onnxruntime cannot load this model")
    assert reason in run.lines[0] and "onnxruntime_src" not in run.lines[0], run.describe()
    assert not out.exists()
    unchanged()
