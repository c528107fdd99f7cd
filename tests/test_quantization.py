"""int8 (static, dynamic, weight-only), fp16 and graph simplification on the demo model and on a real
third-party model (PaddleOCR's classifier: opset 11, weights in Constant nodes, dynamic dims)."""

from __future__ import annotations

import numpy as np
import pytest

from workbench.datasets import load_dataset, mnist_sample_ref, random_inputs_ref
from workbench.evaluate import measure
from workbench.loading import load_model
from workbench.plugin import Task, discover_plugins, run_plugin
from workbench.runtime import is_weight_only_quantized


@pytest.fixture(scope="module")
def registry():
    return discover_plugins()


@pytest.fixture(scope="module")
def mnist_test():
    return load_dataset(mnist_sample_ref("test", limit=300))


@pytest.fixture(scope="module")
def calibration():
    return load_dataset(mnist_sample_ref("train", limit=128))


def _ops(model) -> set[str]:
    return {n.op_type for n in model.to_onnx().graph.node}


@pytest.mark.parametrize(
    ("params", "expected_ops"),
    [
        ({"mode": "static"}, {"QuantizeLinear", "DequantizeLinear"}),
        ({"mode": "static", "quant_format": "QOperator", "per_channel": False}, {"QLinearConv"}),
        ({"mode": "static", "calibration": "Entropy", "activations": "int8"}, {"QuantizeLinear"}),
        ({"mode": "static", "calibration": "Percentile"}, {"QuantizeLinear"}),
        ({"mode": "dynamic"}, {"DynamicQuantizeLinear"}),
        ({"mode": "weight_only"}, {"DequantizeLinear"}),
    ],
)
def test_int8_modes_keep_the_demo_model_accurate(
    registry, demo_checkpoint, mnist_test, calibration, params, expected_ops
):
    model = load_model(demo_checkpoint)
    quantized = run_plugin(registry.get("quantize_int8"), model, params, Task(calibration=calibration))
    assert expected_ops <= _ops(quantized)
    baseline = model.derive(onnx_proto=model.to_onnx())
    metrics = measure(quantized, baseline=baseline, dataset=mnist_test, runs=0)
    assert metrics.agreement >= 0.97 and metrics.accuracy >= 0.93
    assert metrics.artifact_bytes < 0.4 * measure(baseline, runs=0).artifact_bytes


def test_weight_only_int8_is_lossless_enough_and_runs_unfused(registry, demo_checkpoint, mnist_test):
    model = load_model(demo_checkpoint)
    stored = run_plugin(registry.get("quantize_int8"), model, {"mode": "weight_only"})
    assert is_weight_only_quantized(stored.onnx_bytes())
    weights = [i for i in stored.to_onnx().graph.initializer if i.name.endswith("_int8")]
    assert weights and all(i.data_type == 3 for i in weights)  # TensorProto.INT8
    metrics = measure(stored, baseline=model.derive(onnx_proto=model.to_onnx()), dataset=mnist_test, runs=0)
    assert metrics.agreement >= 0.99 and metrics.snr_db > 25


def test_static_int8_on_an_old_opset_third_party_model(registry, paddle_cls_onnx):
    model = load_model(paddle_cls_onnx, input_shapes="1,3,48,192", remember_shapes=False)
    data = load_dataset(random_inputs_ref((1, 3, 48, 192), 16))
    quantized = run_plugin(
        registry.get("quantize_int8"), model, {"mode": "static", "calibration_samples": 16}, Task(calibration=data)
    )
    opset = next(o.version for o in quantized.to_onnx().opset_import if o.domain in ("", "ai.onnx"))
    assert opset >= 13  # raised from 11 so per-channel QDQ is valid
    metrics = measure(quantized, baseline=model, dataset=data, runs=0)
    assert metrics.snr_db > 15
    assert metrics.artifact_bytes < 0.7 * measure(model, runs=0).artifact_bytes


def test_fp16_halves_weights_and_keeps_float_io(registry, demo_checkpoint, mnist_test):
    model = load_model(demo_checkpoint)
    half = run_plugin(registry.get("quantize_fp16"), model, {})
    proto = half.to_onnx()
    assert proto.graph.input[0].type.tensor_type.elem_type == 1  # float32 in
    metrics = measure(half, baseline=model.derive(onnx_proto=model.to_onnx()), dataset=mnist_test, runs=0)
    assert metrics.agreement >= 0.99
    assert metrics.artifact_bytes < 0.6 * measure(model, runs=0).artifact_bytes


def test_simplify_folds_constants_without_changing_outputs(registry, paddle_cls_onnx):
    model = load_model(paddle_cls_onnx, input_shapes="1,3,48,192", remember_shapes=False)
    slim = run_plugin(registry.get("simplify_graph"), model, {})
    assert len(slim.to_onnx().graph.node) < len(model.to_onnx().graph.node)
    count_bn = lambda m: sum(n.op_type == "BatchNormalization" for n in m.to_onnx().graph.node)  # noqa: E731
    assert count_bn(model) == 35 and count_bn(slim) < count_bn(model)  # BatchNorm folded into convolutions
    data = load_dataset(random_inputs_ref((1, 3, 48, 192), 8))
    metrics = measure(slim, baseline=model, dataset=data, runs=0)
    assert metrics.agreement == 1.0 and (metrics.snr_db is None or metrics.snr_db > 80)


def test_a_quantizer_failure_is_a_clear_error(registry, demo_checkpoint, monkeypatch):
    import onnxruntime.quantization as q

    from workbench.errors import PluginError

    def broken(*args, **kwargs):
        raise RuntimeError("simulated quantizer crash")

    monkeypatch.setattr(q, "quantize_static", broken)
    with pytest.raises(PluginError, match="quantizer failed: RuntimeError: simulated quantizer crash"):
        run_plugin(
            registry.get("quantize_int8"),
            load_model(demo_checkpoint),
            {"mode": "static"},
            Task(calibration=load_dataset(mnist_sample_ref("calibration", limit=16))),
        )


def test_static_int8_without_calibration_data_refuses_and_says_why(registry, demo_checkpoint):
    from workbench.errors import PluginError

    with pytest.raises(PluginError, match="static int8 .* needs the calibration split.*random inputs"):
        run_plugin(
            registry.get("quantize_int8"),
            load_model(demo_checkpoint),
            {"mode": "static"},
            Task(no_data_reason="the project has only random inputs"),
        )


def test_recipe_with_static_int8_replays_identically(tmp_path, registry, demo_checkpoint):
    from workbench.fileio import sha256_bytes, sha256_file
    from workbench.project import Project
    from workbench.recipe import Recipe, replay

    ref = mnist_sample_ref("train", limit=64)
    with Project.create(
        tmp_path / "p", load_model(demo_checkpoint), dataset=ref, source_sha256=sha256_file(demo_checkpoint)
    ) as project:
        task = Task()
        variant = project.apply(project.root.id, registry.get("quantize_int8"), {"mode": "static"}, task)
        recipe_path = project.recipe(variant.id).save(tmp_path / "r.yaml")
    recipe = Recipe.load(recipe_path)
    assert recipe.base.dataset == ref
    result = replay(recipe, load_model(demo_checkpoint), registry, model_sha256=sha256_file(demo_checkpoint))
    assert sha256_bytes(result.artifact_bytes()) == variant.onnx_sha
    np.testing.assert_equal(len(result.to_onnx().graph.node) > 0, True)


def test_int4_weight_only_packs_conv_and_fully_connected_layers(registry, demo_checkpoint, mnist_test):
    model = load_model(demo_checkpoint)
    baseline = model.derive(onnx_proto=model.to_onnx())
    quantized = run_plugin(registry.get("quantize_int4"), model, {"block_size": 32})
    dequantized = [n for n in quantized.to_onnx().graph.node if n.op_type == "DequantizeLinear"]
    assert len(dequantized) == 5  # two convolutions and three fully connected layers
    metrics = measure(quantized, baseline=baseline, dataset=mnist_test, runs=0)
    assert metrics.agreement >= 0.98 and metrics.artifact_bytes < 0.2 * measure(baseline, runs=0).artifact_bytes


def test_per_layer_quantization_error_is_reported(registry, demo_checkpoint, mnist_test, calibration):
    from workbench.evaluate import layer_snr

    model = load_model(demo_checkpoint)
    baseline = model.derive(onnx_proto=model.to_onnx())
    quantized = run_plugin(
        registry.get("quantize_int8"), model, {"mode": "static", "simplify_first": False}, Task(calibration=calibration)
    )
    snr = layer_snr(quantized.onnx_bytes(), baseline.onnx_bytes(), mnist_test.x[:4])
    assert "/0/0.1/Relu" in snr and "/1/1.5/Gemm" in snr  # Conv outputs fold into their ReLU's range
    assert all(v is not None and 25 < v < 80 for v in snr.values())
    metrics = measure(quantized, baseline=baseline, dataset=mnist_test, runs=0, profile_layers=False)
    assert metrics.layer_snr_db is None  # only computed when asked (the GUI asks)


def test_quantization_aware_training_exports_accurate_qdq(registry, demo_checkpoint, mnist_test):
    model = load_model(demo_checkpoint)
    train_data = load_dataset(mnist_sample_ref("train", limit=2000))
    losses: list[float] = []
    qat = run_plugin(
        registry.get("qat_int8"),
        model,
        {"epochs": 1},
        Task(train=train_data, on_metric=lambda name, value: losses.append(value)),
    )
    assert {"QuantizeLinear", "DequantizeLinear"} <= _ops(qat) and losses
    metrics = measure(qat, baseline=model.derive(onnx_proto=model.to_onnx()), dataset=mnist_test, runs=0)
    assert metrics.accuracy > 0.93 and metrics.agreement > 0.95


def test_a_dynamo_exported_model_quantizes(registry, demo_checkpoint, mnist_test, calibration):
    from workbench.model import export_torch_to_onnx

    model = load_model(demo_checkpoint)
    proto = export_torch_to_onnx(model.torch_module, model.inputs, model.concrete_shapes(), routes=("dynamo",))
    dynamo_model = model.derive(onnx_proto=proto)
    quantized = run_plugin(
        registry.get("quantize_int8"), dynamo_model, {"mode": "static"}, Task(calibration=calibration)
    )
    assert measure(quantized, baseline=dynamo_model, dataset=mnist_test, runs=0).agreement > 0.97


def test_weight_only_int8_fuses_spelled_out_hard_swish(paddle_cls_onnx):
    from workbench.onnx_prep import fuse_hard_swish
    from workbench.runtime import make_session

    model = load_model(paddle_cls_onnx, input_shapes="1,3,48,192", remember_shapes=False)
    notes: list[str] = []
    fused = fuse_hard_swish(model.to_onnx(), notes)
    ops = [n.op_type for n in fused.graph.node]
    assert ops.count("HardSwish") == 18 and "fused 18" in notes[-1]  # PaddleOCR spells out all 18
    x = np.random.default_rng(0).random((2, 3, 48, 192), dtype=np.float32)
    want = make_session(model.onnx_bytes()).run(None, {"x": x})[0]
    got = make_session(fused.SerializeToString()).run(None, {"x": x})[0]
    np.testing.assert_allclose(got, want, atol=1e-5)
    quantized = run_plugin(discover_plugins().get("quantize_int8"), model, {"mode": "weight_only"})
    assert sum(n.op_type == "HardSwish" for n in quantized.to_onnx().graph.node) == 18
