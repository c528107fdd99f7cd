"""int4 weight-only quantization of Conv, Gemm and MatMul weights, packed in the file.

Weights become ONNX INT4 tensors (two to a byte) behind DequantizeLinear (opset 21), per output
channel or in blocks of ``block_size`` inputs with one scale each. onnxruntime runs the graph; the
weights are folded to float at session start, so compute is float and the file is about 8x smaller
than fp32 in its weights. Symmetric codes keep a pruned weight's exact zero.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from pydantic import Field

from workbench.onnx_prep import check_loads, copy_proto, ensure_opset, strip_initializer_inputs
from workbench.plugin import Plugin, PluginKind, PluginParams, Task
from workbench.weight_codec import BLOCKED_OPSET, CODE_TYPES, quantize_slot, require_slots, weight_slots

if TYPE_CHECKING:
    from workbench.model import Model


class QuantizeInt4Params(PluginParams):
    granularity: Literal["blocked", "per_channel"] = Field(
        "blocked", description="blocked: one scale per block_size inputs (more accurate); per_channel: one per output"
    )
    block_size: Literal[16, 32, 64, 128] = Field(32, description="blocked: weights per scale (smaller: more accurate)")
    exclude: list[str] = Field(default_factory=list, description="node or weight names to keep in float")


class QuantizeInt4(Plugin):
    id = "quantize_int4"
    title = "int4 weight-only (Conv, Gemm, MatMul)"
    kind = PluginKind.QUANTIZE
    formats = frozenset({"onnx"})
    Params = QuantizeInt4Params
    description = "4-bit weights packed in the file (ONNX INT4 behind DequantizeLinear), per channel or blocked."

    def apply(self, model: Model, params: QuantizeInt4Params, task: Task) -> Model:  # type: ignore[override]
        proto = copy_proto(model.to_onnx())
        strip_initializer_inputs(proto)
        proto = ensure_opset(proto, max(CODE_TYPES["int4"][1], BLOCKED_OPSET), task.notes)
        slots = require_slots(weight_slots(proto, set(params.exclude)), "store as int4")
        block = params.block_size if params.granularity == "blocked" else None
        for index, slot in enumerate(slots):
            task.check()
            task.report(0.1 + 0.8 * index / len(slots), f"int4 {slot.node or slot.name}")
            quantize_slot(proto, slot, "int4", block)
        check_loads(proto, "int4 quantization")
        return model.derive(onnx_proto=proto)
