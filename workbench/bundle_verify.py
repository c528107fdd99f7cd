"""``workbench verify BUNDLE``: recompute a bundle's figures from the bundle alone, loading the artifact
exactly as its ``run.py`` does (the manifest's ``runtime`` section), and say which figure is wrong.

Checked: every file's bytes and sha256 (exactly), the artifact's size (exactly), its accuracy on the
evaluation split the manifest names (exactly: the same samples, one at a time), and its latency ratio
against the fp32 baseline (within a tolerance, 15 % by default: timing on a shared host is noisy), the
same for every further artifact the bundle holds (the phone's ``.pte``), and what only a format has (a
TensorFlow Lite Micro arena, recomputed by TFLM from the file).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from workbench.errors import WorkbenchError
from workbench.plugin import Task

if TYPE_CHECKING:
    from workbench.artifact_metrics import ArtifactMetrics
    from workbench.datasets import Dataset
    from workbench.exporters import BundleRuntime

LATENCY_TOLERANCE = 0.15


@dataclass(frozen=True)
class Check:
    figure: str
    ok: bool | None  # None: could not be checked here (and why is in ``detail``)
    detail: str


def verify_bundle(
    bundle: str | Path,
    *,
    data: str | None = None,
    baseline: str | Path | None = None,
    runs: int | None = None,
    tolerance: float = LATENCY_TOLERANCE,
    task: Task | None = None,
) -> list[Check]:
    from pydantic import ValidationError

    from workbench.artifact_metrics import ArtifactMetrics
    from workbench.datasets import load_dataset
    from workbench.device_export import BundleRuntime, open_artifact
    from workbench.fileio import sha256_bytes
    from workbench.untrusted import read_regular_bytes

    task = task or Task()
    bundle = Path(bundle)
    manifest_path = bundle / "manifest.json"
    try:
        manifest = json.loads(read_regular_bytes(manifest_path, WorkbenchError))
        claimed = ArtifactMetrics.model_validate(manifest["metrics"])
    except (ValueError, KeyError, TypeError, ValidationError) as exc:
        reason = str(exc).splitlines()[0][:200]
        raise WorkbenchError(f"not a bundle this workbench can verify ({reason})", manifest_path) from None
    checks: list[Check] = []
    for name, entry in sorted(manifest.get("files", {}).items()):
        path = bundle / name
        if Path(name).is_absolute() or ".." in Path(name).parts or not path.is_file():
            checks.append(Check(f"file {name}", False, "missing from the bundle"))
            continue
        content = path.read_bytes()
        same = len(content) == entry.get("bytes") and sha256_bytes(content) == entry.get("sha256")
        detail = f"{len(content):,} B, sha256 {'matches' if same else 'differs from'} the manifest"
        checks.append(Check(f"file {name}", same, detail))

    if any(check.ok is False for check in checks):
        checks.append(Check("figures", None, "not recomputed: the bundle's files are not the ones it was made with"))
        return checks
    runtime = BundleRuntime.from_json(manifest.get("runtime"), manifest_path)
    artifact = open_artifact(bundle, runtime)
    ref = claimed.dataset
    if data is not None:
        ref = ref.model_copy(update={"path": str(data)})
    try:
        dataset = load_dataset(ref)
    except WorkbenchError as exc:
        checks.append(Check("accuracy", None, f"the evaluation data is not here ({exc}); pass --data"))
        return checks
    baseline_bytes = _baseline(manifest, baseline)
    if baseline_bytes is None and "source" in manifest:
        checks.append(Check("latency ratio", None, "none claimed: the bundle holds a LiteRT file as it was given"))
    elif baseline_bytes is None:
        checks.append(
            Check("latency ratio", None, "the fp32 baseline is not here; pass --baseline (the project's root model)")
        )
    shapes = {k: tuple(v) for k, v in manifest["input_shapes"].items()}
    common = {"dataset": dataset, "shapes": shapes, "baseline": baseline_bytes, "tolerance": tolerance, "task": task}
    checks += _artifact_checks(bundle, runtime, artifact, claimed, runs, manifest.get("format_report"), **common)
    for entry in manifest.get("also", []):
        extra = BundleRuntime.from_json(entry.get("runtime"), manifest_path)
        try:
            extra_claimed = ArtifactMetrics.model_validate(entry["metrics"])
        except (KeyError, TypeError, ValidationError):
            checks.append(Check(f"{extra.file}", False, "its figures in the manifest are not readable"))
            continue
        opened = open_artifact(bundle, extra)
        checks += _artifact_checks(
            bundle, extra, opened, extra_claimed, runs, entry.get("format_report"), prefix=f"{extra.file} ", **common
        )
    return checks


def _artifact_checks(
    bundle: Path,
    runtime: BundleRuntime,
    artifact: Any,
    claimed: ArtifactMetrics,
    runs: int | None,
    format_report: dict | None,
    *,
    dataset: Dataset,
    shapes: dict[str, tuple[int, ...]],
    baseline: bytes | None,
    tolerance: float,
    task: Task | None,
    prefix: str = "",
) -> list[Check]:
    """The figures of one artifact of the bundle, recomputed in its runtime and compared with the claims."""
    from workbench.artifact_metrics import artifact_metrics
    from workbench.exporters import exporter_for_runtime

    checks: list[Check] = []
    measured, _outputs = artifact_metrics(
        artifact,
        runtime,
        dataset,
        shapes,
        folder=bundle,
        baseline=baseline,
        runs=runs or claimed.latency_runs,
        task=task,
        input_spec=claimed.input_spec,
        scoring=claimed.scoring,
    )
    checks.append(
        Check(
            f"{prefix}artifact size",
            measured.artifact_bytes == claimed.artifact_bytes,
            f"{measured.artifact_bytes:,} B here, {claimed.artifact_bytes:,} B in the manifest",
        )
    )
    checks.append(
        Check(
            f"{prefix}samples",
            measured.samples == claimed.samples,
            f"{measured.samples} here, {claimed.samples} in the manifest ({dataset.ref.describe()})",
        )
    )
    if claimed.accuracy is not None or measured.accuracy is not None:
        if claimed.correct is not None or measured.correct is not None:
            same = measured.correct == claimed.correct and measured.samples == claimed.samples
            detail = (
                f"{_pct(measured.accuracy)} ({measured.correct} correct) here, {_pct(claimed.accuracy)} "
                f"({claimed.correct} correct) in the manifest"
            )
        else:  # scores other than top-1 are fractions of the same outputs: equal or not
            same = measured.accuracy == claimed.accuracy and measured.samples == claimed.samples
            detail = f"{measured.metric} {_pct(measured.accuracy)} here, {_pct(claimed.accuracy)} in the manifest"
        checks.append(Check(f"{prefix}accuracy", same, detail))
    exporter = exporter_for_runtime(runtime.settings.runtime)
    if not exporter.host_latency_meaningful and measured.latency_ratio and claimed.latency_ratio:
        checks.append(
            Check(
                f"{prefix}latency ratio",
                None,
                f"{measured.latency_ratio:.3f}x here, {claimed.latency_ratio:.3f}x in the manifest: not compared, "
                f"{runtime.settings.runtime}'s host timing does not stand for the device's (the profile's estimate "
                "does)",
            )
        )
    elif baseline is not None and measured.latency_ratio and claimed.latency_ratio:
        drift = measured.latency_ratio / claimed.latency_ratio - 1
        checks.append(
            Check(
                f"{prefix}latency ratio",
                abs(drift) <= tolerance,
                f"{measured.latency_ratio:.3f}x the fp32 baseline here ({measured.latency_ms_median:.3f} vs "
                f"{measured.baseline_latency_ms_median:.3f} ms), {claimed.latency_ratio:.3f}x in the manifest "
                f"({drift:+.1%}; tolerance ±{tolerance:.0%})",
            )
        )
    exporter = exporter_for_runtime(runtime.settings.runtime)
    checks += [
        Check(prefix + name, ok, detail) for name, ok, detail in exporter.recheck(bundle, runtime, format_report)
    ]
    return checks


def _baseline(manifest: dict, given: str | Path | None) -> bytes | None:
    from workbench.fileio import sha256_bytes, sha256_file
    from workbench.untrusted import read_regular_bytes

    if given is not None:
        from workbench.loading import load_model

        return load_model(given, remember_shapes=False).artifact_bytes()
    recorded = manifest.get("baseline") or {}
    path = recorded.get("project_artifact")
    if path and Path(path).is_file():
        content = read_regular_bytes(Path(path), WorkbenchError)
        if sha256_bytes(content) == recorded.get("sha256"):
            return content
    source = recorded.get("model_file")
    if source and Path(source).is_file() and sha256_file(source) == recorded.get("model_file_sha256"):
        from workbench.loading import load_model

        shapes = ";".join(f"{k}={','.join(map(str, v))}" for k, v in manifest["input_shapes"].items())
        return load_model(source, input_shapes=shapes, remember_shapes=False).artifact_bytes()
    return None


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.2%}"
