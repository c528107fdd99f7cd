"""Low-bit weights: 4-bit, 2-bit (ternary) or binary, stored packed in the file.

4-bit codes are ONNX INT4 (opset 21), 2-bit and binary codes ONNX INT2 (opset 25), both behind
DequantizeLinear with one scale per output channel, run by onnxruntime. ONNX has no 1-bit type, so a
binary weight takes 2 bits in the file; the note on the step says what a 1-bit packing would save, as
an analysis only.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

import numpy as np
from pydantic import Field

from workbench.onnx_prep import check_loads, copy_proto, ensure_opset, strip_initializer_inputs
from workbench.plugin import Plugin, PluginKind, PluginParams, Task
from workbench.weight_codec import (
    CODE_TYPES,
    quantize_weight,
    require_slots,
    store_codes,
    weight_array,
    weight_slots,
)

if TYPE_CHECKING:
    from workbench.model import Model


class LowBitParams(PluginParams):
    bits: Literal[4, 2, 1] = Field(
        4,
        description="bits per weight: 4 (±7 levels), 2 (ternary), 1 (binary ±scale)",
        json_schema_extra={"shrinks": "down"},
    )
    exclude: list[str] = Field(default_factory=list, description="node or weight names to leave untouched")


class LowBitWeights(Plugin):
    id = "low_bit_weights"
    title = "Low-bit weights (4/2/1-bit)"
    kind = PluginKind.QUANTIZE
    formats = frozenset({"onnx"})
    Params = LowBitParams
    description = "Per-channel 4-bit, ternary or binary weights, packed as ONNX INT4/INT2 in the file."

    def apply(self, model: Model, params: LowBitParams, task: Task) -> Model:  # type: ignore[override]
        code = "int4" if params.bits == 4 else "int2"
        proto = copy_proto(model.to_onnx())
        strip_initializer_inputs(proto)
        proto = ensure_opset(proto, CODE_TYPES[code][1], task.notes)
        slots = require_slots(weight_slots(proto, set(params.exclude)), f"store in {params.bits} bit(s)")
        task.report(0.2, f"quantizing weights to {params.bits} bit(s)")
        count = 0
        for slot in slots:
            task.check()
            weight = weight_array(proto, slot.name)
            codes, scales = quantize_weight(weight, slot.axis, "binary" if params.bits == 1 else code, None)
            store_codes(proto, slot, codes, scales, code)
            count += int(np.prod(slot.shape))
        if params.bits == 1:
            task.note(
                f"binary weights are stored as 2-bit INT2 codes (ONNX has no 1-bit type): {count * 2 // 8:,} B of "
                f"codes in the file; a 1-bit packing would take {count // 8:,} B (an analysis, not a size shipped)"
            )
        check_loads(proto, f"{params.bits}-bit weights")
        return model.derive(onnx_proto=proto)
