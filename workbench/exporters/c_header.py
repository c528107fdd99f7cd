"""The hand-made microcontroller header: int8 per-channel weights and float scales as C arrays, for
models TensorFlow Lite Micro cannot take (no torch lineage to convert from). The same graph as ONNX
is the reference the figures are measured on."""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from workbench.exporters import Converted, ExportContext, Exporter, onnx_runtime
from workbench.fileio import atomic_write_bytes


class CHeaderExporter(Exporter):
    format: ClassVar[str] = "c-header"
    label: ClassVar[str] = "int8 weights as a C header"
    runtime: ClassVar[str] = "onnxruntime"
    precisions: ClassVar[tuple[str, ...]] = ("int8-weights",)

    def export_precision(self, device, precision):
        return "int8-weights" if precision in ("fp32", "int8-weights") else precision

    def refusals(self, model, plan) -> list[str]:
        if plan.export_precision != "int8-weights":
            return [
                f"the C header stores int8 weights of a float graph, and this {plan.variant_precision} variant has "
                "none to give: export its float parent or an int8 weight-only variant (quantize_int8, mode "
                "weight_only) for the microcontroller"
            ]
        supported = plan.device.supported_ops
        if supported is not None:
            unsupported = sorted({n.op_type for n in model.to_onnx().graph.node} - set(supported) - {"Constant"})
            if unsupported:
                return [
                    f"operator(s) {', '.join(unsupported)} have no kernels on {plan.device.name}; try the "
                    "simplify_graph plugin first (it folds some away) or pick an architecture built from "
                    "supported layers"
                ]
        return []

    def convert(self, context: ExportContext) -> Converted:
        from onnx import numpy_helper

        from workbench.onnx_prep import copy_proto, strip_initializer_inputs
        from workbench.plugins.quantize_int8 import weight_only_int8

        proto = copy_proto(context.model.to_onnx())
        strip_initializer_inputs(proto)
        if context.plan.variant_precision != "int8-weights":
            proto = weight_only_int8(proto, per_channel=True, exclude=set())
        atomic_write_bytes(context.staging / "model_int8_weights.onnx", proto.SerializeToString())
        lines = [
            "/* int8 weights (per output channel) exported by Model Workbench.",
            " * weight = (int8 value - zero point) * scale[channel]. Layout: row-major, as in the ONNX graph. */",
            "#pragma once",
            "#include <stdint.h>",
            "",
        ]
        for init in proto.graph.initializer:
            array = numpy_helper.to_array(init)
            symbol = "".join(c if c.isalnum() else "_" for c in init.name).strip("_")
            if array.dtype == np.int8:
                lines.append(f"/* shape {list(array.shape)} */")
                lines.append(f"static const int8_t {symbol}[{array.size}] = {{{', '.join(map(str, array.ravel()))}}};")
            elif array.dtype == np.float32 and array.size:
                values = ", ".join(f"{v:.9g}f" for v in array.ravel())
                lines.append(f"static const float {symbol}[{array.size}] = {{{values}}};")
        (context.staging / "model_weights.h").write_text("\n".join(lines) + "\n", encoding="utf-8")
        not_run = [
            "the firmware itself (CMSIS-NN kernels on the microcontroller); the figures here are "
            "model_int8_weights.onnx, which holds exactly the header's int8 weights, run in onnxruntime"
        ]
        runtime = onnx_runtime(context.staging, "model_int8_weights.onnx")
        return Converted(["model_weights.h", "model_int8_weights.onnx"], runtime, not_run)

    def instructions(self) -> list[str]:
        return [
            "`model_weights.h` holds every Conv/Gemm weight as `int8_t` arrays with per-channel float scales. "
            "Wire them into CMSIS-NN kernels in your firmware; `model_int8_weights.onnx` is the same network with "
            "the same int8 weights, for checking on a PC (that is what run.py runs).",
            "",
        ]
