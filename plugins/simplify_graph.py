"""Graph simplification with onnxslim: constant folding, Conv+BatchNorm folding, dead-node removal."""

from __future__ import annotations

from typing import TYPE_CHECKING

from workbench.errors import PluginError
from workbench.onnx_prep import check_loads, copy_proto, simplify, strip_initializer_inputs
from workbench.plugin import Plugin, PluginKind, PluginParams, Task

if TYPE_CHECKING:
    from workbench.model import Model


class SimplifyGraph(Plugin):
    id = "simplify_graph"
    title = "Simplify graph"
    kind = PluginKind.GRAPH
    formats = frozenset({"onnx"})
    Params = PluginParams
    description = "onnxslim: fold constants and BatchNorm into convolutions, drop dead nodes. Outputs unchanged."

    def apply(self, model: Model, params: PluginParams, task: Task) -> Model:
        notes: list[str] = []
        proto = copy_proto(model.to_onnx())
        strip_initializer_inputs(proto)
        task.report(0.2, "simplifying")
        slimmed = simplify(proto, notes)
        if notes:
            raise PluginError(f"graph simplification failed: {notes[0]}")
        check_loads(slimmed, "graph simplification")
        return model.derive(onnx_proto=slimmed)
