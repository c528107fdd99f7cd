"""One-click export of a variant for a device profile: plan (budgets, refusals, estimates), convert,
verify in the runtimes that run here, and write a complete bundle atomically.

Bundle: the model file(s), ``manifest.json`` (device, precision, I/O, preprocessing, metrics, sha256 of
every file, recipe, estimates, verification), ``README.md`` with a run snippet, ``report.json`` (parity
and benchmark) and optionally fleet packaging (AWS IoT Greengrass recipe or Azure IoT Edge manifest).
"""

from __future__ import annotations

import gc
import json
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from workbench.datasets import split_rule
from workbench.devices import DeviceProfile, Precision
from workbench.errors import WorkbenchError
from workbench.evaluate import score_outputs
from workbench.exporters import BundleRuntime, Converted, open_artifact
from workbench.feeds import run_dataset
from workbench.fileio import (
    atomic_write_text,
    remove_abandoned,
    sha256_bytes,
    sha256_file,
    staging_dir,
)
from workbench.metrics import MetricSettings
from workbench.plugin import Task
from workbench.runtime import make_session

if TYPE_CHECKING:
    import onnx

    from workbench.artifact_metrics import ArtifactMetrics
    from workbench.model import Model
    from workbench.placement import LayerPlacement
    from workbench.project import Project

Fleet = Literal["greengrass", "azure"]
# (min top-1 agreement, min output SNR dB) an exported artifact must reach against its variant.
TOLERANCE: dict[str, tuple[float, float]] = {
    "fp32": (0.999, 40.0),  # other runtimes' kernels round differently: ~50 dB is normal
    "fp16": (0.99, 30.0),
    "int8-weights": (0.97, 20.0),
    "int8": (0.97, 15.0),
    "int4": (0.95, 10.0),
    # Full int8 with int8 outputs (LiteRT for Coral and MCUs): the output's own 8-bit step caps its SNR near
    # 15 dB on logits, so agreement is what must hold.
    "int8-io": (0.97, 10.0),
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
    format: str = ""  # the exporter that writes the bundle (the profile's, or its fallback)
    also: list[str] = field(default_factory=list)  # further formats written and verified beside it
    placements: list[LayerPlacement] = field(default_factory=list)  # where each layer runs (predicted)

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


def plan_export(
    project: Project, variant_id: str, device: DeviceProfile, precision: Precision | None = None
) -> ExportPlan:
    """Everything known before writing a byte: budgets, estimates, refusals (with a fix), warnings.

    ``precision`` asks the exporter for a precision other than the profile's or the variant's (LiteRT
    writes fp32, fp16, dynamic int8 or full int8 from one float variant)."""
    from workbench.analysis import analyze
    from workbench.exporters import get_exporter

    variant = project.get(variant_id)
    model = project.load_model(variant_id)
    proto = model.to_onnx()
    variant_bits = variant_precision(proto)
    exporter = get_exporter(device.export.format)
    target = precision or exporter.export_precision(device, variant_bits)
    analysis = analyze(model.derive(onnx_proto=proto))
    weights = analysis.weight_bytes
    storage = {"fp16": weights // 2, "int8-weights": weights // 4 + 4096, "int8": weights // 4 + 4096}.get(target)
    storage = storage if storage is not None and target != variant_bits else len(model.artifact_bytes())
    activation_scale = {"fp16": 0.5, "int8": 0.25, "int8-weights": 0.25 if exporter.format == "c-header" else 1}
    peak = int(analysis.peak_activation_bytes * activation_scale.get(target, 1.0))
    latency, energy = device.estimate(analysis.macs, target)
    plan = ExportPlan(
        device=device,
        variant_id=variant.id,
        variant_precision=variant_bits,
        export_precision=target,
        budgets=[
            Budget("model storage", storage, device.storage_bytes),
            Budget("peak activations", peak, device.ram_bytes),
        ],
        latency_estimate_s=latency,
        energy_estimate_j=energy,
        format=exporter.format,
    )
    from workbench.evaluate import safe_batch

    try:
        safe_batch(analysis, len(model.onnx_bytes()))  # conversion checks and the benchmark run it here
    except WorkbenchError as exc:
        plan.refusals.append(f"the model cannot be run here to verify it: {exc.reason}")
    if precision is not None and precision not in exporter.precisions:
        plan.refusals.append(f"{exporter.label} writes {', '.join(exporter.precisions)}, not {precision}")
    refused = exporter.refusals(model, plan)
    if refused and device.export.fallback:
        fallback = get_exporter(device.export.fallback)
        fallback_plan = replace(plan, export_precision=fallback.export_precision(device, variant_bits), refusals=[])
        fallback_refused = fallback.refusals(model, fallback_plan)
        if not fallback_refused:
            plan.warnings.append(
                f"{exporter.label} cannot take this model ({'; '.join(refused)}), so the bundle holds the "
                f"{fallback.label} instead"
            )
            plan.format, plan.export_precision, refused = fallback.format, fallback_plan.export_precision, []
        else:
            refused += [f"nor the {fallback.label}: {reason}" for reason in fallback_refused]
    plan.refusals += refused
    _placement_findings(plan, analysis.layers)
    if plan.export_precision == "int8" and plan.format in ("tflite", "tflm"):
        ref = project.dataset
        if ref is None or not ref.has_splits:
            plan.refusals.append(
                "full int8 calibrates activation ranges on the calibration split, and this project has no data: "
                "attach data (Data > Attach evaluation data, or --data) or export in float"
            )
    if storage > device.storage_bytes:
        need = 1 - device.storage_bytes / storage
        hint = (
            "quantize to int8 first (about 4x smaller)"
            if variant_bits == "fp32" and "int8" in device.precisions
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
    for fmt in device.export.also:
        extra = get_exporter(fmt)
        reasons = extra.refusals(model, replace(plan, export_precision=extra.export_precision(device, variant_bits)))
        if reasons:
            plan.warnings.append(f"no {extra.label} in this bundle: {'; '.join(reasons)}")
        else:
            plan.also.append(fmt)
    metrics = variant.metrics
    if variant_bits == "int8" and metrics is not None and metrics.latency_ratio and metrics.latency_ratio > 1.05:
        plan.warnings.append(
            f"int8 ran {metrics.latency_ratio:.2f}x slower than fp32 on this host; int8 weight-only storage "
            "keeps the size gain at fp32 speed on CPUs without fast int8"
        )
    if plan.format == "ort":
        plan.warnings.append(
            "the bundle's required_operators.config lists the operators a reduced ONNX Runtime "
            "Mobile build must include"
        )
    return plan


def _placement_findings(plan: ExportPlan, layers: list) -> None:
    """Where each layer runs, and what it means for the export: a layer with no kernel refuses it; layers
    that fall back to the CPU are a warning."""
    from workbench.placement import FALLS_BACK, UNSUPPORTED, place_layers

    plan.placements = place_layers(layers, plan.device, plan.format)
    if plan.refusals:  # the model cannot be converted at all: where its layers would run is moot
        return
    unsupported = [p for p in plan.placements if p.where == UNSUPPORTED]
    if unsupported and plan.format not in ("c-header",):  # the header's own refusal names its operators
        named = " · ".join(f"{p.layer} ({p.op_type}): {p.reason}" for p in unsupported[:3])
        more = f" and {len(unsupported) - 3} more" if len(unsupported) > 3 else ""
        plan.refusals.append(
            f"{len(unsupported)} layer(s) cannot run on {plan.device.name}: {named}{more}. Replace those layers "
            "(simplify_graph folds some) or export for a CPU target"
        )
    falling = [p for p in plan.placements if p.where == FALLS_BACK]
    if falling:
        plan.warnings.append(
            f"{len(falling)} of {len(plan.placements)} layers are predicted to fall back to the CPU on "
            f"{plan.device.name}, from {falling[0].layer} ({falling[0].op_type}): {falling[0].reason}"
        )


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
    precision: Precision | None = None,
) -> Path:
    """Write ``out_dir/<variant>-<device>/`` (complete or not at all) and return it.

    Every figure in the manifest is the exported file's, run in its own runtime with the settings the
    bundle's ``run.py`` uses, on the whole evaluation split; parity with the variant sits beside them.
    Formats the profile lists under ``also`` (the phone's ``.pte``) are written and verified the same way.
    ``baseline_file`` names the user's model file when the project is a throwaway (a CLI export of a file),
    so ``workbench verify`` can still find the fp32 baseline.
    """
    from workbench.exporters import ExportContext, get_exporter

    task = task or Task()
    plan = plan_export(project, variant_id, device, precision)
    if not plan.ok:
        raise ExportRefused(f"cannot export for {device.name}: " + "; ".join(plan.refusals))
    variant = project.get(variant_id)
    model = project.load_model(variant_id)
    out_dir = Path(out_dir)
    target = out_dir / f"{_safe(variant.name)}-{variant.id}-{device.id}"
    if target.exists():
        raise WorkbenchError("a bundle for this variant and device already exists there", target)
    remove_abandoned(out_dir, (f".*{EXPORTING}*",))  # what an export killed mid-way left here
    exporter = get_exporter(plan.format)
    # The bundle appears complete or not at all; a failed or cancelled export leaves nothing behind.
    with staging_dir(out_dir, f".{target.name}{EXPORTING}") as staging:
        task.report(0.05, f"converting for {device.name}")
        converted = exporter.convert(ExportContext(project, model, plan, staging, task.sub(0.05, 0.3)))
        runtime = converted.runtime
        # Every format is written before any is timed: a converter's leftover work must not slow a timing.
        extras = []
        for index, fmt in enumerate(plan.also):
            extra = get_exporter(fmt)
            extra_plan = replace(plan, export_precision=extra.export_precision(device, plan.variant_precision))
            share = 0.1 / len(plan.also)
            sub = task.sub(0.3 + index * share, 0.3 + (index + 1) * share)
            extras.append((fmt, extra_plan, extra.convert(ExportContext(project, model, extra_plan, staging, sub))))
        gc.collect()
        task.report(0.4, f"measuring {runtime.file} in {runtime.settings.runtime}")
        measured = _measure_artifact(project, model, staging, runtime, plan, runs, task.sub(0.4, 0.75))
        also = []
        for index, (fmt, extra_plan, written) in enumerate(extras):
            share = 0.2 / len(extras)
            task.report(0.75 + index * share, f"measuring {written.runtime.file} in {written.runtime.settings.runtime}")
            sub = task.sub(0.75 + index * share, 0.75 + (index + 1) * share)
            figures = _measure_artifact(project, model, staging, written.runtime, extra_plan, runs, sub)
            converted.artifacts += written.artifacts
            converted.not_run += written.not_run
            also.append(
                {
                    "format": fmt,
                    "runtime": written.runtime.to_json(),
                    "precision": extra_plan.export_precision,
                    "metrics": figures.metrics.model_dump(mode="json"),
                    "verification": figures.parity,
                    **({"format_report": written.report} if written.report else {}),
                }
            )
        recipe = project.recipe(variant_id)
        (staging / "recipe.yaml").write_text(recipe.dumps("yaml"), encoding="utf-8")
        report = {
            "device": device.id,
            "format": plan.format,
            "verification": measured.parity,
            "not_run_here": converted.not_run,
            "measured_this_host": measured.metrics.model_dump(mode="json"),
            **({"format_report": converted.report} if converted.report else {}),
            **({"also": also} if also else {}),
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
        readme = bundle_readme(device, plan, converted, model, measured.metrics, notes, also)
        (staging / "README.md").write_text(readme, encoding="utf-8")
        atomic_write_text(staging / "run.py", _run_py())
        if fleet is not None:
            _fleet(fleet, staging, variant.id, device, converted.artifacts)
        task.check()
        manifest = _manifest(project, variant, model, device, plan, staging, measured, runtime, notes, recipe)
        if converted.report:
            manifest["format_report"] = converted.report
        if also:
            manifest["also"] = also
        if baseline_file is not None:
            manifest["baseline"]["model_file"] = str(Path(baseline_file).resolve())
            manifest["baseline"]["model_file_sha256"] = sha256_file(baseline_file)
        atomic_write_text(staging / "manifest.json", strict_json(manifest))
        staging.chmod(0o755)
        staging.rename(target)
    task.report(1.0, f"exported to {target}")
    return target


@dataclass(frozen=True)
class Shipped:
    """What a device's bundle would ship for a variant, measured on the converted file(s) without writing a
    bundle: the auto-tuner holds every trial to these, so its sizes are the bytes the device gets."""

    format: str
    file: str  # the file the runtime loads
    bytes: int  # of the file(s) the runtime loads, as the bundle's manifest counts them
    download: int  # those files xz-compressed, each on its own
    latency_ratio: float | None  # the file in its runtime against the fp32 baseline in onnxruntime
    arena_bytes: int | None = None  # TFLM's measured tensor arena, where the format has one

    def describe(self) -> str:
        return f"{self.file} ({self.format}): {self.bytes:,} B, {self.download:,} B download"


def shipped_figures(
    project: Project, variant_id: str, plan: ExportPlan, *, timed_runs: int = 0, task: Task | None = None
) -> Shipped:
    """Convert the variant as its bundle would (same exporter, same plan) into a throwaway folder, and measure
    what ships. ``timed_runs`` > 0 also times the file in its runtime against the fp32 baseline, interleaved, as
    the bundle's latency ratio is (where the host's timing means something for the device).

    The ONNX format ships the stored file as it is: nothing is converted."""
    import tempfile

    from workbench.artifact_metrics import time_against_baseline
    from workbench.evaluate import download_size
    from workbench.exporters import ExportContext, artifact_files, get_exporter

    if not plan.ok:
        raise ExportRefused(f"cannot export for {plan.device.name}: " + "; ".join(plan.refusals))
    task = task or Task()
    model = project.load_model(variant_id)
    exporter = get_exporter(plan.format)
    with tempfile.TemporaryDirectory(prefix="workbench-shipped-") as folder:
        staging = Path(folder)
        converted = exporter.convert(ExportContext(project, model, plan, staging, task))
        runtime = converted.runtime
        contents = [path.read_bytes() for path in artifact_files(staging, runtime)]
        ratio = None
        if timed_runs > 0 and exporter.host_latency_meaningful:
            artifact = open_artifact(staging, runtime)
            baseline = project.load_model(project.root.id).artifact_bytes()
            shapes = model.concrete_shapes()
            timed, _count = time_against_baseline(artifact, baseline, shapes, timed_runs, task, model.input_spec)
            ratio = timed["artifact"][0] / timed["baseline"][0]
            del artifact
    arena = (converted.report.get("tflm") or {}).get("arena_bytes")
    return Shipped(
        format=plan.format,
        file=runtime.file,
        bytes=sum(len(c) for c in contents),
        download=sum(download_size(c) or len(c) for c in contents),
        latency_ratio=ratio,
        arena_bytes=int(arena) if arena is not None else None,
    )


def strict_json(data: Any) -> str:
    """JSON that every parser accepts: a NaN or infinity is a bug upstream, never written to a bundle."""
    try:
        return json.dumps(data, indent=2, default=str, allow_nan=False)
    except ValueError:
        raise WorkbenchError("refusing to write a manifest with a NaN or infinite figure in it") from None


def _run_py() -> str:
    import importlib.resources

    return (importlib.resources.files("workbench.resources") / "bundle" / "run.py").read_text(encoding="utf-8")


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
    tolerance_key = plan.export_precision
    if plan.export_precision == "int8" and runtime.settings.runtime in ("litert", "tflite-micro"):
        tolerance_key = "int8-io"
    parity = _parity(runtime, reference, outputs, tolerance_key, scoring, streamed)
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
    converted: Converted,
    model: Model,
    metrics: ArtifactMetrics,
    notes: list[str],
    also: list[dict[str, Any]] | None = None,
) -> str:
    from workbench.exporters import get_exporter

    exporter = get_exporter(plan.format)
    runtime = converted.runtime
    name = model.inputs[0].name
    shape = tuple(model.concrete_shapes()[name])
    budgets = "\n".join(f"- {b.label}: {b.used:,} B of {b.limit:,} B ({b.fraction:.0%})" for b in plan.budgets)
    latency = "unknown" if plan.latency_estimate_s is None else f"{plan.latency_estimate_s * 1000:.3f} ms"
    lines = [
        f"# {device.name}",
        "",
        f"Precision: {plan.export_precision}. Format: {exporter.label}. Files: {', '.join(converted.artifacts)}.",
        "",
        *run_section_lines(exporter, runtime, name, shape),
        "## Measured on the exporting host",
        "",
        *[f"- {line}" for line in metrics.describe_lines()],
        "",
    ]
    for entry in also or []:
        extra = get_exporter(entry["format"])
        lines += [f"## Also: {extra.label}", "", *extra.instructions()]
        lines += [f"- {entry['verification']['summary']}", ""]
    lines += format_report_lines(converted.report)
    lines += [
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


def run_section_lines(exporter: Any, runtime: BundleRuntime, name: str, shape: tuple[int, ...]) -> list[str]:
    """The README's Run section: how ``run.py`` loads the artifact, the same by hand, and device steps."""
    return [
        "## Run",
        "",
        f"`python run.py` loads `{runtime.file}` exactly as every figure below was measured:",
        f"{runtime.settings.describe()}. The same, by hand:",
        "",
        exporter.snippet(runtime, name, shape),
        "",
        *exporter.instructions(),
    ]


def format_report_lines(report: dict[str, Any]) -> list[str]:
    """README sections for figures only a format has: the TFLM memory, the Edge TPU placement."""
    lines: list[str] = []
    tflm = report.get("tflm")
    if tflm:
        lines += [
            "## Microcontroller memory (measured)",
            "",
            f"- RAM: tensor arena {tflm['arena_bytes']:,} B ({tflm['arena_source']}) of {tflm['ram_budget_bytes']:,} B",
            f"- flash: model {tflm['model_bytes']:,} B + runtime {tflm['runtime_flash_bytes']:,} B "
            f"({tflm['runtime_flash_source']}) = {tflm['flash_bytes']:,} B of {tflm['flash_budget_bytes']:,} B",
            "",
        ]
    placement = report.get("edgetpu_placement")
    if placement:
        mapped = sum(1 for op in placement if op["placement"] == "runs on the target")
        lines += [
            "## Edge TPU placement (predicted from Coral's operator table)",
            "",
            f"{mapped} of {len(placement)} operators predicted on the Edge TPU.",
            "",
            *[f"- {op['index']}: {op['op']} — {op['placement']} ({op['reason']})" for op in placement],
            "",
        ]
    return lines


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
