"""A LiteRT ``.tflite`` bundled as it is for a device that runs LiteRT or TensorFlow Lite Micro: nothing is
converted, so the bundle's ``model.tflite`` is the user's file byte for byte.

``workbench export some.tflite --device coral-edgetpu`` plans it (the file's precision against the
device's, storage and RAM against its budgets, Coral's predicted placement), adds what the device needs
(``compile_edgetpu.sh``; the C array, ``main.cc`` and the TFLM arena), measures the file in the device's
runtime on the evaluation split (or stated random inputs), and writes a bundle ``workbench verify``
recomputes like any other.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from workbench.device_export import (
    EXPORTING,
    TOLERANCE,
    Budget,
    ExportRefused,
    _parity,
    _run_py,
    _safe,
    format_report_lines,
    run_section_lines,
    strict_json,
)
from workbench.errors import WorkbenchError
from workbench.exporters import EDGE_EXTRA, BundleRuntime, Converted, get_exporter, open_artifact
from workbench.fileio import atomic_write_bytes, atomic_write_text, remove_abandoned, sha256_bytes, staging_dir
from workbench.plugin import Task
from workbench.tflite_file import file_precision, memory_timeline, read_tflite

if TYPE_CHECKING:
    from workbench.datasets import DatasetRef
    from workbench.devices import DeviceProfile
    from workbench.metrics import MetricSettings
    from workbench.model import Model

AS_IS_FORMATS = ("tflite", "tflm")  # exporters whose artifact is a .tflite a file can stand in for
_NEEDS = {"tflite": ("ai_edge_litert",), "tflm": ("ai_edge_litert", "tflite_micro")}
ARTIFACT = "model.tflite"


@dataclass
class TflitePlan:
    """Everything known about bundling the file before a byte is written."""

    device: DeviceProfile
    format: str
    precision: str
    budgets: list[Budget]
    refusals: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    placement: list[dict[str, Any]] = field(default_factory=list)  # Coral: predicted per operator
    latency_estimate_s: float | None = None  # from the profile, as an ExportPlan states them
    energy_estimate_j: float = 0.0
    also: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.refusals

    @property
    def export_precision(self) -> str:
        return self.precision


def plan_tflite_export(path: str | Path, device: DeviceProfile) -> TflitePlan:
    from workbench.devices import load_devices

    path = Path(path)
    found = read_tflite(path)
    precision = file_precision(found)
    formats = [f for f in (device.export.format, device.export.fallback) if f in AS_IS_FORMATS]
    fmt = formats[0] if formats else device.export.format
    timeline = memory_timeline(found)
    peak = max((step.live_bytes for step in timeline), default=0)
    overhead = (device.runtime_flash_bytes or 0) if fmt == "tflm" else 0
    plan = TflitePlan(
        device=device,
        format=fmt,
        precision=precision,
        budgets=[
            Budget("model storage", found.size + overhead, device.storage_bytes),
            Budget("peak activations", peak, device.ram_bytes),
        ],
    )
    if not formats:
        takers = ", ".join(d.id for d in load_devices()[0].values() if d.export.format in AS_IS_FORMATS)
        plan.refusals.append(
            f"{device.id} runs {get_exporter(device.export.format).label}; a LiteRT file goes as it is only to "
            f"devices that run LiteRT or TensorFlow Lite Micro ({takers}): export the model it was converted "
            "from for this device instead"
        )
        return plan
    missing = [name for name in _NEEDS[fmt] if importlib.util.find_spec(name) is None]
    if missing:
        plan.refusals.append(f"{', '.join(missing)} is not installed here: {EDGE_EXTRA}")
        return plan
    if precision not in device.precisions:
        plan.refusals.append(
            f"the file computes in {precision} and {device.id} takes {', '.join(device.precisions)}: convert the "
            "model it came from with `workbench export MODEL --device "
            f"{device.id}` (it quantizes on the calibration split), or quantize the file to full int8"
        )
    if found.subgraphs > 1:
        plan.warnings.append(f"the file has {found.subgraphs} subgraphs; figures and placement are the first one's")
    if device.runtime == "litert-edgetpu" and not plan.refusals:
        from workbench.exporters.tflite import edgetpu_placement

        plan.placement = edgetpu_placement(path, set(device.target_ops or ()))
        falling = [op for op in plan.placement if op["placement"] != "runs on the target"]
        if falling:
            first = falling[0]
            plan.warnings.append(
                f"{len(falling)} of {len(plan.placement)} operators are predicted to fall back to the CPU, from "
                f"operator {first['index']} ({first['op']}): {first['reason']}"
            )
    storage = plan.budgets[0]
    if storage.used > storage.limit:
        plan.refusals.append(
            f"the file needs {storage.used:,} B of storage"
            + (f" (with {overhead:,} B of runtime)" if overhead else "")
            + f"; {device.name} has {storage.limit:,} B: prune or distill the model it came from"
        )
    if fmt != "tflm" and peak > device.ram_bytes:  # TFLM's own arena decides there, after it is measured
        plan.refusals.append(
            f"peak activations of {peak:,} B exceed the {device.ram_bytes:,} B RAM budget: lower the input "
            "resolution of the model it came from"
        )
    return plan


def tflite_io_model(path: Path, session: Any) -> Model:
    """The file's inputs as a Model (float feeds, as the session takes them): what data is checked against
    and random inputs are shaped by. It has no graph: nothing here converts the file."""
    from workbench.model import InputShapes, Model, TensorSpec

    def spec(port: Any) -> TensorSpec:
        dtype = {"tensor(float)": "float32", "tensor(float16)": "float16"}.get(port.type, port.type[7:-1])
        return TensorSpec(port.name, dtype, tuple(int(d) for d in port.shape))

    inputs = tuple(spec(p) for p in session.get_inputs())
    shapes = InputShapes({s.name: tuple(int(d) for d in s.shape) for s in inputs}, "model")  # type: ignore[misc]
    return Model(path.stem, inputs, tuple(spec(p) for p in session.get_outputs()), source=path, input_shapes=shapes)


def export_tflite_file(
    path: str | Path,
    device: DeviceProfile,
    out_dir: str | Path,
    *,
    data: DatasetRef | None = None,
    scoring: MetricSettings | None = None,
    task: Task | None = None,
    runs: int = 100,
) -> Path:
    """Write ``out_dir/<file>-<sha>-<device>/`` (complete or not at all) and return it."""
    from workbench.artifact_metrics import artifact_metrics, evaluation_data
    from workbench.datasets import evaluation_ref
    from workbench.exporters.tflite import LiteRtSession, io_quantization, litert_settings
    from workbench.feeds import run_dataset
    from workbench.metrics import MetricSettings
    from workbench.untrusted import read_regular_bytes

    task = task or Task()
    path = Path(path)
    plan = plan_tflite_export(path, device)
    if not plan.ok:
        raise ExportRefused(f"cannot bundle {path.name} for {device.id}: " + "; ".join(plan.refusals))
    content = read_regular_bytes(path, WorkbenchError)
    digest = sha256_bytes(content)
    out_dir = Path(out_dir)
    target = out_dir / f"{_safe(path.stem)}-{digest[:10]}-{device.id}"
    if target.exists():
        raise WorkbenchError("a bundle of this file for this device already exists there", target)
    remove_abandoned(out_dir, (f".*{EXPORTING}*",))
    exporter = get_exporter(plan.format)
    scoring = scoring or MetricSettings()
    with staging_dir(out_dir, f".{target.name}{EXPORTING}") as staging:
        atomic_write_bytes(staging / ARTIFACT, content)
        extras = Converted([ARTIFACT], BundleRuntime(ARTIFACT, litert_settings()))
        if plan.format == "tflm":
            from workbench.exporters.tflm import firmware_files

            task.report(0.05, "measuring the TensorFlow Lite Micro arena")
            extras = firmware_files(staging, ARTIFACT, device)
            extras.artifacts.insert(0, ARTIFACT)
        elif device.runtime == "litert-edgetpu":
            from workbench.exporters.tflite import coral_files

            coral = coral_files(staging, ARTIFACT, set(device.target_ops or ()))
            extras.artifacts += coral.artifacts
            extras.not_run += coral.not_run
            extras.report |= coral.report
        artifact = open_artifact(staging, extras.runtime)
        # run.py feeds the file by the names its signature gives, in order
        names = (tuple(p.name for p in artifact.get_inputs()), tuple(p.name for p in artifact.get_outputs()))
        runtime = BundleRuntime(ARTIFACT, extras.runtime.settings, *names)
        model = tflite_io_model(path, artifact)
        dataset = evaluation_data(evaluation_ref(data) if data is not None else None, model)
        task.report(0.2, f"measuring {ARTIFACT} in {runtime.settings.runtime}")
        metrics, outputs = artifact_metrics(
            artifact,
            runtime,
            dataset,
            model.concrete_shapes(),
            folder=staging,
            baseline=None,
            runs=runs,
            task=task.sub(0.2, 0.85),
            scoring=scoring,
        )
        if plan.format == "tflm":  # the same file in LiteRT is the reference TFLM must reproduce
            task.report(0.85, "running the file in LiteRT for parity")
            reference = run_dataset(LiteRtSession(staging / ARTIFACT, runtime), dataset, None, max_batch=1)
            key = "int8-io" if plan.precision == "int8" else plan.precision
            parity = _parity(runtime, reference, outputs, key if key in TOLERANCE else "fp32", scoring)
            if not parity["passed"]:
                raise WorkbenchError(
                    f"TensorFlow Lite Micro does not reproduce LiteRT on this file: {parity['summary']}"
                )
            # there is no variant: the parity stays in "verification", not in the metrics' variant fields
            parity["summary"] = parity["summary"].replace("with the variant", "with the same file in LiteRT")
        else:
            parity = {
                "runtime": runtime.settings.describe(),
                "samples": len(dataset),
                "precision": plan.precision,
                "passed": True,
                "summary": f"{ARTIFACT} is {path.name} byte for byte (sha256 {digest[:16]}…): nothing was "
                "converted, so there is no variant to compare with; its figures are its own, in LiteRT",
            }
        report_extra = {
            "tflite": {
                "source": str(path.resolve()),
                "sha256": digest,
                "precision": plan.precision,
                "io_quantization": io_quantization(content),
                "as_is": True,
            },
            **extras.report,
        }
        if plan.placement:
            report_extra["edgetpu_placement"] = plan.placement
        not_run = [*extras.not_run]
        report = {
            "device": device.id,
            "format": plan.format,
            "verification": parity,
            "not_run_here": not_run,
            "measured_this_host": metrics.model_dump(mode="json"),
            "format_report": report_extra,
            "budgets": [{"label": b.label, "used": b.used, "limit": b.limit} for b in plan.budgets],
            "warnings": plan.warnings,
        }
        atomic_write_text(staging / "report.json", strict_json(report))
        readme = _readme(path, device, plan, exporter, runtime, model, metrics.describe_lines(), parity)
        readme += "\n".join(format_report_lines(report_extra))
        (staging / "README.md").write_text(readme, encoding="utf-8")
        atomic_write_text(staging / "run.py", _run_py())
        task.check()
        files = {}
        for item in sorted(p for p in staging.rglob("*") if p.is_file()):
            data_bytes = item.read_bytes()
            files[str(item.relative_to(staging))] = {"sha256": sha256_bytes(data_bytes), "bytes": len(data_bytes)}
        ref = dataset.ref
        manifest = {
            "format": "model-workbench-bundle",
            "version": 2,
            "device": {"id": device.id, "name": device.name, "runtime": device.runtime},
            "precision": plan.precision,
            "source": {"file": str(path.resolve()), "sha256": digest, "label": "a LiteRT file bundled as it is"},
            "runtime": runtime.to_json(),
            "inputs": [{"name": i.name, "dtype": i.type, "shape": i.shape} for i in artifact.get_inputs()],
            "outputs": [{"name": o.name, "dtype": o.type, "shape": o.shape} for o in artifact.get_outputs()],
            "input_shapes": {k: list(v) for k, v in model.concrete_shapes().items()},
            "preprocessing": ref.preprocessing.model_dump(mode="json") if ref.has_splits else None,
            "dataset": ref.model_dump(mode="json"),
            **({"front_end": ref.front_end.model_dump(mode="json")} if ref.front_end else {}),
            "metrics": metrics.model_dump(mode="json"),
            "baseline": None,  # no fp32 model: the file is the starting point, so there is no latency ratio
            "notes": [],
            "verification": parity,
            "format_report": report_extra,
            "files": files,
        }
        atomic_write_text(staging / "manifest.json", strict_json(manifest))
        staging.chmod(0o755)
        staging.rename(target)
    task.report(1.0, f"exported to {target}")
    return target


def _readme(
    path: Path,
    device: DeviceProfile,
    plan: TflitePlan,
    exporter: Any,
    runtime: BundleRuntime,
    model: Model,
    measured: list[str],
    parity: dict[str, Any],
) -> str:
    name = model.inputs[0].name
    shape = tuple(model.concrete_shapes()[name])
    budgets = "\n".join(f"- {b.label}: {b.used:,} B of {b.limit:,} B ({b.fraction:.0%})" for b in plan.budgets)
    lines = [
        f"# {device.name}",
        "",
        f"`{ARTIFACT}` is `{path.name}` as it was given ({plan.precision}); {exporter.label}.",
        "",
        *run_section_lines(exporter, runtime, name, shape),
        "## Measured on the exporting host",
        "",
        *[f"- {line}" for line in measured],
        f"- {parity['summary']}",
        "",
        "## Budgets",
        "",
        budgets,
        "",
    ]
    if plan.warnings:
        lines += ["## Warnings", "", *[f"- {w}" for w in plan.warnings], ""]
    lines += ["`workbench verify BUNDLE` recomputes these figures from the bundle.", "", ""]
    return "\n".join(lines)
