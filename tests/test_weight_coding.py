"""Low-bit and shared weights are stored for real: packed INT4/INT2 codes and UINT4 codebook indices in
the file, run by onnxruntime, equal to their dequantized float reference; pruned zeros survive."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, numpy_helper

from workbench.datasets import load_dataset, mnist_sample_ref
from workbench.evaluate import measure
from workbench.loading import load_model
from workbench.plugin import Task, discover_plugins, run_plugin

PACKED = {TensorProto.INT4: 4, TensorProto.UINT4: 4, TensorProto.INT2: 2}


@pytest.fixture(scope="module")
def setup(demo_checkpoint):
    model = load_model(demo_checkpoint)
    baseline = model.derive(onnx_proto=model.to_onnx())
    pruned = run_plugin(discover_plugins().get("magnitude_prune"), baseline, {"sparsity": 0.9})
    return baseline, pruned, load_dataset(mnist_sample_ref("test", limit=300))


def _float_reference(coded: onnx.ModelProto, baseline: onnx.ModelProto) -> bytes:
    """The baseline graph with each weight replaced by what the coded file decodes to, computed here from
    the stored codes and scales (or indices and codebook) with numpy, independently of the plugin."""
    inits = {i.name: numpy_helper.to_array(i) for i in coded.graph.initializer}
    values: dict[str, np.ndarray] = {}
    for node in coded.graph.node:
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
        get = {**inits, **values}
        if node.op_type == "DequantizeLinear" and node.input[0] in inits:
            codes, scale = inits[node.input[0]].astype(np.float32), get[node.input[1]]
            axis = attrs.get("axis", 1)
            if attrs.get("block_size"):
                scale = np.repeat(scale, attrs["block_size"], axis=axis)[
                    tuple(slice(0, d) if i == axis else slice(None) for i, d in enumerate(codes.shape))
                ]
            else:
                scale = scale.reshape([-1 if i == axis else 1 for i in range(codes.ndim)])
            values[node.output[0]] = codes * scale
        elif node.op_type == "Cast" and node.input[0] in inits:
            values[node.output[0]] = inits[node.input[0]].astype(np.int64)
        elif node.op_type == "Gather" and node.input[1] in values:
            values[node.output[0]] = get[node.input[0]][values[node.input[1]]]
        elif node.op_type == "Reshape" and node.input[0] in values:
            values[node.output[0]] = values[node.input[0]].reshape(get[node.input[1]])
    reference = onnx.ModelProto()
    reference.CopyFrom(baseline)
    for init in reference.graph.initializer:
        if init.name in values:
            init.CopyFrom(numpy_helper.from_array(values[init.name].astype(np.float32), init.name))
    return reference.SerializeToString()


def _run(data: bytes, x: np.ndarray, disable_qdq: bool = True) -> np.ndarray:
    options = ort.SessionOptions()
    options.add_session_config_entry("session.disable_quant_qdq", "1" if disable_qdq else "0")
    session = ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: x})[0]


@pytest.mark.parametrize(
    ("plugin_id", "params", "bits"),
    [
        ("quantize_int4", {"granularity": "blocked", "block_size": 16}, 4),
        ("quantize_int4", {"granularity": "per_channel"}, 4),
        ("low_bit_weights", {"bits": 2}, 2),
        ("low_bit_weights", {"bits": 1}, 2),
        ("weight_sharing", {"clusters": 16}, 4),
    ],
)
def test_packed_files_run_in_onnxruntime_and_match_their_float_reference(setup, plugin_id, params, bits):
    baseline, _pruned, data = setup
    coded = run_plugin(discover_plugins().get(plugin_id), baseline, params, Task())
    proto = onnx.load_from_string(coded.artifact_bytes())
    # assert: every Conv/Gemm weight (5 in LeNet-5) is a packed tensor of the expected width
    packed = [i for i in proto.graph.initializer if i.data_type in PACKED]
    assert len(packed) == 5 and {PACKED[i.data_type] for i in packed} == {bits}
    assert all(len(i.raw_data) == -(-int(np.prod(i.dims)) * bits // 8) for i in packed)
    fp32_bytes = len(baseline.artifact_bytes())
    # weights dominate the file; codes are packed (a scale per 16 weights adds 2 bits each)
    assert len(coded.artifact_bytes()) < fp32_bytes * (bits + 2.5) / 32
    reference = _float_reference(coded.to_onnx(), baseline.to_onnx())
    for disable_qdq in (True, False):
        np.testing.assert_allclose(
            _run(coded.artifact_bytes(), data.x[:32], disable_qdq), _run(reference, data.x[:32]), atol=1e-4
        )
    metrics = measure(coded, baseline=baseline, dataset=data, runs=0)
    assert metrics.artifact_bytes == len(coded.artifact_bytes())  # the size shown is the file's


def test_binary_weights_are_plus_minus_scale_and_their_one_bit_size_is_only_an_analysis(setup):
    baseline, _pruned, _data = setup
    task = Task()
    coded = run_plugin(discover_plugins().get("low_bit_weights"), baseline, {"bits": 1}, task)
    codes = [numpy_helper.to_array(i).astype(np.int8) for i in coded.to_onnx().graph.initializer if i.data_type == 26]
    assert all(set(np.unique(c)) <= {-1, 0, 1} and (c != 0).mean() > 0.99 for c in codes)
    assert "an analysis, not a size shipped" in task.notes[-1]


@pytest.mark.parametrize(
    ("plugin_id", "params"),
    [
        ("weight_sharing", {"clusters": 16}),
        ("weight_sharing", {"clusters": 64}),
        ("quantize_int4", {}),
        ("low_bit_weights", {"bits": 2}),
        ("quantize_int8", {"mode": "weight_only", "simplify_first": False}),
    ],
)
def test_sparsity_survives_clustering_and_quantization(setup, plugin_id, params):
    from workbench.analysis import analyze

    _baseline, pruned, _data = setup
    coded = run_plugin(discover_plugins().get(plugin_id), pruned, params, Task())
    before = {layer.name: layer for layer in analyze(pruned.derive(onnx_proto=pruned.to_onnx())).layers}
    stored = load_model_from_bytes(coded.artifact_bytes(), pruned)  # the compacted file, as shipped
    after = {layer.name: layer for layer in analyze(coded).layers}
    for name, layer in before.items():
        if layer.params:
            assert after[name].params == layer.params
            assert after[name].nonzero_params <= layer.nonzero_params  # zeros stay zero (a code may round to 0)
            assert after[name].nonzero_params > 0.9 * layer.nonzero_params
    assert analyze(stored).nonzero_params == analyze(coded).nonzero_params  # compaction never densifies
    pruned_weights = {i.name: numpy_helper.to_array(i) for i in pruned.to_onnx().graph.initializer}
    decoded = _decoded(coded)
    for name, weight in pruned_weights.items():
        if name.endswith("weight"):  # a pruned zero is an exact zero after coding: a zero code or centroid
            assert np.all(decoded[name][weight == 0] == 0) and (weight == 0).mean() > 0.3


def _decoded(model) -> dict[str, np.ndarray]:
    from workbench.analysis import weights_as_computed

    return weights_as_computed(model.to_onnx())[0]


def load_model_from_bytes(data: bytes, like):
    return like.derive(onnx_proto=onnx.load_from_string(data))


def test_half_precision_scales_and_biases_shrink_the_file_within_fp16_rounding(setup):
    baseline, _pruned, data = setup
    plugin = discover_plugins().get("quantize_int8")
    full = run_plugin(plugin, baseline, {"mode": "weight_only", "simplify_first": False}, Task())
    task = Task()
    params = {"mode": "weight_only", "simplify_first": False, "half_scales_and_biases": True}
    half = run_plugin(plugin, baseline, params, task)
    proto = half.to_onnx()
    assert sum(i.data_type == TensorProto.FLOAT16 for i in proto.graph.initializer) == 10  # 5 scales, 5 biases
    assert len(half.artifact_bytes()) < len(full.artifact_bytes()) and "float16" in task.notes[-1]
    np.testing.assert_allclose(
        _run(half.artifact_bytes(), data.x[:32]), _run(full.artifact_bytes(), data.x[:32]), atol=2e-2
    )
    assert measure(half, baseline=baseline, dataset=data, runs=0).agreement >= 0.99
