"""The variant's ONNX file as the workbench measured it, for onnxruntime on any host."""

from __future__ import annotations

from typing import ClassVar

from workbench.exporters import Converted, ExportContext, Exporter, onnx_runtime
from workbench.fileio import atomic_write_bytes


class OnnxExporter(Exporter):
    format: ClassVar[str] = "onnx"
    label: ClassVar[str] = "ONNX"
    runtime: ClassVar[str] = "onnxruntime"
    precisions: ClassVar[tuple[str, ...]] = ("fp32", "fp16", "int8-weights", "int8", "int4")

    def convert(self, context: ExportContext) -> Converted:
        atomic_write_bytes(context.staging / "model.onnx", context.model.artifact_bytes())
        return Converted(["model.onnx"], onnx_runtime(context.staging, "model.onnx"))
