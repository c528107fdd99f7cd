"""Figures of an exported artifact: the file a bundle ships, run in its own runtime with the settings the
bundle loads it with, on the whole evaluation split. Export writes them; ``workbench verify`` recomputes
them with the same function, so a figure can only match if it was measured the way it is shipped."""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from pydantic import BaseModel, Field

from workbench.datasets import Dataset, DatasetRef, load_dataset
from workbench.errors import DatasetError
from workbench.evaluate import (
    check_dataset_fits,
    example_feeds,
    host_description,
    interleaved_latency,
    score_outputs,
)
from workbench.exporters import artifact_files
from workbench.feeds import InputSpec, random_inputs_for, run_dataset
from workbench.metrics import MetricSettings
from workbench.plugin import Task
from workbench.runtime import RuntimeSettings, make_session, run_session, settings_for

if TYPE_CHECKING:
    from workbench.exporters import BundleRuntime
    from workbench.model import Model

MAX_TIMED_RUNS = 4000
TIMING_SECONDS = 2.0  # per session: a 2-core shared host needs seconds of runs for a median stable to a few %
LATENCY_METHOD = (
    "batch 1; the artifact in its runtime and the fp32 baseline (.onnx in onnxruntime with its own recorded "
    "settings) timed interleaved round-robin in one process, same seeded inputs; ratio of the medians"
)


class ArtifactMetrics(BaseModel):
    """What one exported file measured: every field is recomputed by ``workbench verify``."""

    label: str = "the exported file, in its own runtime, on this host"
    file: str
    runtime: RuntimeSettings
    host: str
    artifact_bytes: int = Field(description="bytes of the file(s) the runtime loads")
    dataset: DatasetRef
    samples: int
    accuracy: float | None = Field(
        None, description="the metric's headline score on the evaluation split (None: no labels)"
    )
    correct: int | None = Field(None, description="top-1: samples classified correctly")
    metric: str | None = Field(None, description="the metric behind accuracy (top1, miou, ctc; None: fidelity only)")
    scores: dict[str, float] | None = None
    input_spec: InputSpec | None = Field(None, description="constant and state inputs every run was fed")
    scoring: MetricSettings | None = None
    agreement_with_variant: float | None = None
    snr_db_vs_variant: float | None = None
    max_abs_diff_vs_variant: float | None = None
    latency_ms_median: float
    latency_ms_p90: float
    baseline_latency_ms_median: float | None = None
    latency_ratio: float | None = None
    latency_runs: int
    latency_method: str = LATENCY_METHOD
    baseline_runtime: RuntimeSettings | None = None

    def describe_lines(self) -> list[str]:
        data = f"{self.samples} samples of {self.dataset.describe()}"
        lines = [f"{self.file} in {self.runtime.describe()}, on {self.host}"]
        if self.accuracy is not None and self.correct is not None:
            lines.append(f"accuracy {self.accuracy:.2%} top-1 ({self.correct} of {data})")
        elif self.accuracy is not None:
            extra = ", ".join(f"{k} {v:.2%}" for k, v in (self.scores or {}).items() if k != self.metric)
            lines.append(f"{self.metric} {self.accuracy:.2%}" + (f" ({extra})" if extra else "") + f" on {data}")
        else:
            lines.append(f"no accuracy: the data has no labels ({data})")
        if self.agreement_with_variant is not None:
            snr = "identical" if self.snr_db_vs_variant is None else f"{self.snr_db_vs_variant:.1f} dB"
            lines.append(
                f"parity with the variant: {self.agreement_with_variant:.2%} {self.metric or 'cosine'} agreement, "
                f"output SNR {snr}, max abs difference {self.max_abs_diff_vs_variant:.3g}"
            )
        latency = f"latency {self.latency_ms_median:.3f} ms median (p90 {self.latency_ms_p90:.3f})"
        if self.latency_ratio is not None:
            latency += (
                f" vs the fp32 baseline's {self.baseline_latency_ms_median:.3f} ms: {self.latency_ratio:.2f}x "
                f"({self.latency_runs} runs each; {self.latency_method})"
            )
        lines.append(latency)
        lines.append(f"size {self.artifact_bytes:,} B")
        return lines


def evaluation_data(ref: DatasetRef | None, model: Model) -> Dataset:
    """The project's evaluation split; random inputs (stated as such) only when the project has no data."""
    if ref is None:
        ref = random_inputs_for(model)
        if ref is None:
            raise DatasetError("the model takes no data input: there is nothing to run it on")
        return load_dataset(ref)
    data = load_dataset(ref)
    check_dataset_fits(data, model.concrete_shapes(), model.input_spec)
    return data


def timed_runs(
    sessions: Mapping[str, Any],
    shapes: Mapping[str, tuple[int, ...]],
    minimum: int,
    input_spec: InputSpec | None = None,
) -> int:
    """Enough runs that each session is timed for about ``TIMING_SECONDS`` (at least ``minimum``)."""
    slowest = 0.0
    rng = np.random.default_rng(0)
    for session in sessions.values():
        feeds = example_feeds(session, shapes, rng, input_spec)
        run_session(session, feeds)
        start = time.perf_counter()
        run_session(session, feeds)
        slowest = max(slowest, time.perf_counter() - start)
    wanted = math.ceil(TIMING_SECONDS / max(slowest, 1e-6))
    return int(min(MAX_TIMED_RUNS, max(minimum, wanted)))


def time_against_baseline(
    artifact: Any,
    baseline: bytes | None,
    shapes: Mapping[str, tuple[int, ...]],
    runs: int,
    task: Task | None = None,
    input_spec: InputSpec | None = None,
) -> tuple[dict[str, tuple[float, float]], int]:
    """(median, p90) ms of the artifact and of the fp32 baseline in onnxruntime, timed interleaved in one
    run (this host's load drifts), and the run count: the latency ratio every bundle states."""
    sessions = {"artifact": artifact} | ({"baseline": make_session(baseline)} if baseline is not None else {})
    count = timed_runs(sessions, shapes, runs, input_spec)
    timed = interleaved_latency(
        sessions, shapes, runs=count, warmup=max(5, count // 10), task=task or Task(), input_spec=input_spec
    )
    return timed, count


def artifact_metrics(
    artifact: Any,
    runtime: BundleRuntime,
    data: Dataset,
    shapes: Mapping[str, tuple[int, ...]],
    *,
    folder: Path,
    baseline: bytes | None,
    runs: int,
    task: Task | None = None,
    input_spec: InputSpec | None = None,
    scoring: MetricSettings | None = None,
) -> tuple[ArtifactMetrics, dict[str, np.ndarray]]:
    """The metric's scores (one sample at a time, so the figure does not depend on batching), size, and
    latency against the fp32 baseline; returns the metrics and the artifact's outputs by name."""
    task = task or Task()
    scoring = scoring or MetricSettings()
    task.report(0.0, f"evaluating {runtime.file}")
    outputs = run_dataset(artifact, data, input_spec, task.sub(0.0, 0.5), max_batch=1)
    scored = score_outputs(outputs, data.y, None, scoring, input_spec is not None and input_spec.streaming)
    correct = None
    if scored.metric == "top1" and scored.accuracy is not None:
        correct = round(scored.accuracy * len(data))
    task.report(0.5, "timing against the fp32 baseline")
    timed, count = time_against_baseline(artifact, baseline, shapes, runs, task.sub(0.5, 1.0), input_spec)
    median, p90 = timed["artifact"]
    metrics = ArtifactMetrics(
        file=runtime.file,
        runtime=runtime.settings,
        host=host_description(),
        artifact_bytes=sum(p.stat().st_size for p in artifact_files(folder, runtime)),
        dataset=data.ref,
        samples=len(data),
        accuracy=scored.accuracy,
        correct=correct,
        metric=scored.metric,
        scores=scored.scores,
        input_spec=input_spec,
        scoring=scoring,
        latency_ms_median=median,
        latency_ms_p90=p90,
        latency_runs=count,
    )
    if baseline is not None:
        metrics.baseline_latency_ms_median = timed["baseline"][0]
        metrics.latency_ratio = median / timed["baseline"][0]
        metrics.baseline_runtime = settings_for(baseline)
    return metrics, outputs
