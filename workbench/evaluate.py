"""Measurements, all taken on this host from the serialized ONNX artifact with onnxruntime.

Accuracy needs labels; fidelity (top-1 agreement and output SNR) compares with a baseline and needs
none. Latency is measured with the baseline in the same run, interleaved, so the ratio is fair.
"""

from __future__ import annotations

import io
import os
import platform
import statistics
import time
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from pydantic import BaseModel, Field

from workbench.datasets import Dataset, DatasetRef
from workbench.errors import DatasetError, WorkbenchError
from workbench.feeds import InputSpec, check_feedable, run_dataset, sample_arrays
from workbench.limits import check_allocation, memory_budget
from workbench.metrics import MetricSettings, choose_metric
from workbench.metrics.classification import class_scores
from workbench.metrics.fidelity import OutputFidelity, output_fidelity, snr_db
from workbench.plugin import Task
from workbench.runtime import (
    DEFAULT_THREADS,
    MAX_BATCH,
    RuntimeSettings,
    make_session,
    numpy_dtype,
    run_session,
    settings_for,
)

if TYPE_CHECKING:
    from workbench.analysis import Analysis
    from workbench.model import Model


class Metrics(BaseModel):
    """What one measurement found; every figure was measured on ``host``."""

    host: str = Field(description="where these figures were measured")
    input_shapes: dict[str, list[int]]
    artifact_bytes: int
    zip_bytes: int = Field(description="artifact size in a zip archive (deflate, level 9)")
    download_bytes: int | None = Field(
        None,
        description="artifact size xz-compressed (lzma preset 9e): what an over-the-air update ships; "
        "None above 32 MiB (the zip size stands in)",
    )
    params: int
    nonzero_params: int
    macs: int
    macs_complete: bool = Field(description="False when some layers' MACs are unknown")
    dataset: DatasetRef | None = None
    samples: int | None = None
    accuracy: float | None = Field(None, description="top-1 accuracy on the labeled dataset")
    agreement: float | None = Field(None, description="top-1 agreement with the baseline")
    snr_db: float | None = Field(None, description="output SNR against the baseline; None if identical")
    outputs_identical: bool | None = None
    latency_ms_median: float | None = None
    latency_ms_p90: float | None = None
    baseline_latency_ms_median: float | None = None
    latency_ratio: float | None = Field(None, description="median latency / baseline median, same run")
    latency_runs: int | None = None
    threads: int | None = None
    runtime: RuntimeSettings | None = Field(None, description="how the model was run for every figure here")
    baseline_runtime: RuntimeSettings | None = Field(None, description="how the baseline was run")
    layer_snr_db: dict[str, float | None] | None = Field(
        None, description="per layer: SNR of its output against the baseline's (None: identical), same inputs"
    )
    layer_latency_share: dict[str, float] | None = Field(
        None, description="fraction of summed kernel time per node (onnxruntime profile, optimizations off)"
    )
    metric: str | None = Field(None, description="the metric behind accuracy and agreement (top1, miou, ctc)")
    scores: dict[str, float] | None = Field(
        None, description="every label-based score the metric gives (top1, top5, miou, ctc exact match, cer)"
    )
    output_fidelity: dict[str, OutputFidelity] | None = Field(
        None, description="per output: cosine, SNR and max abs difference against the baseline"
    )
    confusion: list[list[int]] | None = Field(None, description="rows: true class, columns: predicted")
    scoring: MetricSettings | None = Field(None, description="how outputs were scored")
    input_spec: InputSpec | None = Field(None, description="constant and state inputs every run was fed")

    @property
    def download(self) -> int:
        """Over-the-air download size; older measurements have only the zip figure."""
        return self.download_bytes if self.download_bytes is not None else self.zip_bytes

    @property
    def sparsity(self) -> float:
        return 0.0 if self.params == 0 else 1.0 - self.nonzero_params / self.params


def host_description() -> str:
    import onnxruntime

    cpu = platform.processor() or platform.machine()
    return f"{platform.node() or 'host'} ({cpu}, {os.cpu_count()} cores), onnxruntime {onnxruntime.__version__}"


DOWNLOAD_COMPRESSOR = "xz (lzma preset 9e)"
DOWNLOAD_LIMIT = 32 << 20  # xz runs at a few MB/s on dense weights: larger files show the zip size only


def download_size(data: bytes) -> int | None:
    """Bytes of ``data`` compressed as an over-the-air update would ship it: xz, the strongest
    general-purpose compressor in Python's standard library (smaller than deflate on sparse weights).
    None above :data:`DOWNLOAD_LIMIT`, where it would hold up every measurement for tens of seconds."""
    import lzma

    if len(data) > DOWNLOAD_LIMIT:
        return None
    return len(lzma.compress(data, format=lzma.FORMAT_XZ, preset=9 | lzma.PRESET_EXTREME))


def zip_size(data: bytes) -> int:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        archive.writestr("model.onnx", data)
    return len(buffer.getvalue())


def check_dataset_fits(
    dataset: Dataset, shapes: Mapping[str, tuple[int, ...]], spec: InputSpec | None = None
) -> list[str]:
    """The model inputs the data feeds, in order; refuses data whose samples the model cannot take."""
    if not shapes:
        raise DatasetError("the model takes no inputs: there is nothing to feed the data to")
    names = check_feedable(list(shapes), dataset, spec)
    streamed = spec is not None and spec.streaming
    for name, array in sample_arrays(dataset, names).items():
        expected = tuple(shapes[name][1:])
        got = tuple(array.shape[1:])
        if streamed and name == names[0]:  # a stream is cut into frames along its last axis
            expected, got = expected[:-1], got[:-1]
        if got != expected:
            raise DatasetError(
                f"samples are {list(array.shape[1:])} but model input '{name}' takes {list(shapes[name][1:])}; "
                "adjust the preprocessing (resize, grayscale, layout) or the input shape",
                dataset.ref.path,
            )
    return names


def top1(logits: np.ndarray) -> np.ndarray:
    return class_scores(logits).argmax(axis=1)


@dataclass
class Scored:
    """What scoring found: the metric's label-based scores and the fidelity against a baseline."""

    settings: MetricSettings
    metric: str | None = None
    scores: dict[str, float] | None = None
    accuracy: float | None = None  # the metric's headline score
    agreement: float | None = None
    confusion: list[list[int]] | None = None
    output_fidelity: dict[str, OutputFidelity] | None = None
    snr_db: float | None = None
    outputs_identical: bool | None = None

    def fill(self, metrics: Metrics) -> None:
        for key in ("metric", "scores", "accuracy", "agreement", "confusion", "output_fidelity", "snr_db"):
            setattr(metrics, key, getattr(self, key))
        metrics.outputs_identical, metrics.scoring = self.outputs_identical, self.settings


def score_outputs(
    outputs: Mapping[str, np.ndarray],
    labels: np.ndarray | None,
    reference: Mapping[str, np.ndarray] | None,
    settings: MetricSettings,
    streamed: bool = False,
) -> Scored:
    """Scores of the scored output (the metric chosen from its shape and the labels, or the one
    ``settings`` names), its agreement with ``reference``, and fidelity per output. A ``streamed``
    output is [samples, frames, ...]: a frame axis is never mistaken for classes."""
    name = settings.output or next(iter(outputs))
    if name not in outputs:
        raise DatasetError(f"the model has no output '{name}' (outputs: {', '.join(outputs)})")
    scored = outputs[name]
    per_frame_scalar = streamed and scored.ndim == 2 and settings.metric is None
    metric = None if per_frame_scalar else choose_metric(tuple(scored.shape), labels, settings)
    result = Scored(settings)
    if metric is not None:
        result.metric = metric.id
        predicted = metric.predictions(scored, settings)
        if labels is not None:
            result.scores = metric.scores(predicted, labels, settings)
            result.accuracy = result.scores[metric.id]
            result.confusion = metric.extras(predicted, labels, settings).get("confusion")
        if reference is not None:
            result.agreement = metric.agreement(metric.predictions(reference[name], settings), predicted)
    if reference is not None:
        result.output_fidelity = {
            key: output_fidelity(reference[key], value) for key, value in outputs.items() if key in reference
        }
        result.snr_db = result.output_fidelity[name].snr_db
        result.outputs_identical = all(f.snr_db is None for f in result.output_fidelity.values())
    return result


def latency(
    models: Mapping[str, bytes],
    shapes: Mapping[str, tuple[int, ...]],
    runs: int = 50,
    warmup: int = 5,
    threads: int = DEFAULT_THREADS,
    task: Task | None = None,
    input_spec: InputSpec | None = None,
) -> dict[str, tuple[float, float]]:
    """Median and p90 in ms per model, runs interleaved round-robin so all share the host's state."""
    sessions = {key: make_session(data, threads) for key, data in models.items()}
    return interleaved_latency(sessions, shapes, runs=runs, warmup=warmup, task=task, input_spec=input_spec)


def interleaved_latency(
    sessions: Mapping[str, Any],
    shapes: Mapping[str, tuple[int, ...]],
    runs: int = 50,
    warmup: int = 5,
    task: Task | None = None,
    input_spec: InputSpec | None = None,
) -> dict[str, tuple[float, float]]:
    """Median and p90 in ms per session (onnxruntime, or any runtime behind the same interface), with
    the same seeded inputs, runs interleaved round-robin so every session sees the same machine state."""
    rng = np.random.default_rng(0)
    feeds = {key: example_feeds(session, shapes, rng, input_spec) for key, session in sessions.items()}
    timings: dict[str, list[float]] = {key: [] for key in sessions}
    for key, session in sessions.items():
        run_session(session, feeds[key])  # a model that cannot run fails here, as one line
    for index in range(warmup + runs):
        for key, session in sessions.items():
            start = time.perf_counter()
            session.run(None, feeds[key])
            if index >= warmup:
                timings[key].append((time.perf_counter() - start) * 1000.0)
        if task is not None:
            task.report((index + 1) / (warmup + runs), "timing")
    return {key: (statistics.median(t), float(np.percentile(t, 90))) for key, t in timings.items()}


def example_feeds(
    session, shapes: Mapping[str, tuple[int, ...]], rng: np.random.Generator, input_spec: InputSpec | None = None
) -> dict[str, np.ndarray]:
    """Random normal floats (zeros for integers and booleans) at the concrete shapes, for timing;
    declared constants and start states as declared, so control flow takes the branch the data would."""
    feeds = {}
    constants = input_spec.constants if input_spec is not None else {}
    for spec in session.get_inputs():
        if spec.name in constants:
            feeds[spec.name] = constants[spec.name].array()
            continue
        shape = tuple(shapes.get(spec.name) or tuple(d if isinstance(d, int) and d > 0 else 1 for d in spec.shape))
        dtype = numpy_dtype(spec.type)
        if dtype is None:
            raise WorkbenchError(f"input '{spec.name}' takes {spec.type}; the workbench measures numeric inputs only")
        if np.issubdtype(dtype, np.floating):
            feeds[spec.name] = rng.standard_normal(shape).astype(dtype)
        else:
            feeds[spec.name] = np.zeros(shape, dtype=dtype)
    return feeds


def layer_latency_shares(
    model_bytes: bytes,
    shapes: Mapping[str, tuple[int, ...]],
    runs: int = 20,
    threads: int = DEFAULT_THREADS,
    input_spec: InputSpec | None = None,
) -> dict[str, float]:
    """Each node's share of kernel time from onnxruntime's profiler.

    Graph optimizations are off so every layer keeps its own name and time; the shares describe the
    unfused graph, which is what the layer table shows.
    """
    import json
    import tempfile

    from workbench.runtime import new_session, session_options

    options = session_options(threads, optimize=False)
    options.enable_profiling = True
    with tempfile.TemporaryDirectory() as tmp:
        options.profile_file_prefix = str(Path(tmp) / "profile")
        session = new_session(model_bytes, options)
        feeds = example_feeds(session, shapes, np.random.default_rng(0), input_spec)
        for _ in range(runs):
            run_session(session, feeds)
        events = json.loads(Path(session.end_profiling()).read_text())
    totals: dict[str, float] = {}
    for event in events:
        if event.get("cat") == "Node" and event.get("name", "").endswith("_kernel_time"):
            name = event["name"].removesuffix("_kernel_time")
            totals[name] = totals.get(name, 0.0) + float(event.get("dur", 0))
    grand = sum(totals.values()) or 1.0
    return {name: value / grand for name, value in totals.items()}


def layer_snr(candidate_bytes: bytes, baseline_bytes: bytes, x: np.ndarray) -> dict[str, float | None]:
    """Per baseline node: SNR (dB) of its output in the candidate against the baseline, on the same inputs.

    Layers are matched by output tensor name, which quantizers (QDQ), pruning and fp16 keep; a layer the
    candidate renamed or removed is simply absent.
    """
    import onnx

    base = onnx.load_from_string(baseline_bytes)
    cand = onnx.load_from_string(candidate_bytes)
    cand_outputs = {o for n in cand.graph.node for o in n.output}
    # In QDQ graphs a float tensor is only what the next op sees after its DequantizeLinear (which also
    # carries a folded ReLU's clipping), so compare there when it exists.
    pairs: dict[str, tuple[str, str]] = {}
    for node in base.graph.node:
        if node.op_type == "Constant" or not node.output:
            continue
        tensor = node.output[0]
        for candidate_name in (f"{tensor}_DequantizeLinear_Output", tensor):
            if candidate_name in cand_outputs:
                pairs[tensor] = (candidate_name, node.name or tensor)
                break
    if not pairs:
        return {}

    from workbench.onnx_prep import with_outputs

    def run(proto: onnx.ModelProto, names: list[str]) -> dict[str, np.ndarray]:
        session = make_session(with_outputs(proto, names).SerializeToString())
        feed_name = session.get_inputs()[0].name
        return dict(zip(names, run_session(session, {feed_name: x}, names), strict=True))

    reference = run(base, list(pairs))
    candidate = run(cand, [c for c, _ in pairs.values()])
    result = {}
    for tensor, (candidate_name, node) in pairs.items():
        a, b = np.asarray(reference[tensor]), np.asarray(candidate[candidate_name])
        if a.shape == b.shape and np.issubdtype(a.dtype, np.floating):
            result[node] = snr_db(a.astype(np.float32), b.astype(np.float32))
    return result


def safe_batch(analysis: Analysis, model_bytes: int, source: Path | None = None) -> int:
    """How many samples one run may take within the memory budget; refuses a model that cannot run once.

    The analysis knows the activations at the model's input shapes (batch 1 as a rule). Runtimes need
    scratch space beyond the tensors themselves (im2col, arenas), hence the margin.
    """
    if analysis.runtime_refusal is not None:
        raise WorkbenchError(f"refusing to run the model here: {analysis.runtime_refusal}", source)
    budget = memory_budget(model_bytes)
    peak = analysis.peak_activation_bytes
    check_allocation(peak, "running the model (its activations)", source, budget=budget)
    batch = 1
    if analysis.input_shapes is not None and analysis.input_shapes.shapes:
        batch = max(1, min(int(next(iter(analysis.input_shapes.shapes.values()))[0] or 1), MAX_BATCH))
    per_sample = max(peak / batch, 1.0)
    return max(1, min(MAX_BATCH, int(budget / (4 * per_sample))))


def runnable_batch(model: Model) -> int:
    """Analyse ``model`` and return a safe batch size, or refuse when it cannot run here even once.

    Every place that runs a model in this process (measuring, calibration, distillation, sensitivity,
    export) asks first: a small file must not make onnxruntime allocate what its graph computes.
    """
    from workbench.analysis import analyze

    proto_model = model if model.onnx_proto is not None else model.derive(onnx_proto=model.to_onnx())
    return safe_batch(analyze(proto_model), len(proto_model.onnx_bytes()), model.source)


def measure(
    model: Model,
    *,
    baseline: Model | None = None,
    dataset: Dataset | None = None,
    runs: int = 50,
    threads: int = DEFAULT_THREADS,
    task: Task | None = None,
    profile_layers: bool = False,
    scoring: MetricSettings | None = None,
) -> Metrics:
    """Size, accuracy/fidelity and latency of ``model`` (and its ratio to ``baseline``)."""
    from workbench.analysis import analyze

    task = task or Task()
    shapes = model.concrete_shapes()
    task.report(0.0, "analyzing")
    data = model.artifact_bytes()  # the compacted file the project stores and a bundle ships
    analysis = analyze(model.derive(onnx_proto=model.to_onnx()) if model.onnx_proto is None else model)
    max_batch = safe_batch(analysis, len(data), model.source)
    metrics = Metrics(
        host=host_description(),
        input_shapes={k: list(v) for k, v in shapes.items()},
        artifact_bytes=len(data),
        zip_bytes=zip_size(data),
        download_bytes=download_size(data),
        params=analysis.params,
        nonzero_params=analysis.nonzero_params,
        macs=analysis.macs,
        macs_complete=not analysis.macs_unknown_layers,
        runtime=settings_for(data, threads),
    )
    baseline_bytes = baseline.artifact_bytes() if baseline is not None else None
    if baseline_bytes is not None:
        metrics.baseline_runtime = settings_for(baseline_bytes, threads)
    if dataset is not None:
        check_dataset_fits(dataset, shapes, model.input_spec)
        task.report(0.1, "evaluating")
        scoring = scoring or MetricSettings()
        metrics.input_spec = model.input_spec
        session = make_session(data, threads)
        outputs = run_dataset(session, dataset, model.input_spec, task.sub(0.1, 0.4), max_batch=max_batch)
        metrics.dataset, metrics.samples = dataset.ref, len(dataset)
        reference = None
        if baseline_bytes is not None:
            single_input = not dataset.inputs and model.input_spec is None
            if profile_layers and baseline_bytes != data and single_input:
                try:
                    # by the graphs' own names, which both share and the layer table shows
                    metrics.layer_snr_db = layer_snr(model.onnx_bytes(), baseline.onnx_bytes(), dataset.x[:1])
                except Exception:
                    metrics.layer_snr_db = None
            reference = run_dataset(
                make_session(baseline_bytes, threads),
                dataset,
                baseline.input_spec or model.input_spec,
                task.sub(0.4, 0.6),
                max_batch=max_batch,
            )
        streamed = model.input_spec is not None and model.input_spec.streaming
        score_outputs(outputs, dataset.y, reference, scoring, streamed).fill(metrics)
    if runs > 0:
        task.report(0.6, "timing")
        candidates = {"model": data} | ({"baseline": baseline_bytes} if baseline_bytes is not None else {})
        timed = latency(
            candidates, shapes, runs=runs, threads=threads, task=task.sub(0.6, 1.0), input_spec=model.input_spec
        )
        metrics.latency_ms_median, metrics.latency_ms_p90 = timed["model"]
        metrics.latency_runs, metrics.threads = runs, threads
        if "baseline" in timed:
            metrics.baseline_latency_ms_median = timed["baseline"][0]
            metrics.latency_ratio = timed["model"][0] / timed["baseline"][0]
        if profile_layers:
            task.report(0.95, "profiling layers")
            metrics.layer_latency_share = layer_latency_shares(
                model.onnx_bytes(), shapes, threads=threads, input_spec=model.input_spec
            )
    task.report(1.0, "measured")
    return metrics


class QualityProbe:
    """One number per candidate on a fixed set of samples, comparable with the unmodified model's:
    the metric's headline score against labels, else agreement with the unmodified model's
    predictions, else (no metric fits the output) the output's cosine similarity to the unmodified one.
    Sensitivity sweeps and precision proposals rank candidates by it."""

    def __init__(
        self,
        model: Model,
        dataset: Dataset,
        settings: MetricSettings | None = None,
        samples: int | None = None,
        *,
        use_labels: bool = True,
    ) -> None:
        self.dataset, self.samples = dataset, samples
        self.settings = settings or MetricSettings()
        self.spec = model.input_spec
        self.batch = runnable_batch(model)
        labels = dataset.y if use_labels else None
        self.labels = labels[:samples] if labels is not None and samples else labels
        reference = self.outputs(model.onnx_bytes())
        self.output = self.settings.output or next(iter(reference))
        self.reference = reference[self.output]
        self.metric = choose_metric(tuple(self.reference.shape), self.labels, self.settings)
        if self.metric is None:
            self.name = "cosine similarity"
        else:
            self.reference_predictions = self.metric.predictions(self.reference, self.settings)
            self.name = f"{self.metric.label}" if self.labels is not None else f"agreement ({self.metric.id})"
        self.baseline = self.score_outputs(self.reference)

    def outputs(self, model_bytes: bytes) -> dict[str, np.ndarray]:
        session = make_session(model_bytes)
        return run_dataset(session, self.dataset, self.spec, max_batch=self.batch, limit=self.samples)

    def __call__(self, candidate: Model) -> float:
        return self.score_outputs(self.outputs(candidate.onnx_bytes())[self.output])

    def score_outputs(self, outputs: np.ndarray) -> float:
        if self.metric is None:
            return output_fidelity(self.reference, outputs).cosine
        predicted = self.metric.predictions(outputs, self.settings)
        if self.labels is not None:
            return self.metric.scores(predicted, self.labels, self.settings)[self.metric.id]
        return self.metric.agreement(self.reference_predictions, predicted)
