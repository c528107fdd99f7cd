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
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from pydantic import BaseModel, Field

from workbench.datasets import Dataset, DatasetRef
from workbench.errors import DatasetError, WorkbenchError
from workbench.limits import check_allocation, memory_budget
from workbench.plugin import Task
from workbench.runtime import (
    DEFAULT_THREADS,
    MAX_BATCH,
    RuntimeSettings,
    make_session,
    numpy_dtype,
    run_batches,
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


def check_dataset_fits(dataset: Dataset, shapes: Mapping[str, tuple[int, ...]]) -> None:
    if not shapes:
        raise DatasetError("the model takes no inputs: there is nothing to feed the data to")
    if len(shapes) != 1:
        raise DatasetError(f"evaluation feeds one input; the model has {len(shapes)} ({', '.join(shapes)})")
    name, shape = next(iter(shapes.items()))
    if tuple(dataset.x.shape[1:]) != tuple(shape[1:]):
        raise DatasetError(
            f"samples are {list(dataset.x.shape[1:])} but model input '{name}' takes {list(shape[1:])}; "
            "adjust the preprocessing (resize, grayscale, layout) or the input shape",
            dataset.ref.path,
        )


def top1(logits: np.ndarray) -> np.ndarray:
    if logits.ndim != 2:
        raise DatasetError(f"top-1 needs a [batch, classes] output; the model's output is {list(logits.shape)}")
    return logits.argmax(axis=1)


def snr_db(reference: np.ndarray, candidate: np.ndarray) -> float | None:
    """10·log10(signal/noise) of ``candidate`` against ``reference``; None when they are identical."""
    noise = float(np.sum((reference.astype(np.float64) - candidate.astype(np.float64)) ** 2))
    if noise == 0.0:
        return None
    signal = float(np.sum(reference.astype(np.float64) ** 2))
    return 10.0 * float(np.log10(max(signal, 1e-30) / noise))


def latency(
    models: Mapping[str, bytes],
    shapes: Mapping[str, tuple[int, ...]],
    runs: int = 50,
    warmup: int = 5,
    threads: int = DEFAULT_THREADS,
    task: Task | None = None,
) -> dict[str, tuple[float, float]]:
    """Median and p90 in ms per model, runs interleaved round-robin so all share the host's state."""
    sessions = {key: make_session(data, threads) for key, data in models.items()}
    return interleaved_latency(sessions, shapes, runs=runs, warmup=warmup, task=task)


def interleaved_latency(
    sessions: Mapping[str, Any],
    shapes: Mapping[str, tuple[int, ...]],
    runs: int = 50,
    warmup: int = 5,
    task: Task | None = None,
) -> dict[str, tuple[float, float]]:
    """Median and p90 in ms per session (onnxruntime, or any runtime behind the same interface), with
    the same seeded inputs, runs interleaved round-robin so every session sees the same machine state."""
    rng = np.random.default_rng(0)
    feeds = {key: example_feeds(session, shapes, rng) for key, session in sessions.items()}
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


def example_feeds(session, shapes: Mapping[str, tuple[int, ...]], rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Random normal floats (zeros for integers and booleans) at the concrete shapes, for timing."""
    feeds = {}
    for spec in session.get_inputs():
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
    model_bytes: bytes, shapes: Mapping[str, tuple[int, ...]], runs: int = 20, threads: int = DEFAULT_THREADS
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
        feeds = example_feeds(session, shapes, np.random.default_rng(0))
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
        check_dataset_fits(dataset, shapes)
        task.report(0.1, "evaluating")
        outputs = run_batches(make_session(data, threads), dataset.x, task.sub(0.1, 0.4), max_batch=max_batch)
        metrics.dataset, metrics.samples = dataset.ref, len(dataset)
        if dataset.y is not None:
            metrics.accuracy = float(np.mean(top1(outputs) == dataset.y))
        if baseline_bytes is not None:
            if profile_layers and baseline_bytes != data:
                try:
                    # by the graphs' own names, which both share and the layer table shows
                    metrics.layer_snr_db = layer_snr(model.onnx_bytes(), baseline.onnx_bytes(), dataset.x[:1])
                except Exception:
                    metrics.layer_snr_db = None
            reference = run_batches(
                make_session(baseline_bytes, threads), dataset.x, task.sub(0.4, 0.6), max_batch=max_batch
            )
            metrics.agreement = float(np.mean(top1(reference) == top1(outputs)))
            metrics.snr_db = snr_db(reference, outputs)
            metrics.outputs_identical = metrics.snr_db is None
    if runs > 0:
        task.report(0.6, "timing")
        candidates = {"model": data} | ({"baseline": baseline_bytes} if baseline_bytes is not None else {})
        timed = latency(candidates, shapes, runs=runs, threads=threads, task=task.sub(0.6, 1.0))
        metrics.latency_ms_median, metrics.latency_ms_p90 = timed["model"]
        metrics.latency_runs, metrics.threads = runs, threads
        if "baseline" in timed:
            metrics.baseline_latency_ms_median = timed["baseline"][0]
            metrics.latency_ratio = timed["model"][0] / timed["baseline"][0]
        if profile_layers:
            task.report(0.95, "profiling layers")
            metrics.layer_latency_share = layer_latency_shares(model.onnx_bytes(), shapes, threads=threads)
    task.report(1.0, "measured")
    return metrics
