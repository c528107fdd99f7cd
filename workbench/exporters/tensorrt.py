"""TensorRT (Jetson): the ONNX file TensorRT starts from (fp16 when the variant is float) and a
``build_engine.sh`` that runs trtexec on the device, as Coral's bundle does for edgetpu_compiler."""

from __future__ import annotations

from typing import ClassVar

from workbench.device_export import QOPERATOR_OPS
from workbench.exporters import Converted, ExportContext, Exporter, onnx_runtime
from workbench.fileio import atomic_write_bytes


class TensorRtExporter(Exporter):
    format: ClassVar[str] = "onnx-fp16"
    label: ClassVar[str] = "TensorRT (ONNX + trtexec script)"
    runtime: ClassVar[str] = "onnxruntime"
    precisions: ClassVar[tuple[str, ...]] = ("fp16", "int8")

    def export_precision(self, device, precision):
        return "fp16" if precision == "fp32" else precision

    def refusals(self, model, plan) -> list[str]:
        ops = {n.op_type for n in model.to_onnx().graph.node}
        if ops & QOPERATOR_OPS:
            return [
                "TensorRT takes int8 only as QDQ pairs, and this variant uses onnxruntime's integer operators "
                f"({', '.join(sorted(ops & QOPERATOR_OPS))}): quantize static int8 with quant_format QDQ, or "
                "export the float parent"
            ]
        if plan.export_precision not in self.precisions:
            return [
                f"{plan.export_precision} is not a precision TensorRT builds from this ONNX: export the float "
                "parent (converted to fp16 here) or a static int8 QDQ variant"
            ]
        return []

    def convert(self, context: ExportContext) -> Converted:
        model, plan = context.model, context.plan
        proto = model.to_onnx()
        if plan.export_precision == "fp16" and plan.variant_precision == "fp32":
            from workbench.plugin import run_plugin
            from workbench.plugins.quantize_fp16 import QuantizeFp16

            proto = run_plugin(QuantizeFp16(), model, {}, context.task).to_onnx()
        name = "model_fp16.onnx" if plan.export_precision == "fp16" else "model.onnx"
        atomic_write_bytes(context.staging / name, model.derive(onnx_proto=proto).artifact_bytes())
        flag = "--fp16" if plan.export_precision == "fp16" else "--int8"
        script = (
            f"#!/bin/sh\n# Run on the Jetson: builds a TensorRT engine for this GPU.\n"
            f"trtexec --onnx={name} --saveEngine=model.engine {flag}\n"
        )
        (context.staging / "build_engine.sh").write_text(script, encoding="utf-8")
        (context.staging / "build_engine.sh").chmod(0o755)
        not_run = [
            "TensorRT engine build (trtexec) and on-GPU parity and latency: need the Jetson; the figures here "
            "are the ONNX file TensorRT starts from, run in onnxruntime on this host"
        ]
        return Converted([name, "build_engine.sh"], onnx_runtime(context.staging, name), not_run)

    def instructions(self) -> list[str]:
        return [
            "On the Jetson, `sh build_engine.sh` builds `model.engine` with TensorRT's trtexec; load it with the "
            "TensorRT runtime, or run the ONNX file with onnxruntime's TensorRT execution provider.",
            "",
        ]
