"""Mixed precision per layer: 4-bit weights where the layer tolerates them, 8-bit elsewhere, float for
the most sensitive, all stored packed (ONNX INT4 / INT8 behind DequantizeLinear) and run by onnxruntime.

The assignment is given per layer (node name → int4 / int8 / float), as the window's sensitivity tab
proposes it for an accuracy budget, or proposed here from a sensitivity sweep on the calibration split.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from pydantic import Field

from workbench.onnx_prep import check_loads, copy_proto, ensure_opset, strip_initializer_inputs
from workbench.plugin import Plugin, PluginKind, PluginParams, Task
from workbench.weight_codec import BLOCKED_OPSET, CODE_TYPES, quantize_slot, require_slots, weight_slots

if TYPE_CHECKING:
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
        description="proposal: the quality drop in points each layer's choice may cost on its own",
    )
    default: LayerPrecision = Field("int8", description="layers the assignment does not name")
    block_size: Literal[16, 32, 64, 128] = Field(32, description="int4 layers: weights per scale")


class MixedPrecision(Plugin):
    id = "mixed_precision"
    title = "Mixed precision (int4 / int8 / float per layer)"
    kind = PluginKind.QUANTIZE
    formats = frozenset({"onnx"})
    Params = MixedPrecisionParams
    description = "Per-layer int4, int8 or float weights, packed in the file, chosen from sensitivity."

    def apply(self, model: Model, params: MixedPrecisionParams, task: Task) -> Model:  # type: ignore[override]
        layers = dict(params.layers)
        if not layers:
            layers = self._propose(model, params.budget / 100, task.sub(0.0, 0.7))
            chosen = {p: sum(v == p for v in layers.values()) for p in ("int4", "int8", "float")}
            task.note(
                f"proposed for a {params.budget:g} pt budget per layer: "
                + ", ".join(f"{count} layer(s) {p}" for p, count in chosen.items() if count)
            )
        proto = copy_proto(model.to_onnx())
        strip_initializer_inputs(proto)
        slots = require_slots(weight_slots(proto), "quantize")
        precision = {slot.name: layers.get(slot.node, layers.get(slot.name, params.default)) for slot in slots}
        opsets = [max(CODE_TYPES["int4"][1], BLOCKED_OPSET) if p == "int4" else 13 for p in precision.values()]
        proto = ensure_opset(proto, max(opsets), task.notes)
        for index, slot in enumerate(slots):
            task.check()
            task.report(0.7 + 0.25 * index / len(slots), f"{precision[slot.name]} {slot.node or slot.name}")
            if precision[slot.name] == "int4":
                quantize_slot(proto, slot, "int4", params.block_size)
            elif precision[slot.name] == "int8":
                quantize_slot(proto, slot, "int8")
        check_loads(proto, "mixed precision")
        return model.derive(onnx_proto=proto)

    @staticmethod
    def _propose(model: Model, budget: float, task: Task) -> dict[str, str]:
        from workbench.plugin import discover_plugins
        from workbench.sensitivity import sweep

        data = task.data("calibration", "proposing a precision per layer (a sensitivity sweep)")
        report = sweep(model, data, discover_plugins(), sparsities=(), samples=256, task=task)
        return report.propose_precisions(budget)
