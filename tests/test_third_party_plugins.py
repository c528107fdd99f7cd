"""Every ONNX-capable plugin on a real third-party model: PaddleOCR's direction classifier shipped by
rapidocr (opset 11, weights in Constant nodes, dims -1/?). The torch-only plugins (structured pruning,
distillation, QAT) need a torch lineage, which an ONNX file does not have: they refuse with a reason."""

from __future__ import annotations

import pytest

from workbench.datasets import load_dataset, random_inputs_ref
from workbench.errors import PluginError
from workbench.evaluate import measure
from workbench.loading import load_model
from workbench.plugin import Task, discover_plugins, run_plugin

SHAPE = (1, 3, 48, 192)
CASES = [
    ("magnitude_prune", {"sparsity": 0.5}),
    ("magnitude_prune", {"pattern": "2:4"}),
    ("quantize_int8", {"mode": "dynamic"}),
    ("quantize_int8", {"mode": "weight_only"}),
    ("quantize_int8", {"mode": "static", "quant_format": "QOperator", "calibration_samples": 16}),
    ("quantize_fp16", {}),
    ("quantize_int4", {"block_size": 32}),
    ("low_bit_weights", {"bits": 4}),
    ("weight_sharing", {"clusters": 32}),
    ("low_rank", {"criterion": "rank_ratio", "rank_ratio": 0.3, "min_params": 4096}),
    ("simplify_graph", {}),
]


@pytest.fixture(scope="module")
def paddle(paddle_cls_onnx):
    return (
        load_model(paddle_cls_onnx, input_shapes=",".join(map(str, SHAPE)), remember_shapes=False),
        load_dataset(random_inputs_ref(SHAPE, 16)),
    )


@pytest.mark.parametrize(("plugin_id", "params"), CASES, ids=[f"{p}-{i}" for i, (p, _) in enumerate(CASES)])
def test_onnx_plugins_on_a_third_party_model(paddle, plugin_id, params):
    model, data = paddle
    try:
        result = run_plugin(discover_plugins().get(plugin_id), model, params, Task(train=data, calibration=data))
    except PluginError as exc:  # allowed only with a stated reason, e.g. no qualifying layer
        pytest.fail(f"{plugin_id} refused the model: {exc}")
    metrics = measure(result, baseline=model, dataset=data, runs=0)
    assert metrics.samples == 16 and metrics.agreement is not None  # it loads and runs in onnxruntime


@pytest.mark.parametrize("plugin_id", ["structured_prune", "qat_int8"])
def test_torch_only_plugins_refuse_an_onnx_file_clearly(paddle, plugin_id):
    with pytest.raises(PluginError, match="takes torch models"):
        run_plugin(discover_plugins().get(plugin_id), paddle[0], {})
