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
    assert any(stored[name] == TensorProto.INT4 for name in stored if name.endswith(".weight"))
    # the layers were checked together: the joint agreement on the calibration split is within the budget
    assert measure(mixed, baseline=lenet, dataset=calibration, runs=0).agreement >= 0.99


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


def test_sensitivity_allocation_reaches_the_target_where_pruning_costs_least():
    from workbench.sensitivity import LayerSensitivity, SensitivityReport

    def layer(name, params, curve):
        return LayerSensitivity(weight=name, node=name, params=params, sparsity_quality=curve)

    levels = ("0.5", "0.9", "0.99")
    report = SensitivityReport(
        metric="accuracy",
        baseline_quality=0.95,
        samples=256,
        layers=[
            layer("robust", 9000, dict(zip(levels, (0.95, 0.94, 0.90), strict=True))),
            layer("fragile", 1000, dict(zip(levels, (0.93, 0.60, 0.20), strict=True))),
        ],
    )
    ratios = report.allocate_sparsity(0.9)
    assert (ratios["robust"] * 9000 + ratios["fragile"] * 1000) / 10000 == pytest.approx(0.9)
    assert ratios["robust"] > 0.9 and ratios["fragile"] <= 0.5


def test_codebook_fine_tuning_keeps_zeros_and_at_most_k_entries(demo_checkpoint):
    from workbench.analysis import weights_as_computed

    train = load_dataset(mnist_sample_ref("train", limit=512))
    plugins = discover_plugins()
    pruned = run_plugin(plugins.get("magnitude_prune"), load_model(demo_checkpoint), {"sparsity": 0.9}, Task())
    zeros = {n: p.detach().numpy() == 0 for n, p in pruned.torch_module.named_parameters() if n.endswith("weight")}
    params = {"clusters": 8, "biases": True, "fine_tune_epochs": 1}
    tuned = run_plugin(plugins.get("weight_sharing"), pruned, params, Task(train=train))
    plain = run_plugin(plugins.get("weight_sharing"), pruned, {"clusters": 8, "biases": True}, Task())
    decoded, plain_decoded = weights_as_computed(tuned.to_onnx())[0], weights_as_computed(plain.to_onnx())[0]
    for name, mask in zeros.items():
        assert np.all(decoded[name][mask] == 0) and len(np.unique(decoded[name])) <= 8
    assert len(np.unique(decoded["1.1.bias"])) <= 8  # biases share a codebook too
    assert any(not np.array_equal(decoded[n], plain_decoded[n]) for n in zeros)  # training moved the entries
    with pytest.raises(PluginError, match="torch lineage"):
        onnx_only = pruned.derive(onnx_proto=pruned.to_onnx())
        run_plugin(plugins.get("weight_sharing"), onnx_only, params, Task(train=train))
