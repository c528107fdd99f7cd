"""One-click export of a variant for a device profile: plan (budgets, refusals, estimates), convert,
verify in the runtimes that run here, and write a complete bundle atomically.

Bundle: the model file(s), ``manifest.json`` (device, precision, I/O, preprocessing, metrics, sha256 of
every file, recipe, estimates, verification), ``README.md`` with a run snippet, ``report.json`` (parity
and benchmark) and optionally fleet packaging (AWS IoT Greengrass recipe or Azure IoT Edge manifest).
"""

from __future__ import annotations

import json
import logging
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from workbench.datasets import split_rule
from workbench.devices import DeviceProfile, Precision
from workbench.errors import WorkbenchError, describe_exception
from workbench.evaluate import score_outputs
from workbench.feeds import run_dataset
from workbench.fileio import (
    atomic_write_bytes,
    atomic_write_text,
    remove_abandoned,
    sha256_bytes,
    sha256_file,
    staging_dir,
)
from workbench.metrics import MetricSettings
from workbench.plugin import Task
from workbench.runtime import (
    GRAPH_OPTIMIZATION_LEVELS,
    RuntimeSettings,
    make_session,
    open_session,
    quiet_stdout,
    session_options,
    settings_for,
)

if TYPE_CHECKING:
    import onnx

    from workbench.artifact_metrics import ArtifactMetrics
    from workbench.model import Model
    from workbench.project import Project

Fleet = Literal["greengrass", "azure"]
# (min top-1 agreement, min output SNR dB) an exported artifact must reach against its variant.
TOLERANCE: dict[str, tuple[float, float]] = {
    "fp32": (0.999, 40.0),  # other runtimes' kernels round differently: ~50 dB is normal
    "fp16": (0.99, 30.0),
    "int8-weights": (0.97, 20.0),
    "int8": (0.97, 15.0),
    "int4": (0.95, 10.0),
}
BUNDLE_LATENCY_RUNS = 100  # at least; tiny models get more (see artifact_metrics.timed_runs)
EXPORTING = ".exporting-"  # staging folders of an export, inside the output folder


class ExportRefused(WorkbenchError):
    """The device cannot take this model; nothing was written."""


@dataclass
class Budget:
    label: str
    used: int
    limit: int

    @property
    def fraction(self) -> float:
        return self.used / self.limit if self.limit else float("inf")


@dataclass
class ExportPlan:
    device: DeviceProfile
    variant_id: str
    variant_precision: Precision
    export_precision: Precision
    budgets: list[Budget]
    latency_estimate_s: float | None
    energy_estimate_j: float
    refusals: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.refusals


def variant_precision(proto: onnx.ModelProto) -> Precision:
    from workbench.weight_codec import narrowest_code_bits

    ops = {n.op_type for n in proto.graph.node}
    if "MatMulNBits" in ops or (narrowest_code_bits(proto) or 8) <= 4:
        return "int4"
    if ops & {
        "QuantizeLinear",
        "QLinearConv",
        "QLinearMatMul",
        "DynamicQuantizeLinear",
        "ConvInteger",
        "MatMulInteger",
    }:
        return "int8"
    if "DequantizeLinear" in ops:
        return "int8-weights"
    if any(init.data_type == 10 for init in proto.graph.initializer):  # TensorProto.FLOAT16
        return "fp16"
    return "fp32"


QOPERATOR_OPS = {"QLinearConv", "QLinearMatMul", "ConvInteger", "MatMulInteger", "DynamicQuantizeLinear"}


def _export_precision(device: DeviceProfile, precision: Precision) -> Precision:
    fmt = device.export.format
    if fmt == "c-header":
        return "int8-weights" if precision in ("fp32", "int8-weights") else precision
    if fmt == "onnx-fp16" and precision == "fp32":
        return "fp16"
    if fmt == "tflite":
        return "int8"
    return precision


def plan_export(project: Project, variant_id: str, device: DeviceProfile) -> ExportPlan:
    """Everything known before writing a byte: budgets, estimates, refusals (with a fix), warnings."""
    from workbench.analysis import analyze

    variant = project.get(variant_id)
    model = project.load_model(variant_id)
    proto = model.to_onnx()
    precision = variant_precision(proto)
    target = _export_precision(device, precision)
    analysis = analyze(model.derive(onnx_proto=proto))
    weights = analysis.weight_bytes
    storage = {"fp16": weights // 2, "int8-weights": weights // 4 + 4096, "int8": weights // 4 + 4096}.get(target)
    storage = storage if storage is not None and target != precision else len(model.artifact_bytes())
    activation_scale = {"fp16": 0.5, "int8": 0.25, "int8-weights": 0.25 if device.export.format == "c-header" else 1}
    peak = int(analysis.peak_activation_bytes * activation_scale.get(target, 1.0))
    latency, energy = device.estimate(analysis.macs, target)
    plan = ExportPlan(
        device=device,
        variant_id=variant.id,
        variant_precision=precision,
        export_precision=target,
        budgets=[
            Budget("model storage", storage, device.storage_bytes),
            Budget("peak activations", peak, device.ram_bytes),
        ],
        latency_estimate_s=latency,
        energy_estimate_j=energy,
    )
    from workbench.evaluate import safe_batch

    try:
        safe_batch(analysis, len(model.onnx_bytes()))  # conversion checks and the benchmark run it here
    except WorkbenchError as exc:
        plan.refusals.append(f"the model cannot be run here to verify it: {exc.reason}")
    if device.supported_ops is not None and target == "int8-weights":
        unsupported = sorted({n.op_type for n in proto.graph.node} - set(device.supported_ops) - {"Constant"})
        if unsupported:
            plan.refusals.append(
                f"operator(s) {', '.join(unsupported)} have no kernels on {device.name}; try the simplify_graph "
                "plugin first (it folds some away) or pick an architecture built from supported layers"
            )
    if storage > device.storage_bytes:
        need = 1 - device.storage_bytes / storage
        hint = (
            "quantize to int8 first (about 4x smaller)"
            if precision == "fp32" and "int8" in device.precisions
            else f"prune or distill to make it {need:.0%} smaller"
        )
        plan.refusals.append(
            f"model needs {storage:,} B of storage; {device.name} has {device.storage_bytes:,} B: {hint}"
        )
    if peak > device.ram_bytes:
        plan.refusals.append(
            f"peak activations of {peak:,} B exceed the {device.ram_bytes:,} B RAM budget: lower the input "
            "resolution or prune channels (structured_prune)"
        )
    if device.export.format == "tflite":
        plan.refusals.append(_tflite_reason(model))
    ops = {n.op_type for n in proto.graph.node}
    if device.export.format == "c-header" and target != "int8-weights":
        plan.refusals.append(
            f"the C header stores int8 weights of a float graph, and this {precision} variant has none to give: export "
            "its float parent or an int8 weight-only variant (quantize_int8, mode weight_only) for the microcontroller"
        )
    elif device.export.format in ("onnx-fp16", "openvino") and ops & QOPERATOR_OPS:
        runtime = "TensorRT" if device.export.format == "onnx-fp16" else "OpenVINO"
        plan.refusals.append(
            f"{runtime} takes int8 only as QDQ pairs, and this variant uses onnxruntime's integer operators "
            f"({', '.join(sorted(ops & QOPERATOR_OPS))}): quantize static int8 with quant_format QDQ, or export "
            "the float parent"
        )
    elif target not in device.precisions and device.export.format not in ("c-header", "onnx-fp16", "tflite"):
        fix = ", ".join(p for p in device.precisions if p != "int4")
        plan.refusals.append(f"{target} is not a precision {device.name} runs: export a variant in {fix} instead")
    elif target not in device.precisions and device.export.format == "onnx-fp16" and target != "fp16":
        plan.refusals.append(
            f"{target} is not a precision TensorRT builds from this ONNX: export the float parent (converted to "
            "fp16 here) or a static int8 QDQ variant"
        )
    metrics = variant.metrics
    if precision == "int8" and metrics is not None and metrics.latency_ratio and metrics.latency_ratio > 1.05:
        plan.warnings.append(
            f"int8 ran {metrics.latency_ratio:.2f}x slower than fp32 on this host; int8 weight-only storage "
            "keeps the size gain at fp32 speed on CPUs without fast int8"
        )
    if device.export.format == "ort":
        plan.warnings.append(
            "the bundle's required_operators.config lists the operators a reduced ONNX Runtime "
            "Mobile build must include"
        )
    return plan


def _tflite_reason(model: Model) -> str:
    import importlib.util

    if importlib.util.find_spec("ai_edge_torch") is None:
        return (
            "full-int8 TFLite needs the PyTorch-to-LiteRT converter (pip install ai-edge-torch, which pulls "
            "TensorFlow); it is not installed here. Export for another device, or install it where a "
            "TensorFlow-compatible torch is available"
        )
    if not model.has_torch_lineage:
        return "full-int8 TFLite conversion starts from a torch model; this variant has only an ONNX graph"
    return "full-int8 TFLite conversion through ai-edge-torch is not wired up in this version yet"


def export_for_device(
    project: Project,
    variant_id: str,
    device: DeviceProfile,
    out_dir: str | Path,
    *,
    fleet: Fleet | None = None,
    task: Task | None = None,
    runs: int = BUNDLE_LATENCY_RUNS,
    baseline_file: Path | None = None,
) -> Path:
    """Write ``out_dir/<variant>-<device>/`` (complete or not at all) and return it.

    Every figure in the manifest is the exported file's, run in its own runtime with the settings the
    bundle's ``run.py`` uses, on the whole evaluation split; parity with the variant sits beside them.
    ``baseline_file`` names the user's model file when the project is a throwaway (a CLI export of a file),
    so ``workbench verify`` can still find the fp32 baseline.
    """
    task = task or Task()
    plan = plan_export(project, variant_id, device)
    if not plan.ok:
        raise ExportRefused(f"cannot export for {device.name}: " + "; ".join(plan.refusals))
    variant = project.get(variant_id)
    model = project.load_model(variant_id)
    out_dir = Path(out_dir)
    target = out_dir / f"{_safe(variant.name)}-{variant.id}-{device.id}"
    if target.exists():
        raise WorkbenchError("a bundle for this variant and device already exists there", target)
    remove_abandoned(out_dir, (f".*{EXPORTING}*",))  # what an export killed mid-way left here
    # The bundle appears complete or not at all; a failed or cancelled export leaves nothing behind.
    with staging_dir(out_dir, f".{target.name}{EXPORTING}") as staging:
        task.report(0.05, f"converting for {device.name}")
        artifacts, checks, runtime = _convert(model, plan, staging, task.sub(0.05, 0.4))
        task.report(0.4, f"measuring {runtime.file} in {runtime.settings.runtime}")
        measured = _measure_artifact(project, model, staging, runtime, plan, runs, task.sub(0.4, 0.85))
        recipe = project.recipe(variant_id)
        (staging / "recipe.yaml").write_text(recipe.dumps("yaml"), encoding="utf-8")
        report = {
            "device": device.id,
            "verification": measured.parity,
            "not_run_here": checks,
            "measured_this_host": measured.metrics.model_dump(mode="json"),
            "estimates_on_device": {
                "latency_s": plan.latency_estimate_s,
                "energy_j": plan.energy_estimate_j,
                "basis": f"MACs / sustained MAC/s and energy per MAC from the {device.id} profile "
                f"({device.throughput_source}; {device.energy_source})",
                "label": "estimate, not a measurement",
            },
            "budgets": [{"label": b.label, "used": b.used, "limit": b.limit} for b in plan.budgets],
            "warnings": plan.warnings,
        }
        atomic_write_text(staging / "report.json", strict_json(report))
        notes = [f"{v.name}: {note}" for v in project.lineage(variant_id) for note in v.notes]
        (staging / "README.md").write_text(
            bundle_readme(device, plan, artifacts, model, runtime, measured.metrics, notes), encoding="utf-8"
        )
        atomic_write_text(staging / "run.py", _run_py())
        if fleet is not None:
            _fleet(fleet, staging, variant.id, device, artifacts)
        task.check()
        manifest = _manifest(project, variant, model, device, plan, staging, measured, runtime, notes, recipe)
        if baseline_file is not None:
            manifest["baseline"]["model_file"] = str(Path(baseline_file).resolve())
            manifest["baseline"]["model_file_sha256"] = sha256_file(baseline_file)
        atomic_write_text(staging / "manifest.json", strict_json(manifest))
        staging.chmod(0o755)
        staging.rename(target)
    task.report(1.0, f"exported to {target}")
    return target


def strict_json(data: Any) -> str:
    """JSON that every parser accepts: a NaN or infinity is a bug upstream, never written to a bundle."""
    try:
        return json.dumps(data, indent=2, default=str, allow_nan=False)
    except ValueError:
        raise WorkbenchError("refusing to write a manifest with a NaN or infinite figure in it") from None


def _run_py() -> str:
    import importlib.resources

    return (importlib.resources.files("workbench.resources") / "bundle" / "run.py").read_text(encoding="utf-8")


# --- conversion ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class BundleRuntime:
    """The file that runs in the bundle, and exactly how it is loaded (the manifest's ``runtime``)."""

    file: str
    settings: RuntimeSettings

    def to_json(self) -> dict[str, Any]:
        return {"file": self.file, **self.settings.model_dump(mode="json")}

    @classmethod
    def from_json(cls, data: Any, where: Path | None = None) -> BundleRuntime:
        from pydantic import ValidationError

        try:
            fields = dict(data)
            file = str(fields.pop("file"))
            return cls(file, RuntimeSettings.model_validate(fields))
        except (TypeError, ValueError, KeyError, ValidationError) as exc:
            reason = f"the manifest's runtime section is not valid ({describe_exception(exc)})"
            raise WorkbenchError(reason, where) from None


def open_artifact(folder: Path, runtime: BundleRuntime) -> Any:
    """The bundle's artifact loaded exactly as its ``run.py`` loads it: a session-like object."""
    from workbench.untrusted import check_regular_file

    if Path(runtime.file).is_absolute() or ".." in Path(runtime.file).parts:
        raise WorkbenchError(f"the manifest names an artifact outside the bundle ({runtime.file[:80]})", folder)
    path = folder / runtime.file
    check_regular_file(path, WorkbenchError)
    if runtime.settings.runtime == "openvino":
        from workbench.openvino_runtime import OpenVinoSession

        return OpenVinoSession(path, runtime.settings)
    return open_session(path, runtime.settings)


def _onnx_runtime(staging: Path, name: str) -> BundleRuntime:
    return BundleRuntime(name, settings_for((staging / name).read_bytes()))


def _convert(model: Model, plan: ExportPlan, staging: Path, task: Task) -> tuple[list[str], list[str], BundleRuntime]:
    fmt = plan.device.export.format
    onnx_bytes = model.artifact_bytes()
    not_run: list[str] = []
    if fmt == "onnx":
        atomic_write_bytes(staging / "model.onnx", onnx_bytes)
        return ["model.onnx"], not_run, _onnx_runtime(staging, "model.onnx")
    if fmt == "ort":
        settings = settings_for(onnx_bytes)
        return _to_ort(onnx_bytes, staging, settings), not_run, BundleRuntime("model.ort", settings)
    if fmt == "onnx-fp16":
        proto = model.to_onnx()
        if plan.export_precision == "fp16" and plan.variant_precision == "fp32":
            from workbench.plugin import run_plugin
            from workbench.plugins.quantize_fp16 import QuantizeFp16

            proto = run_plugin(QuantizeFp16(), model, {}, task).to_onnx()
        name = "model_fp16.onnx" if plan.export_precision == "fp16" else "model.onnx"
        atomic_write_bytes(staging / name, model.derive(onnx_proto=proto).artifact_bytes())
        flag = "--fp16" if plan.export_precision == "fp16" else "--int8"
        script = (
            f"#!/bin/sh\n# Run on the Jetson: builds a TensorRT engine for this GPU.\n"
            f"trtexec --onnx={name} --saveEngine=model.engine {flag}\n"
        )
        (staging / "build_engine.sh").write_text(script, encoding="utf-8")
        (staging / "build_engine.sh").chmod(0o755)
        not_run.append(
            "TensorRT engine build (trtexec) and on-GPU parity and latency: need the Jetson; the figures here "
            "are the ONNX file TensorRT starts from, run in onnxruntime on this host"
        )
        return [name, "build_engine.sh"], not_run, _onnx_runtime(staging, name)
    if fmt == "openvino":
        from workbench.openvino_runtime import openvino_settings

        return _to_openvino(onnx_bytes, staging), not_run, BundleRuntime("openvino/model.xml", openvino_settings())
    if fmt == "c-header":
        return _to_c_header(model, plan, staging, not_run)
    raise WorkbenchError(f"export format {fmt} is not supported")


def _to_ort(onnx_bytes: bytes, staging: Path, settings: RuntimeSettings) -> list[str]:
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


def _to_openvino(onnx_bytes: bytes, staging: Path) -> list[str]:
    import openvino as ov

    with tempfile.TemporaryDirectory() as tmp:
        source = Path(tmp) / "model.onnx"
        source.write_bytes(onnx_bytes)
        try:
            converted = ov.convert_model(str(source))
            (staging / "openvino").mkdir()
            ov.save_model(converted, str(staging / "openvino" / "model.xml"), compress_to_fp16=False)
        except Exception as exc:
            raise WorkbenchError(f"OpenVINO conversion failed: {str(exc).splitlines()[0][:200]}") from None
    return ["openvino/model.xml", "openvino/model.bin"]


def _to_c_header(
    model: Model, plan: ExportPlan, staging: Path, not_run: list[str]
) -> tuple[list[str], list[str], BundleRuntime]:
    """int8 per-channel weights + float scales as C arrays, and the same graph as ONNX for reference.

    A variant that already stores int8 weights keeps them exactly; a float one is quantized here."""
    from onnx import numpy_helper

    from workbench.onnx_prep import copy_proto, strip_initializer_inputs
    from workbench.plugins.quantize_int8 import weight_only_int8

    proto = copy_proto(model.to_onnx())
    strip_initializer_inputs(proto)
    if plan.variant_precision != "int8-weights":
        proto = weight_only_int8(proto, per_channel=True, exclude=set())
    atomic_write_bytes(staging / "model_int8_weights.onnx", proto.SerializeToString())
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
    (staging / "model_weights.h").write_text("\n".join(lines) + "\n", encoding="utf-8")
    not_run.append(
        "the firmware itself (CMSIS-NN kernels on the microcontroller); the figures here are "
        "model_int8_weights.onnx, which holds exactly the header's int8 weights, run in onnxruntime"
    )
    return ["model_weights.h", "model_int8_weights.onnx"], not_run, _onnx_runtime(staging, "model_int8_weights.onnx")


# --- measuring the artifact ------------------------------------------------------------------------
_AGREEMENT = {"top1": "top-1 agreement", "miou": "per-pixel agreement", "ctc": "decoded-sequence agreement"}


@dataclass
class ArtifactMeasurement:
    metrics: ArtifactMetrics
    parity: dict[str, Any]


def _measure_artifact(
    project: Project, model: Model, staging: Path, runtime: BundleRuntime, plan: ExportPlan, runs: int, task: Task
) -> ArtifactMeasurement:
    from workbench.artifact_metrics import artifact_metrics, evaluation_data

    artifact = open_artifact(staging, runtime)
    shapes = model.concrete_shapes()
    data = evaluation_data(project.dataset, model)
    task.report(0.0, "running the variant for parity")
    scoring = project.scoring or MetricSettings()
    reference = run_dataset(make_session(model.artifact_bytes()), data, model.input_spec, max_batch=1)
    baseline_bytes = project.load_model(project.root.id).artifact_bytes()
    metrics, outputs = artifact_metrics(
        artifact,
        runtime,
        data,
        shapes,
        folder=staging,
        baseline=baseline_bytes,
        runs=runs,
        task=task.sub(0.1, 1.0),
        input_spec=model.input_spec,
        scoring=scoring,
    )
    streamed = model.input_spec is not None and model.input_spec.streaming
    parity = _parity(runtime, reference, outputs, plan.export_precision, scoring, streamed)
    if not parity["passed"]:
        raise WorkbenchError(f"exported model does not match the variant: {parity['summary']}")
    metrics.agreement_with_variant = parity["agreement"]
    metrics.snr_db_vs_variant = parity["snr_db"]
    metrics.max_abs_diff_vs_variant = parity["max_abs_diff"]
    return ArtifactMeasurement(metrics, parity)


def _parity(
    runtime: BundleRuntime,
    reference_outputs: Mapping[str, np.ndarray],
    got_outputs: Mapping[str, np.ndarray],
    precision: str,
    scoring: MetricSettings,
    streamed: bool = False,
) -> dict[str, Any]:
    """The artifact against its variant on the scored output: the metric's agreement (top-1, per pixel,
    decoded sequences; cosine similarity when no metric fits) and the output SNR."""
    scored = score_outputs(got_outputs, None, reference_outputs, scoring, streamed)
    name = scoring.output or next(iter(reference_outputs))
    reference, got = reference_outputs[name], got_outputs[name]
    count = len(reference)
    fidelity = scored.output_fidelity[name] if scored.output_fidelity else None
    agreement = scored.agreement if scored.agreement is not None else (fidelity.cosine if fidelity else 1.0)
    snr = scored.snr_db
    min_agreement, min_snr = TOLERANCE.get(precision, TOLERANCE["fp32"])
    passed = agreement >= min_agreement and (snr is None or snr >= min_snr)
    snr_text = "identical" if snr is None else f"{snr:.1f} dB"
    where = f"{runtime.file} in {runtime.settings.runtime} {runtime.settings.version}"
    return {
        "runtime": runtime.settings.describe(),
        "samples": count,
        "precision": precision,
        "agreement": agreement,
        "snr_db": snr,
        "max_abs_diff": float(np.max(np.abs(reference.astype(np.float64) - got.astype(np.float64)))),
        "tolerance": {"min_agreement": min_agreement, "min_snr_db": min_snr},
        "passed": passed,
        "summary": f"{agreement:.2%} {_AGREEMENT.get(scored.metric, 'cosine similarity')} with the variant, output SNR "
        f"{snr_text}, {count} samples, {where}",
    }


def _manifest(
    project: Project,
    variant,
    model: Model,
    device: DeviceProfile,
    plan: ExportPlan,
    staging: Path,
    measured: ArtifactMeasurement,
    runtime: BundleRuntime,
    notes: list[str],
    recipe,
) -> dict[str, Any]:
    session = make_session(model.artifact_bytes())
    files = {}
    for path in sorted(p for p in staging.rglob("*") if p.is_file()):
        data = path.read_bytes()
        files[str(path.relative_to(staging))] = {"sha256": sha256_bytes(data), "bytes": len(data)}
    dataset = project.dataset
    root = project.root
    return {
        "format": "model-workbench-bundle",
        "version": 2,
        "device": {"id": device.id, "name": device.name, "runtime": device.runtime},
        "precision": plan.export_precision,
        "variant": {"id": variant.id, "name": variant.name, "precision": plan.variant_precision},
        "runtime": runtime.to_json(),
        "inputs": [{"name": i.name, "dtype": i.type, "shape": i.shape} for i in session.get_inputs()],
        "outputs": [{"name": o.name, "dtype": o.type, "shape": o.shape} for o in session.get_outputs()],
        "input_shapes": {k: list(v) for k, v in model.concrete_shapes().items()},
        "preprocessing": dataset.preprocessing.model_dump(mode="json") if dataset else None,
        "dataset": dataset.model_dump(mode="json") if dataset else None,
        "split_rule": split_rule(dataset) if dataset else None,
        # audio: the device computes the same features the figures were measured on
        **({"front_end": dataset.front_end.model_dump(mode="json")} if dataset and dataset.front_end else {}),
        "metrics": measured.metrics.model_dump(mode="json"),
        "variant_metrics": {
            "label": "the variant as measured in the project (its ONNX file in onnxruntime); the bundle's own "
            "figures are under 'metrics'",
            **(variant.metrics.model_dump(mode="json") if variant.metrics else {}),
        },
        "baseline": {
            "label": "the fp32 model the latency ratio is against",
            "sha256": root.onnx_sha,
            "project_artifact": str(project.artifact_path(root.id)),
        },
        "notes": notes,
        "estimates_on_device": {
            "latency_s": plan.latency_estimate_s,
            "energy_j": plan.energy_estimate_j,
            "label": "estimate from the device profile",
        },
        "verification": measured.parity,
        "files": files,
        "recipe": recipe.model_dump(mode="json"),
    }


def bundle_readme(
    device: DeviceProfile,
    plan: ExportPlan,
    artifacts: list[str],
    model: Model,
    runtime: BundleRuntime,
    metrics: ArtifactMetrics,
    notes: list[str],
) -> str:
    name = model.inputs[0].name
    shape = tuple(model.concrete_shapes()[name])
    budgets = "\n".join(f"- {b.label}: {b.used:,} B of {b.limit:,} B ({b.fraction:.0%})" for b in plan.budgets)
    latency = "unknown" if plan.latency_estimate_s is None else f"{plan.latency_estimate_s * 1000:.3f} ms"
    lines = [
        f"# {device.name}",
        "",
        f"Precision: {plan.export_precision}. Files: {', '.join(artifacts)}.",
        "",
        "## Run",
        "",
        f"`python run.py` loads `{runtime.file}` exactly as every figure below was measured:",
        f"{runtime.settings.describe()}. The same, by hand:",
        "",
        _snippet(runtime, name, shape),
        "",
        *_extra_instructions(device),
        "## Measured on the exporting host",
        "",
        *[f"- {line}" for line in metrics.describe_lines()],
        "",
        "## Budgets",
        "",
        budgets,
        "",
        "## Estimates (from the device profile, not measured)",
        "",
        f"- latency ≈ {latency} per inference",
        f"- energy ≈ {plan.energy_estimate_j * 1000:.4f} mJ per inference",
        f"- basis: {device.throughput_source}; {device.energy_source}",
        "",
    ]
    if notes:
        lines += ["## Notes from the steps", "", *[f"- {note}" for note in notes], ""]
    lines += [
        "`manifest.json` holds these figures, the runtime settings, hashes and preprocessing; `report.json` "
        "says what could not run here. `workbench verify BUNDLE` recomputes them.",
        "",
    ]
    return "\n".join(lines)


def _snippet(runtime: BundleRuntime, name: str, shape: tuple[int, ...]) -> str:
    settings = runtime.settings
    if settings.runtime == "openvino":
        from workbench.openvino_runtime import compile_properties

        return "\n".join(
            [
                "```python",
                "import numpy as np, openvino as ov",
                f'compiled = ov.Core().compile_model("{runtime.file}", "{settings.provider}", '
                f"{compile_properties(settings)!r})",
                f"print(compiled(np.zeros({shape}, np.float32))[compiled.output(0)])",
                "```",
            ]
        )
    config = [f'options.add_session_config_entry("{k}", "{v}")' for k, v in sorted(settings.config.items())]
    level = GRAPH_OPTIMIZATION_LEVELS[settings.graph_optimization]
    return "\n".join(
        [
            "```python",
            "import numpy as np, onnxruntime as ort",
            "options = ort.SessionOptions()",
            f"options.intra_op_num_threads = {settings.threads}",
            "options.inter_op_num_threads = 1",
            f"options.graph_optimization_level = ort.GraphOptimizationLevel.{level}",
            *config,
            f'session = ort.InferenceSession("{runtime.file}", options, providers=["{settings.provider}"])',
            f'print(session.run(None, {{"{name}": np.zeros({shape}, np.float32)}})[0])',
            "```",
        ]
    )


def _extra_instructions(device: DeviceProfile) -> list[str]:
    fmt = device.export.format
    if fmt == "ort":
        return [
            "For a reduced-size Android/iOS runtime, build onnxruntime with "
            "`--minimal_build --include_ops_by_config required_operators.config`. The graph optimizations were "
            "applied when the .ort file was written, with the settings above.",
            "",
        ]
    if fmt == "onnx-fp16":
        return [
            "On the Jetson, `sh build_engine.sh` builds `model.engine` with TensorRT's trtexec; load it with the "
            "TensorRT runtime, or run the ONNX file with onnxruntime's TensorRT execution provider.",
            "",
        ]
    if fmt == "c-header":
        return [
            "`model_weights.h` holds every Conv/Gemm weight as `int8_t` arrays with per-channel float scales. "
            "Wire them into CMSIS-NN (or TFLite Micro) kernels in your firmware; `model_int8_weights.onnx` is the "
            "same network with the same int8 weights, for checking on a PC (that is what run.py runs).",
            "",
        ]
    return []


def _fleet(kind: Fleet, staging: Path, variant_id: str, device: DeviceProfile, artifacts: list[str]) -> None:
    import base64
    import hashlib

    import yaml

    (staging / "fleet").mkdir()
    if kind == "greengrass":
        recipe = {
            "RecipeFormatVersion": "2020-01-25",
            "ComponentName": f"com.modelworkbench.{variant_id}",
            "ComponentVersion": "1.0.0",
            "ComponentDescription": f"Model Workbench bundle for {device.name}",
            "ComponentPublisher": "Model Workbench",
            "Manifests": [
                {
                    "Platform": {"os": "linux"},
                    "Lifecycle": {"Run": "echo 'replace with your inference command'"},
                    "Artifacts": [
                        {
                            "URI": f"s3://YOUR-BUCKET/{variant_id}/{name}",
                            "Digest": base64.b64encode(hashlib.sha256((staging / name).read_bytes()).digest()).decode(),
                            "Algorithm": "SHA-256",
                        }
                        for name in artifacts
                    ],
                }
            ],
        }
        (staging / "fleet" / "greengrass-recipe.yaml").write_text(
            yaml.safe_dump(recipe, sort_keys=False), encoding="utf-8"
        )
    else:
        manifest = {
            "modulesContent": {
                "$edgeAgent": {
                    "properties.desired": {
                        "modules": {
                            f"workbench-{variant_id}": {
                                "version": "1.0",
                                "type": "docker",
                                "status": "running",
                                "restartPolicy": "always",
                                "settings": {
                                    "image": "YOUR-REGISTRY/your-inference-image:latest",
                                    "createOptions": json.dumps(
                                        {"HostConfig": {"Binds": [f"/opt/models/{variant_id}:/model:ro"]}}
                                    ),
                                },
                            }
                        }
                    }
                }
            }
        }
        (staging / "fleet" / "azure-iot-edge-deployment.json").write_text(
            json.dumps(manifest, indent=2), encoding="utf-8"
        )


def _safe(name: str) -> str:
    cleaned = "".join(c if c.isalnum() or c in "-_." else "-" for c in name).strip("-")
    return "-".join(filter(None, cleaned.split("-")))[:50] or "variant"
