"""What a model is fed beyond its data: named inputs, constant side inputs and recurrent state.

A model may take several inputs. The data feeds the ones it names (an ``.npz`` with one array per
input), or its one array feeds the only data input. The rest are declared once in the project's
:class:`InputSpec`: a constant (a sample rate, a zero initial state) or a recurrent state that the
model returns as an output. A model with state is run as a stream: each sample's stream input is cut
into frames, the state starts at its declared value and each frame's state output feeds the next.
Nothing here is ever random: an input that is neither data nor declared is refused with the fix.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from workbench.errors import DatasetError, WorkbenchError

if TYPE_CHECKING:
    from workbench.datasets import Dataset, DatasetRef
    from workbench.model import Model, TensorSpec
    from workbench.plugin import Task

NUMERIC_DTYPES = ("float32", "float16", "float64", "int64", "int32", "int16", "int8", "uint8", "bool")


class ConstantInput(BaseModel):
    """An input that holds the same value for every sample."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    dtype: str = Field(description="numpy dtype name")
    shape: tuple[int, ...] = Field((), description="the array's shape; () for a scalar")
    value: float = Field(0.0, description="every element's value")

    def array(self) -> np.ndarray:
        return np.full(self.shape, self.value, dtype=np.dtype(self.dtype))

    def describe(self) -> str:
        value = f"{self.value:g}"
        return f"{value} ({self.dtype}{list(self.shape) if self.shape else ' scalar'})"


class InputSpec(BaseModel):
    """Inputs the data does not supply, declared once per project and used by every run."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    constants: dict[str, ConstantInput] = Field(default_factory=dict, description="input -> its fixed value")
    state: dict[str, str] = Field(
        default_factory=dict, description="state input -> the output that carries it to the next frame"
    )
    frame: int | None = Field(None, ge=1, description="stream: samples per frame along the data's last axis")
    hop: int | None = Field(
        None,
        ge=1,
        description="stream: samples between frame starts (default: the frame). A hop shorter than the frame "
        "repeats the previous frame's last samples as context, zeros before the first, as Silero VAD's "
        "wrapper feeds 64 + 512",
    )

    @property
    def streaming(self) -> bool:
        return bool(self.state)

    def describe(self) -> str:
        parts = [f"{name} = {constant.describe()}" for name, constant in self.constants.items()]
        parts += [f"{name} <- {output} (state)" for name, output in self.state.items()]
        if self.streaming:
            hop = f", hop {self.hop}" if self.hop and self.hop != self.frame else ""
            parts.append(f"streamed in frames of {self.frame or 'the input size'}{hop}")
        return "; ".join(parts) or "data feeds every input"


def parse_constant(text: str, inputs: Sequence[TensorSpec]) -> tuple[str, ConstantInput]:
    """``NAME=VALUE`` (the input's dtype and shape, with dynamic dimensions taken as 1) or
    ``NAME=VALUE:DTYPE[:D1xD2...]``."""
    match = re.fullmatch(r"\s*([^=]+?)\s*=\s*([-+0-9.eE]+|nan|inf)\s*(?::\s*(\w+))?\s*(?::\s*([0-9x]*))?\s*", text)
    if not match:
        raise WorkbenchError(f"--const takes NAME=VALUE[:DTYPE[:SHAPE]], got '{text[:60]}'")
    name, value, dtype, shape_text = match.groups()
    spec = next((s for s in inputs if s.name == name), None)
    if spec is None:
        raise WorkbenchError(f"--const: the model has no input '{name}' (inputs: {', '.join(s.name for s in inputs)})")
    dtype = dtype or spec.dtype
    if dtype not in NUMERIC_DTYPES:
        raise WorkbenchError(f"--const {name}: dtype '{dtype}' is not one of {', '.join(NUMERIC_DTYPES)}")
    if shape_text is not None:
        shape = tuple(int(d) for d in shape_text.split("x") if d) if shape_text else ()
    else:
        shape = tuple(d if isinstance(d, int) and d > 0 else 1 for d in spec.shape)
    return name, ConstantInput(dtype=dtype, shape=shape, value=float(value))


def suggest_input_spec(inputs: Sequence[TensorSpec], outputs: Sequence[TensorSpec]) -> InputSpec:
    """A starting point for a model with side inputs: integer scalars named like a sample rate get
    16000, a float input whose shape an output repeats and whose name says state becomes a zero state
    carried over a stream, and one named so that no output returns becomes a zero constant."""
    constants: dict[str, ConstantInput] = {}
    state: dict[str, str] = {}
    data_like = [s for s in inputs if s.dtype.startswith("float")]
    for spec in inputs:
        concrete = tuple(d if isinstance(d, int) and d > 0 else 1 for d in spec.shape)
        if not spec.dtype.startswith("float") and len(concrete) <= 1 and int(np.prod(concrete)) == 1:
            if re.search(r"(^|_)(sr|sample_?rate|rate)$", spec.name, re.IGNORECASE):
                constants[spec.name] = ConstantInput(dtype=spec.dtype, shape=concrete, value=16000)
            continue
        secondary = spec in data_like and spec is not data_like[0]  # the first float input is the data
        if secondary and re.search(r"state|hidden|^h\d?$|^c\d?$|_h$|_c$", spec.name, re.IGNORECASE):
            partner = next(
                (o for o in outputs if o.name != spec.name and _stateish(o.name) and _same_rank(o.shape, spec.shape)),
                None,
            )
            constants[spec.name] = ConstantInput(dtype=spec.dtype, shape=concrete, value=0.0)
            if partner is not None:
                state[spec.name] = partner.name
    return InputSpec(constants=constants, state=state)


def _same_rank(a: Sequence, b: Sequence) -> bool:
    """Same rank and no fixed dimension that differs (exporters often leave a state output's dims unnamed)."""
    if len(a) != len(b):
        return False
    return all(not (isinstance(x, int) and isinstance(y, int)) or x == y for x, y in zip(a, b, strict=True))


def _stateish(name: str) -> bool:
    return bool(re.search(r"state|hidden|^h|^c|_h|_c|hn|cn", name, re.IGNORECASE))


def with_stream_frame(spec: InputSpec, model: Model) -> InputSpec:
    """A streamed model's frame, when not declared: the stream input's last dimension at the model's
    input shapes (a VAD taking [1, 512] reads 512 samples a frame)."""
    if not spec.streaming or spec.frame is not None:
        return spec
    names = data_inputs([i.name for i in model.inputs], spec)
    shape = model.concrete_shapes().get(names[0]) if names else None
    return spec.model_copy(update={"frame": int(shape[-1])}) if shape else spec


def data_inputs(names: Sequence[str], spec: InputSpec | None) -> list[str]:
    """The inputs the data must supply: every input not declared constant or state."""
    declared = set(spec.constants) | set(spec.state) if spec else set()
    return [name for name in names if name not in declared]


def random_inputs_for(model: Model, count: int = 64) -> DatasetRef | None:
    """Random inputs for every input the data would feed (the model's declared constants and state
    stay as declared); None when the model takes no data input."""
    from workbench.datasets import random_inputs_ref

    shapes = model.concrete_shapes()
    fed = [
        tensor
        for tensor in model.inputs
        if tensor.name in data_inputs([i.name for i in model.inputs], model.input_spec)
    ]
    if not fed:
        return None
    if len(fed) == 1 and fed[0].dtype == "float32":
        return random_inputs_ref(tuple(shapes[fed[0].name]), count)
    named = {t.name: (tuple(shapes[t.name]), t.dtype if t.dtype in NUMERIC_DTYPES else "float32") for t in fed}
    return random_inputs_ref(tuple(shapes[fed[0].name]), count, named)


def probe_feeds(
    inputs: Sequence[TensorSpec], shapes: Mapping[str, Sequence[int]], spec: InputSpec | None
) -> dict[str, np.ndarray]:
    """Feeds for a run that only learns shapes or times the model: declared constants as declared,
    zeros elsewhere (never random integers, which would steer an ``If`` on a sample rate)."""
    feeds = {}
    for tensor in inputs:
        if spec is not None and tensor.name in spec.constants:
            feeds[tensor.name] = spec.constants[tensor.name].array()
            continue
        shape = tuple(shapes.get(tensor.name) or tuple(d if isinstance(d, int) and d > 0 else 1 for d in tensor.shape))
        feeds[tensor.name] = np.zeros(shape, dtype=np.dtype(tensor.dtype if tensor.dtype != "bool" else bool))
    return feeds


def check_feedable(input_names: Sequence[str], dataset: Dataset, spec: InputSpec | None) -> list[str]:
    """The data inputs in order, or one line saying which input is missing and how to declare it."""
    wanted = data_inputs(input_names, spec)
    named = dataset.inputs
    if named:
        missing = [name for name in wanted if name not in named]
        if missing:
            raise DatasetError(
                f"the data has no array for input '{missing[0]}' (it has: {', '.join(named)}); "
                f"name it in the data or declare it constant (--const {missing[0]}=VALUE)",
                dataset.ref.path,
            )
        return wanted
    if len(wanted) != 1:
        if not wanted:
            raise DatasetError("every model input is declared constant: there is nothing to feed the data to")
        raise DatasetError(
            f"the data has one array but the model takes {len(wanted)} inputs ({', '.join(wanted)}): declare the "
            f"others constant (--const {wanted[-1]}=VALUE) or use an .npz with one array per input",
            dataset.ref.path,
        )
    return wanted


def sample_arrays(dataset: Dataset, names: Sequence[str]) -> dict[str, np.ndarray]:
    """The data's arrays by model input name (all of the same length)."""
    if dataset.inputs:
        return {name: dataset.inputs[name] for name in names}
    return {names[0]: dataset.x}


RunFeeds = Callable[[Mapping[str, np.ndarray]], Sequence[np.ndarray]]


def run_stream(
    run: RunFeeds,
    output_names: Sequence[str],
    arrays: Mapping[str, np.ndarray],
    spec: InputSpec,
    task: Task | None = None,
    record: Callable[[dict[str, np.ndarray]], None] | None = None,
) -> dict[str, np.ndarray]:
    """Each sample as a stream of frames: state from its declared start, every frame's state output
    fed to the next frame. Non-state outputs are stacked over frames: [samples, frames, ...].
    ``record`` sees every frame's complete feeds (calibration wants states as the stream has them)."""
    stream_name = next(iter(arrays))
    count = len(arrays[stream_name])
    frame = spec.frame
    outputs: dict[str, list[np.ndarray]] = {name: [] for name in output_names if name not in spec.state.values()}
    for index in range(count):
        sample = arrays[stream_name][index : index + 1]
        length = sample.shape[-1]
        size = frame or length
        hop = spec.hop or size
        if hop > size:
            raise DatasetError(f"the stream's hop ({hop}) is longer than its frame ({size}): samples would be skipped")
        context = size - hop  # samples each frame repeats from before its hop: zeros before the first
        frames = max(1, -(-length // hop))
        padded = np.zeros((*sample.shape[:-1], context + frames * hop), dtype=sample.dtype)
        padded[..., context : context + length] = sample
        state = {name: spec.constants[name].array() if name in spec.constants else None for name in spec.state}
        missing = [name for name, value in state.items() if value is None]
        if missing:
            raise DatasetError(f"state input '{missing[0]}' needs a start value: declare it (--const {missing[0]}=0)")
        constants = {name: c.array() for name, c in spec.constants.items() if name not in spec.state}
        per_frame: dict[str, list[np.ndarray]] = {name: [] for name in outputs}
        for step in range(frames):
            feeds: dict[str, Any] = {stream_name: padded[..., step * hop : step * hop + size]}
            feeds |= {name: arrays[name][index : index + 1] for name in arrays if name != stream_name}
            feeds |= constants | state
            if record is not None:
                record(feeds)
            results = dict(zip(output_names, run(feeds), strict=True))
            state = {name: np.asarray(results[output]) for name, output in spec.state.items()}
            for name in per_frame:
                per_frame[name].append(np.asarray(results[name]))
        for name, values in per_frame.items():
            outputs[name].append(np.stack(values, axis=1))  # [1, frames, ...]
        if task is not None:
            task.report((index + 1) / count, "streaming")
    return {name: np.concatenate(values) for name, values in outputs.items()}


def run_dataset(
    session: Any,
    dataset: Dataset,
    spec: InputSpec | None = None,
    task: Task | None = None,
    *,
    max_batch: int = 256,
    limit: int | None = None,
) -> dict[str, np.ndarray]:
    """Every output of ``session`` (an onnxruntime session or anything with its interface) over the
    data, by output name: batched where the model allows, streamed frame by frame when it has state."""
    from workbench.runtime import run_session

    input_names = [i.name for i in session.get_inputs()]
    output_names = [o.name for o in session.get_outputs()]
    wanted = check_feedable(input_names, dataset, spec)
    arrays = sample_arrays(dataset, wanted)
    if limit is not None:
        arrays = {name: array[:limit] for name, array in arrays.items()}
    spec = spec or InputSpec()
    unknown = [name for name in list(spec.constants) + list(spec.state) if name not in input_names]
    if unknown:
        raise DatasetError(f"the input spec declares '{unknown[0]}', which the model does not take")

    def run(feeds: Mapping[str, np.ndarray]) -> Sequence[np.ndarray]:
        return run_session(session, feeds)

    if spec.streaming:
        return run_stream(run, output_names, arrays, spec, task)
    constants = {name: c.array() for name, c in spec.constants.items()}
    first = session.get_inputs()[input_names.index(wanted[0])]
    batch_dim = first.shape[0] if first.shape else None
    fixed = isinstance(batch_dim, int) and batch_dim > 0
    # a constant with its own batch axis (a state of batch 1) pins the run to one sample at a time
    batch = batch_dim if fixed else (1 if any(c.shape for c in spec.constants.values()) else max(1, max_batch))
    count = len(next(iter(arrays.values())))
    gathered: dict[str, list[np.ndarray]] = {name: [] for name in output_names}
    for start in range(0, count, batch):
        chunk = {name: array[start : start + batch] for name, array in arrays.items()}
        size = len(next(iter(chunk.values())))
        if fixed and size < batch:  # a fixed batch: pad the last chunk and keep the real rows
            chunk = {name: _pad_rows(array, batch) for name, array in chunk.items()}
        try:
            results = [np.asarray(r) for r in run(chunk | constants)]
        except WorkbenchError:
            if size == 1 or fixed:
                raise
            # some graphs declare a dynamic batch but fix it to 1 inside (a Reshape to [1, ...])
            rows = [run({n: a[i : i + 1] for n, a in chunk.items()} | constants) for i in range(size)]
            results = [np.concatenate([np.asarray(r[k]) for r in rows]) for k in range(len(output_names))]
        for name, result in zip(output_names, results, strict=True):
            gathered[name].append(result[:size] if result.ndim and len(result) >= size else result)
        if task is not None:
            task.report(min(1.0, (start + batch) / count), "evaluating")
    return {name: np.concatenate(parts) if parts[0].ndim else parts[0] for name, parts in gathered.items()}


def _pad_rows(array: np.ndarray, rows: int) -> np.ndarray:
    pad = np.zeros((rows - len(array), *array.shape[1:]), dtype=array.dtype)
    return np.concatenate([array, pad])


def calibration_feeds(model_bytes: bytes, dataset: Dataset, spec: InputSpec | None, count: int) -> list[dict]:
    """Complete feeds of one sample (or, for a stateful model, one frame with the state the stream
    carries there) for quantizers that calibrate activation ranges: real data only, never random."""
    from workbench.runtime import make_session

    session = make_session(model_bytes)
    names = check_feedable([i.name for i in session.get_inputs()], dataset, spec)
    arrays = sample_arrays(dataset, names)
    spec = spec or InputSpec()
    constants = {name: c.array() for name, c in spec.constants.items()}
    if not spec.streaming:
        total = min(count, len(next(iter(arrays.values()))))
        return [{n: a[i : i + 1] for n, a in arrays.items()} | constants for i in range(total)]
    from workbench.runtime import run_session

    recorded: list[dict] = []
    for index in range(len(next(iter(arrays.values())))):
        if len(recorded) >= count:
            break
        run_stream(
            lambda feeds: run_session(session, feeds),
            [o.name for o in session.get_outputs()],
            {n: a[index : index + 1] for n, a in arrays.items()},
            spec,
            record=lambda feeds: recorded.append({k: np.array(v) for k, v in feeds.items()}),
        )
    return recorded[:count]
