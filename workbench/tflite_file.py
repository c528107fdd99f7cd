"""A ``.tflite`` file opened as it is: its operators, tensors with their quantization, bytes and inputs,
read from the flatbuffer with LiteRT's schema (no code in the file runs), and run in LiteRT.

``workbench info some.tflite`` prints it; ``workbench eval some.tflite --data D`` measures it in LiteRT's
interpreter with the same code that measures exported bundles.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from workbench.errors import WorkbenchError, describe_exception

TFLITE_IDENTIFIER = b"TFL3"  # flatbuffer file identifier at bytes 4..8


@dataclass(frozen=True)
class TfliteTensor:
    index: int
    name: str
    dtype: str
    shape: tuple[int, ...]
    constant_bytes: int  # bytes of its buffer (weights); 0 for activations
    scales: tuple[float, ...]
    zero_points: tuple[int, ...]
    quantized_dimension: int

    @property
    def elements(self) -> int:
        return int(np.prod(self.shape)) if self.shape else 1

    def describe_quantization(self) -> str:
        if not self.scales:
            return "-"
        if len(self.scales) == 1:
            return f"{self.dtype} s={self.scales[0]:.3g} zp={self.zero_points[0] if self.zero_points else 0}"
        return f"{self.dtype} per-channel ({len(self.scales)} scales, axis {self.quantized_dimension})"


@dataclass(frozen=True)
class TfliteOperator:
    index: int
    op: str
    inputs: tuple[TfliteTensor, ...]
    outputs: tuple[TfliteTensor, ...]

    @property
    def weights(self) -> tuple[TfliteTensor, ...]:
        return tuple(t for t in self.inputs if t.constant_bytes)

    @property
    def params(self) -> int:
        return sum(t.elements for t in self.weights)

    @property
    def weight_bytes(self) -> int:
        return sum(t.constant_bytes for t in self.weights)


@dataclass(frozen=True)
class TfliteFile:
    path: Path
    size: int
    operators: tuple[TfliteOperator, ...]
    inputs: tuple[TfliteTensor, ...]
    outputs: tuple[TfliteTensor, ...]
    subgraphs: int
    description: str

    @property
    def params(self) -> int:
        return sum(op.params for op in self.operators)

    @property
    def weight_bytes(self) -> int:
        seen: dict[int, int] = {}
        for op in self.operators:
            for tensor in op.weights:
                seen[tensor.index] = tensor.constant_bytes  # a weight shared by two operators counts once
        return sum(seen.values())

    def operator_counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for op in self.operators:
            counts[op.op] = counts.get(op.op, 0) + 1
        return dict(sorted(counts.items(), key=lambda item: -item[1]))


def is_tflite(path: str | Path) -> bool:
    path = Path(path)
    if path.suffix.lower() == ".tflite":
        return True
    if not path.is_file():  # never open a FIFO or a device to sniff it: that can block forever
        return False
    try:
        with open(path, "rb") as handle:
            return handle.read(8)[4:8] == TFLITE_IDENTIFIER
    except OSError:
        return False


def read_tflite(path: str | Path) -> TfliteFile:
    """Parse the file's main subgraph; a file that is not a LiteRT model is refused in one line."""
    from workbench.untrusted import read_regular_bytes

    path = Path(path)
    content = read_regular_bytes(path, WorkbenchError)
    if content[4:8] != TFLITE_IDENTIFIER:
        raise WorkbenchError("not a LiteRT/TensorFlow Lite model (no TFL3 identifier)", path)
    try:
        from ai_edge_litert import schema_py_generated as schema
    except ImportError:
        raise WorkbenchError('reading .tflite needs ai-edge-litert: pip install -e ".[edge]"', path) from None
    try:
        model = schema.ModelT.InitFromPackedBuf(content, 0)
        graph = model.subgraphs[0]
        types = {value: key.lower() for key, value in vars(schema.TensorType).items() if not key.startswith("_")}
        names = {value: key for key, value in vars(schema.BuiltinOperator).items() if not key.startswith("_")}
        tensors = [_tensor(i, t, model, types) for i, t in enumerate(graph.tensors or [])]
        operators = []
        for index, op in enumerate(graph.operators or []):
            code = model.operatorCodes[op.opcodeIndex]
            builtin = max(code.builtinCode, code.deprecatedBuiltinCode)
            name = names.get(builtin, str(builtin))
            if builtin == schema.BuiltinOperator.CUSTOM:
                name = f"CUSTOM:{(code.customCode or b'').decode(errors='replace')}"
            ins = tuple(tensors[i] for i in (op.inputs if op.inputs is not None else []) if i >= 0)
            outs = tuple(tensors[i] for i in (op.outputs if op.outputs is not None else []) if i >= 0)
            operators.append(TfliteOperator(index, name, ins, outs))
        description = (model.description or b"").decode(errors="replace")
        return TfliteFile(
            path=path,
            size=len(content),
            operators=tuple(operators),
            inputs=tuple(tensors[i] for i in graph.inputs),
            outputs=tuple(tensors[i] for i in graph.outputs),
            subgraphs=len(model.subgraphs),
            description=description,
        )
    except WorkbenchError:
        raise
    except Exception as exc:  # a truncated or hostile flatbuffer: one line, never a traceback
        raise WorkbenchError(f"not a readable LiteRT model ({describe_exception(exc)[:160]})", path) from None


def _tensor(index: int, tensor: Any, model: Any, types: dict[int, str]) -> TfliteTensor:
    buffer = model.buffers[tensor.buffer] if tensor.buffer < len(model.buffers or []) else None
    data = getattr(buffer, "data", None)
    size = len(data) if data is not None else int(getattr(buffer, "size", 0) or 0)
    quant = tensor.quantization
    scales = tuple(float(s) for s in (quant.scale if quant is not None and quant.scale is not None else []))
    zeros = tuple(int(z) for z in (quant.zeroPoint if quant is not None and quant.zeroPoint is not None else []))
    return TfliteTensor(
        index=index,
        name=(tensor.name or b"").decode(errors="replace"),
        dtype=types.get(tensor.type, str(tensor.type)),
        shape=tuple(int(d) for d in (tensor.shape if tensor.shape is not None else [])),
        constant_bytes=size,
        scales=scales,
        zero_points=zeros,
        quantized_dimension=int(quant.quantizedDimension) if quant is not None else 0,
    )


def open_tflite(path: str | Path) -> tuple[Any, Any]:
    """(session-like LiteRT interpreter, its BundleRuntime) for measuring the file as it is."""
    from workbench.exporters import BundleRuntime
    from workbench.exporters.tflite import LiteRtSession, litert_settings

    path = Path(path)
    runtime = BundleRuntime(path.name, litert_settings())
    return LiteRtSession(path, runtime), runtime


@dataclass(frozen=True)
class MemoryStep:
    index: int
    op: str
    live_bytes: int  # activation bytes alive while this operator runs (its inputs and outputs included)


def memory_timeline(found: TfliteFile) -> list[MemoryStep]:
    """Live activation bytes per operator when they run in the file's order and a tensor is freed after
    its last reader: the shape of a microcontroller's tensor arena, operator by operator."""
    last_use: dict[int, int] = {}
    for op in found.operators:
        for tensor in op.inputs:
            last_use[tensor.index] = op.index
    keep = {t.index for t in found.outputs}
    element = {"int8": 1, "uint8": 1, "int16": 2, "float16": 2, "int32": 4, "float32": 4, "int64": 8, "bool": 1}

    def size(tensor: TfliteTensor) -> int:
        return tensor.elements * element.get(tensor.dtype, 4)

    live = {t.index: size(t) for t in found.inputs}
    steps = []
    for op in found.operators:
        for tensor in op.outputs:
            if not tensor.constant_bytes:
                live[tensor.index] = size(tensor)
        steps.append(MemoryStep(op.index, op.op, sum(live.values())))
        for index in [i for i in live if last_use.get(i, -1) <= op.index and i not in keep]:
            del live[index]
    return steps
