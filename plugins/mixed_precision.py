"""Mixed precision per layer: 4-bit weights where the layer tolerates them, 8-bit elsewhere, float for
the most sensitive, all stored packed (ONNX INT4 / INT8 behind DequantizeLinear) and run by onnxruntime.

The assignment is given per layer (node name → int4 / int8 / float), as the sensitivity tab shows it per
layer, or proposed here for an accuracy budget: layers ranked by how little int4 alone disturbs the
outputs, then as many as the budget allows, checked together, on the calibration split.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

import numpy as np
from pydantic import Field

from workbench.onnx_prep import (
    check_loads,
    copy_proto,
    ensure_opset,
    fuse_hard_swish,
    simplify,
    strip_initializer_inputs,
)
from workbench.plugin import Plugin, PluginKind, PluginParams, Task
from workbench.weight_codec import BLOCKED_OPSET, CODE_TYPES, quantize_slot, require_slots, weight_slots

if TYPE_CHECKING:
    import onnx

    from workbench.model import Model

LayerPrecision = Literal["int4", "int8", "float"]


class MixedPrecisionParams(PluginParams):
    layers: dict[str, LayerPrecision] = Field(
        default_factory=dict,
        description="precision per layer (node name); empty: proposed from a sensitivity sweep for the budget",
    )
    budget: float = Field(
        0.5,
        ge=0.0,
        le=20.0,
        description="proposal: how many points of agreement with the float model (calibration split) "
        "the int4 layers may cost together",
        json_schema_extra={"search": [0.1, 3.0], "shrinks": "up"},
    )
    default: LayerPrecision = Field("int8", description="layers the assignment does not name")
    block_size: Literal[16, 32, 64, 128] = Field(32, description="int4 layers: weights per scale")
    simplify_first: bool = Field(
        True, description="run onnxslim first (folds BatchNorm into the weights)", json_schema_extra={"tune": False}
    )


class MixedPrecision(Plugin):
    id = "mixed_precision"
    title = "Mixed precision (int4 / int8 / float per layer)"
    kind = PluginKind.QUANTIZE
    formats = frozenset({"onnx"})
    Params = MixedPrecisionParams
    description = "Per-layer int4, int8 or float weights, packed in the file, chosen from sensitivity."

    def apply(self, model: Model, params: MixedPrecisionParams, task: Task) -> Model:  # type: ignore[override]
        proto = copy_proto(model.to_onnx())
        strip_initializer_inputs(proto)
        if params.simplify_first:
            proto = fuse_hard_swish(simplify(proto, task.notes), task.notes)
            model = model.derive(onnx_proto=proto)  # the sweep and the names below see the folded graph
        layers = dict(params.layers)
        if not layers:
            layers = self._propose(model, params.budget / 100, params.block_size, task.sub(0.0, 0.7))
            chosen = {p: sum(v == p for v in layers.values()) for p in ("int4", "int8", "float")}
            task.note(
                f"proposed for a {params.budget:g} pt budget (agreement on the calibration split): "
                + ", ".join(f"{count} layer(s) {p}" for p, count in chosen.items() if count)
            )
        task.report(0.75, "storing the weights")
        proto = _stored(proto, layers, params.default, params.block_size)
        check_loads(proto, "mixed precision")
        return model.derive(onnx_proto=proto)

    @staticmethod
    def _propose(model: Model, budget: float, block_size: int, task: Task) -> dict[str, str]:
        """int4 for as many layers as the budget allows, the least harmful first, checked jointly.

        Each layer is stored in int4 alone and ranked by the SNR of the model's outputs (a continuous
        measure: top-1 on a few hundred samples cannot tell most layers apart). Then the longest prefix of
        that ranking whose joint top-1 agreement with the float model stays within the budget is found by
        bisection; the other layers get int8. All on the calibration split."""
        from workbench.evaluate import QualityProbe, snr_db

        data = task.data("calibration", "proposing a precision per layer (int4 where it is harmless)")
        probe = QualityProbe(model, data, samples=256, use_labels=False)  # agreement with the float model
        slots = require_slots(weight_slots(model.to_onnx()), "quantize")

        def outputs(layers: dict[str, str]) -> np.ndarray:
            task.check()
            candidate = _stored(model.to_onnx(), layers, "float", block_size)
            return probe.outputs(candidate.SerializeToString())[probe.output]

        reference = probe.reference
        harm = []
        for index, slot in enumerate(slots):
            task.report(0.8 * index / len(slots), f"int4 alone: {slot.node or slot.name}")
            snr = snr_db(reference, outputs({slot.name: "int4"}))
            harm.append((-(snr if snr is not None else 1e9), slot.name))
        ranked = [name for _, name in sorted(harm)]

        def within_budget(count: int) -> bool:
            layers = dict.fromkeys(ranked, "int8") | dict.fromkeys(ranked[:count], "int4")
            return probe.score_outputs(outputs(layers)) >= probe.baseline - budget

        low, high = 0, len(ranked)  # bisection for the largest count within the budget
        while low < high:
            task.report(0.8 + 0.2 * (1 - (high - low) / len(ranked)), "checking int4 layers together")
            middle = (low + high + 1) // 2
            low, high = (middle, high) if within_budget(middle) else (low, middle - 1)
        return dict.fromkeys(ranked, "int8") | dict.fromkeys(ranked[:low], "int4")


def _stored(proto: onnx.ModelProto, layers: dict[str, str], default: str, block_size: int) -> onnx.ModelProto:
    """A copy of ``proto`` with each weight stored as ``layers`` names it (by initializer or node name)."""
    proto = copy_proto(proto)
    slots = weight_slots(proto)
    chosen = {slot.name: layers.get(slot.name, layers.get(slot.node, default)) for slot in slots}
    opsets = [max(CODE_TYPES["int4"][1], BLOCKED_OPSET) if p == "int4" else 13 for p in chosen.values()]
    proto = ensure_opset(proto, max(opsets, default=13), [])
    for slot in slots:
        if chosen[slot.name] == "int4":
            quantize_slot(proto, slot, "int4", block_size)
        elif chosen[slot.name] == "int8":
            quantize_slot(proto, slot, "int8")
    return proto
