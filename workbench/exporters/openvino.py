"""OpenVINO IR (``model.xml`` + ``model.bin``) for Intel CPUs, run here by OpenVINO's CPU plugin."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any, ClassVar

from workbench.device_export import QOPERATOR_OPS
from workbench.errors import WorkbenchError
from workbench.exporters import BundleRuntime, Converted, ExportContext, Exporter


class OpenVinoExporter(Exporter):
    format: ClassVar[str] = "openvino"
    label: ClassVar[str] = "OpenVINO IR"
    runtime: ClassVar[str] = "openvino"
    precisions: ClassVar[tuple[str, ...]] = ("fp32", "fp16", "int8-weights", "int8")
    requires: ClassVar[tuple[str, ...]] = ("openvino",)

    def refusals(self, model, plan) -> list[str]:
        ops = {n.op_type for n in model.to_onnx().graph.node}
        if ops & QOPERATOR_OPS:
            return [
                "OpenVINO takes int8 only as QDQ pairs, and this variant uses onnxruntime's integer operators "
                f"({', '.join(sorted(ops & QOPERATOR_OPS))}): quantize static int8 with quant_format QDQ, or "
                "export the float parent"
            ]
        return super().refusals(model, plan)

    def convert(self, context: ExportContext) -> Converted:
        import openvino as ov

        from workbench.openvino_runtime import openvino_settings

        with tempfile.TemporaryDirectory() as tmp:
            source = Path(tmp) / "model.onnx"
            source.write_bytes(context.model.artifact_bytes())
            try:
                converted = ov.convert_model(str(source))
                (context.staging / "openvino").mkdir()
                ov.save_model(converted, str(context.staging / "openvino" / "model.xml"), compress_to_fp16=False)
            except Exception as exc:
                raise WorkbenchError(f"OpenVINO conversion failed: {str(exc).splitlines()[0][:200]}") from None
        runtime = BundleRuntime("openvino/model.xml", openvino_settings())
        return Converted(["openvino/model.xml", "openvino/model.bin"], runtime)

    def open(self, path: Path, runtime: BundleRuntime) -> Any:
        from workbench.openvino_runtime import OpenVinoSession

        return OpenVinoSession(path, runtime.settings)

    def files(self, folder: Path, runtime: BundleRuntime) -> list[Path]:
        main = folder / runtime.file
        return [main, main.with_suffix(".bin")]

    def snippet(self, runtime: BundleRuntime, name: str, shape: tuple[int, ...]) -> str:
        from workbench.openvino_runtime import compile_properties

        return "\n".join(
            [
                "```python",
                "import numpy as np, openvino as ov",
                f'compiled = ov.Core().compile_model("{runtime.file}", "{runtime.settings.provider}", '
                f"{compile_properties(runtime.settings)!r})",
                f"print(compiled(np.zeros({shape}, np.float32))[compiled.output(0)])",
                "```",
            ]
        )
