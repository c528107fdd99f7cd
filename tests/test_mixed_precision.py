"""Mixed precision from sensitivity, and gradual (cubic) pruning that fine-tunes on the train split."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto
from workbench.plugins.magnitude_prune import schedule_fraction

from workbench.datasets import load_dataset, mnist_sample_ref
from workbench.errors import PluginError
from workbench.evaluate import measure
from workbench.loading import load_model
from workbench.plugin import Task, discover_plugins, run_plugin
from workbench.sensitivity import sweep


@pytest.fixture(scope="module")
def lenet(demo_checkpoint):
    model = load_model(demo_checkpoint)
    return model.derive(onnx_proto=model.to_onnx())


def _stored_types(model) -> dict[str, int]:
    """Weight name → the element type it is stored in (through its DequantizeLinear, if any)."""
    proto = onnx.load_from_string(model.onnx_bytes())
    inits = {i.name: i.data_type for i in proto.graph.initializer}
    types = dict(inits)
    for node in proto.graph.node:
        if node.op_type == "DequantizeLinear":
            types[node.output[0]] = inits[node.input[0]]
        elif node.op_type == "Reshape" and node.input[0] in types:  # a blocked convolution weight
            types[node.output[0]] = types[node.input[0]]
    return types


def test_explicit_precisions_are_stored_per_layer(lenet):
    plugins = discover_plugins()
    layers = {"/0/0.0/Conv": "float", "/1/1.1/Gemm": "int4", "/1/1.5/Gemm": "int8"}
    mixed = run_plugin(plugins.get("mixed_precision"), lenet, {"layers": layers, "default": "int4"}, Task())
    types = _stored_types(mixed)
    assert types["0.0.weight"] == TensorProto.FLOAT
    assert types["1.1.weight"] == TensorProto.INT4 and types["0.3.weight"] == TensorProto.INT4  # the default
    assert types["1.5.weight"] == TensorProto.INT8
    metrics = measure(mixed, baseline=lenet, dataset=load_dataset(mnist_sample_ref("test", limit=300)), runs=0)
    assert metrics.agreement > 0.97 and metrics.artifact_bytes < 0.2 * len(lenet.artifact_bytes())


def test_a_budget_proposes_precisions_from_the_calibration_split(lenet):
    calibration = load_dataset(mnist_sample_ref("calibration", limit=256))
    report = sweep(lenet, calibration, discover_plugins(), sparsities=(), samples=256)
    assert all(layer.int4_quality is not None and layer.int8_quality is not None for layer in report.layers)
    generous, strict = report.propose_precisions(1.0), report.propose_precisions(-1.0)
    assert set(strict.values()) == {"float"} and "int4" in generous.values()
    task = Task(calibration=calibration)
    mixed = run_plugin(discover_plugins().get("mixed_precision"), lenet, {"budget": 1.0}, task)
    assert any("proposed for a 1 pt budget" in note for note in task.notes)
    stored = _stored_types(mixed)
    weights = [name for name in stored if name.endswith(".weight")]
    assert sum(stored[name] == TensorProto.INT4 for name in weights) == list(generous.values()).count("int4")


def test_a_proposal_needs_calibration_data_never_random_inputs(lenet):
    with pytest.raises(PluginError, match="calibration|data"):
        run_plugin(discover_plugins().get("mixed_precision"), lenet, {"budget": 0.5}, Task())


def test_the_cubic_schedule_prunes_early_and_reaches_the_target_exactly(demo_checkpoint):
    assert schedule_fraction(1, 4, "linear") == 0.25
    assert schedule_fraction(1, 4, "cubic") == pytest.approx(1 - 0.75**3)
    assert schedule_fraction(4, 4, "cubic") == 1.0
    train = load_dataset(mnist_sample_ref("train", limit=512))
    losses: list[float] = []
    task = Task(train=train, on_metric=lambda name, value: losses.append(value))
    params = {"sparsity": 0.9, "iterations": 3, "schedule": "cubic", "fine_tune_epochs": 1}
    pruned = run_plugin(discover_plugins().get("magnitude_prune"), load_model(demo_checkpoint), params, task)
    weights = [p.detach().numpy() for n, p in pruned.torch_module.named_parameters() if n.endswith("weight")]
    zeros = sum(int((w == 0).sum()) for w in weights) / sum(w.size for w in weights)
    assert zeros == pytest.approx(0.9, abs=0.001) and len(losses) == 3 and all(np.isfinite(losses))
