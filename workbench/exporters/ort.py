"""ONNX Runtime Mobile's ``.ort`` file, optimized once with the settings its figures use, and the operator
list a reduced build needs."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import ClassVar

from workbench.errors import WorkbenchError, describe_exception
from workbench.exporters import BundleRuntime, Converted, ExportContext, Exporter
from workbench.runtime import RuntimeSettings, quiet_stdout, session_options, settings_for


class OrtExporter(Exporter):
    format: ClassVar[str] = "ort"
    label: ClassVar[str] = "ONNX Runtime Mobile (.ort)"
    runtime: ClassVar[str] = "onnxruntime"
    precisions: ClassVar[tuple[str, ...]] = ("fp32", "fp16", "int8-weights", "int8", "int4")

    def convert(self, context: ExportContext) -> Converted:
        onnx_bytes = context.model.artifact_bytes()
        settings = settings_for(onnx_bytes)
        return Converted(to_ort(onnx_bytes, context.staging, settings), BundleRuntime("model.ort", settings))

    def instructions(self) -> list[str]:
        return [
            "For a reduced-size Android/iOS runtime, build onnxruntime with "
            "`--minimal_build --include_ops_by_config required_operators.config`. The graph optimizations were "
            "applied when the .ort file was written, with the settings above.",
            "",
        ]


def to_ort(onnx_bytes: bytes, staging: Path, settings: RuntimeSettings) -> list[str]:
    """The .ort file, optimized once at conversion with the session settings its figures use (the
    mobile runtime does not optimize again), plus the operator list for a reduced build."""
    import onnxruntime as ort
    from onnxruntime.tools.ort_format_model import create_config_from_models

    options = session_options(settings.threads)
    for key, value in settings.config.items():
        options.add_session_config_entry(key, value)
    options.optimized_model_filepath = str(staging / "model.ort")
    options.add_session_config_entry("session.save_model_format", "ORT")
    try:
        with quiet_stdout():
            # NCHWc layouts are x86-only: a phone's Arm cores could not run the saved graph.
            ort.InferenceSession(
                onnx_bytes, options, providers=["CPUExecutionProvider"], disabled_optimizers=["NchwcTransformer"]
            )
            logger = logging.getLogger("ort_format_model.utils")  # logs its progress at INFO
            level = logger.level
            logger.setLevel(logging.WARNING)
            try:
                create_config_from_models([staging / "model.ort"], staging / "required_operators.config", False)
            finally:
                logger.setLevel(level)
    except Exception as exc:
        raise WorkbenchError(f"conversion to the .ort format failed ({describe_exception(exc)[:200]})") from None
    return ["model.ort", "required_operators.config"]
