"""onnxruntime sessions as the workbench uses them: quiet, one thread by default, failures as one line.

Every figure is measured here, so this is also where a broken or hostile model is stopped: loading and
running errors become a :class:`WorkbenchError` with onnxruntime's reason, and onnxruntime's own log
lines stay off the user's terminal unless ``--debug`` asks for them.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from workbench.errors import WorkbenchError, describe_exception

if TYPE_CHECKING:
    import onnxruntime as ort

    from workbench.plugin import Task

DEFAULT_THREADS = 1
MAX_BATCH = 256
_QUIET, _VERBOSE = 4, 2  # onnxruntime severities: 4 fatal only; 2 warnings and up
_logging = {"severity": _QUIET}


def set_runtime_logging(debug: bool) -> None:
    """Fatal messages only, unless debugging: the workbench reports runtime failures itself.
    Takes effect at the next session (onnxruntime is not imported here: it costs start-up time)."""
    _logging["severity"] = _VERBOSE if debug else _QUIET
    _logging.pop("applied", None)


def quiet_runtime() -> None:
    """Apply the log level to onnxruntime's default logger (used by sessions the workbench does not
    create itself, such as the quantizer's calibration runs)."""
    if _logging.get("applied") != _logging["severity"]:
        import onnxruntime as ort

        ort.set_default_logger_severity(_logging["severity"])
        _logging["applied"] = _logging["severity"]


def session_options(threads: int = DEFAULT_THREADS, *, optimize: bool = True) -> ort.SessionOptions:
    import onnxruntime as ort

    quiet_runtime()
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.log_severity_level = _logging["severity"]
    if not optimize:
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    return options


class RuntimeSettings(BaseModel):
    """Everything a figure was measured with that changes how fast or how exactly a model runs.

    Stored with every measurement and written to a bundle's manifest, whose ``run.py`` and README
    snippet load the artifact with exactly these settings (``workbench verify`` does too).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    runtime: Literal["onnxruntime", "openvino", "litert", "tflite-micro", "executorch"] = "onnxruntime"
    version: str = Field(description="the runtime's version the figures were measured with")
    provider: str = Field("CPUExecutionProvider", description="onnxruntime execution provider or OpenVINO device")
    threads: int = Field(DEFAULT_THREADS, ge=1, description="intra-op threads (OpenVINO: inference threads)")
    graph_optimization: Literal["all", "extended", "basic", "disabled"] = "all"
    config: dict[str, str] = Field(default_factory=dict, description="session config entries / compile properties")

    def describe(self) -> str:
        extra = "".join(f", {k}={v}" for k, v in sorted(self.config.items()))
        return (
            f"{self.runtime} {self.version} {self.provider}, {self.threads} thread(s), "
            f"graph optimization {self.graph_optimization}{extra}"
        )


# RuntimeSettings.graph_optimization -> onnxruntime's GraphOptimizationLevel member (also spelled out in bundles)
GRAPH_OPTIMIZATION_LEVELS = {
    "all": "ORT_ENABLE_ALL",
    "extended": "ORT_ENABLE_EXTENDED",
    "basic": "ORT_ENABLE_BASIC",
    "disabled": "ORT_DISABLE_ALL",
}


def settings_for(model_bytes: bytes, threads: int = DEFAULT_THREADS) -> RuntimeSettings:
    """How the workbench runs an ONNX model in onnxruntime: the settings every figure records."""
    import onnxruntime as ort

    config = {}
    if is_weight_only_quantized(model_bytes):
        # int8 weights behind DequantizeLinear run at float speed only without QDQ fusion (~1.7x otherwise).
        config["session.disable_quant_qdq"] = "1"
    return RuntimeSettings(version=ort.__version__, threads=threads, config=config)


def open_session(model: bytes | str | Path, settings: RuntimeSettings) -> ort.InferenceSession:
    """An onnxruntime session built from ``settings`` alone (a measurement's, or a bundle manifest's)."""
    import onnxruntime as ort

    if settings.runtime != "onnxruntime":
        raise WorkbenchError(f"these settings are for {settings.runtime}, not onnxruntime")
    options = session_options(settings.threads, optimize=settings.graph_optimization != "disabled")
    level = GRAPH_OPTIMIZATION_LEVELS[settings.graph_optimization]
    options.graph_optimization_level = getattr(ort.GraphOptimizationLevel, level)
    for key, value in settings.config.items():
        options.add_session_config_entry(key, value)
    try:
        return new_session(str(model) if isinstance(model, Path) else model, options, settings.provider)
    except Exception as exc:
        raise WorkbenchError(f"onnxruntime cannot load the model ({_reason(exc)})") from None


def new_session(
    model: bytes | str, options: ort.SessionOptions, provider: str = "CPUExecutionProvider"
) -> ort.InferenceSession:
    """An onnxruntime CPU session. onnxruntime's Python layer prints an "EP Error" banner to stdout
    before re-raising some load failures; the caller reports the failure itself, in one line."""
    import onnxruntime as ort

    with quiet_stdout():
        return ort.InferenceSession(model, options, providers=[provider])


def quiet_stdout() -> contextlib.AbstractContextManager:
    """Keeps onnxruntime's Python-layer banners off stdout unless debugging."""
    import io

    return contextlib.redirect_stdout(io.StringIO()) if _logging["severity"] == _QUIET else contextlib.nullcontext()


def make_session(model_bytes: bytes, threads: int = DEFAULT_THREADS) -> ort.InferenceSession:
    """A session for an ONNX model with the settings :func:`settings_for` records."""
    return open_session(model_bytes, settings_for(model_bytes, threads))


def run_session(
    session: ort.InferenceSession, feeds: Mapping[str, Any], outputs: Sequence[str] | None = None
) -> list[Any]:
    """``session.run`` with failures (a shape the graph cannot take, memory) as a WorkbenchError."""
    import onnxruntime as ort

    options = ort.RunOptions()
    options.log_severity_level = _logging["severity"]
    try:
        return session.run(list(outputs) if outputs is not None else None, dict(feeds), options)
    except Exception as exc:
        raise WorkbenchError(f"onnxruntime failed while running the model ({_reason(exc)})") from None


def _reason(exc: BaseException) -> str:
    return describe_exception(exc).removeprefix("onnxruntime: ")[:300]


def is_weight_only_quantized(model_bytes: bytes) -> bool:
    """DequantizeLinear fed only by initializers and no QuantizeLinear: int8 storage, float compute."""
    if b"DequantizeLinear" not in model_bytes or b"QuantizeLinear\x12" in model_bytes.replace(b"DequantizeLinear", b""):
        return False
    import onnx
    from google.protobuf.message import DecodeError

    try:
        proto = onnx.load_from_string(model_bytes)
    except (DecodeError, ValueError, RuntimeError):
        return False  # not an ONNX proto (an .ort flatbuffer): its session settings were fixed at conversion
    weights = {init.name for init in proto.graph.initializer}
    nodes = proto.graph.node
    if any(n.op_type == "QuantizeLinear" for n in nodes):
        return False
    return any(n.op_type == "DequantizeLinear" for n in nodes) and all(
        n.input[0] in weights for n in nodes if n.op_type == "DequantizeLinear"
    )


def numpy_dtype(type_name: str) -> np.dtype | None:
    """The numpy dtype of an onnxruntime type such as ``tensor(float16)``; None for strings and the like."""
    name = type_name.removeprefix("tensor(").removesuffix(")")
    name = {"float": "float32", "double": "float64"}.get(name, name)
    if name in ("string", "bfloat16") or not name:
        return None
    try:
        return np.dtype(name)
    except TypeError:
        return None


def run_batches(
    session: ort.InferenceSession,
    x: np.ndarray,
    task: Task | None = None,
    *,
    shapes: Mapping[str, Sequence[int]] | None = None,
    max_batch: int = MAX_BATCH,
) -> np.ndarray:
    """Feed ``x`` to the first input in batches the model accepts and return the first output.

    Other inputs (a recurrent state, a flag) get zeros at their concrete ``shapes``: enough to compare
    two versions of one model on the same feeds, never a stand-in for real data. A batch the graph
    refuses (a reshape that fixes batch 1) is retried one sample at a time.
    """
    inputs = session.get_inputs()
    if not inputs:
        raise WorkbenchError("the model takes no inputs: there is nothing to feed the data to")
    first = inputs[0]
    extra = {}
    for spec in inputs[1:]:
        dtype = numpy_dtype(spec.type)
        shape = (shapes or {}).get(spec.name) or tuple(d if isinstance(d, int) and d > 0 else 1 for d in spec.shape)
        if dtype is None:
            raise WorkbenchError(f"input '{spec.name}' takes {spec.type}; only numeric inputs can be fed")
        extra[spec.name] = np.zeros(tuple(shape), dtype=dtype)
    batch_dim = first.shape[0] if first.shape else None
    fixed = isinstance(batch_dim, int) and batch_dim > 0
    batch = batch_dim if fixed else (1 if extra else max(1, min(max_batch, MAX_BATCH)))
    outputs = []
    for start in range(0, len(x), batch):
        chunk = x[start : start + batch]
        if len(chunk) < batch and fixed:
            pad = np.zeros((batch - len(chunk), *chunk.shape[1:]), dtype=chunk.dtype)
            result = run_session(session, {first.name: np.concatenate([chunk, pad])} | extra)[0][: len(chunk)]
        elif len(chunk) > 1:
            result = _run_or_one_by_one(session, first.name, chunk, extra)
        else:
            result = run_session(session, {first.name: chunk} | extra)[0]
        outputs.append(np.asarray(result))
        if task is not None:
            task.report(min(1.0, (start + batch) / len(x)), "evaluating")
    return np.concatenate(outputs)


def _run_or_one_by_one(session: ort.InferenceSession, name: str, chunk: np.ndarray, extra: dict) -> np.ndarray:
    try:
        return np.asarray(run_session(session, {name: chunk} | extra)[0])
    except WorkbenchError:
        pass  # some graphs declare a dynamic batch but fix it to 1 inside (a Reshape to [1, ...])
    return np.concatenate(
        [np.asarray(run_session(session, {name: chunk[i : i + 1]} | extra)[0]) for i in range(len(chunk))]
    )
