"""A ``.tflite`` file opened as it is: its operators, tensors with their quantization, bytes and inputs,
read from the flatbuffer with LiteRT's schema (no code in the file runs), and run in LiteRT.

``workbench info some.tflite`` prints it; ``workbench eval some.tflite --data D`` measures it in LiteRT's
interpreter with the same code that measures exported bundles.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from workbench.errors import WorkbenchError, describe_exception

TFLITE_IDENTIFIER = b"TFL3"  # flatbuffer file identifier at bytes 4..8
# Operators whose constant inputs are shapes, axes, paddings or permutations rather than parameters.
SHAPE_ARGUMENT_OPS = frozenset(
    {
        "RESHAPE", "TRANSPOSE", "PAD", "PADV2", "MIRROR_PAD", "SLICE", "STRIDED_SLICE", "MEAN", "SUM",
        "REDUCE_MAX", "REDUCE_MIN", "REDUCE_PROD", "EXPAND_DIMS", "SQUEEZE", "RESIZE_BILINEAR",
        "RESIZE_NEAREST_NEIGHBOR", "SPLIT", "SPLIT_V", "TILE", "BROADCAST_TO", "GATHER", "CONCATENATION",
    }
)  # fmt: skip
_NUMPY = {
    "float32": np.float32,
    "float16": np.float16,
    "int8": np.int8,
    "uint8": np.uint8,
    "int16": np.int16,
    "int32": np.int32,
    "int64": np.int64,
}


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
    raw: np.ndarray | None = field(default=None, compare=False, repr=False)  # a constant's stored bytes

    @property
    def elements(self) -> int:
        return int(np.prod(self.shape)) if self.shape else 1

    def describe_quantization(self) -> str:
        if not self.scales:
            return "-"
        if len(self.scales) == 1:
            return f"{self.dtype} s={self.scales[0]:.3g} zp={self.zero_points[0] if self.zero_points else 0}"
        return f"{self.dtype} per-channel ({len(self.scales)} scales, axis {self.quantized_dimension})"

    def stored(self) -> np.ndarray | None:
        """A constant's values as stored (int8 codes for a quantized weight); None for activations."""
        if self.raw is None or not self.constant_bytes or self.dtype not in _NUMPY:
            return None
        values = np.frombuffer(np.asarray(self.raw, np.uint8).tobytes(), dtype=_NUMPY[self.dtype])
        return values.reshape(self.shape) if values.size == self.elements else values

    def values(self) -> np.ndarray | None:
        """A constant's values as the kernels compute with them: (q - zero point) * scale, per channel."""
        stored = self.stored()
        if stored is None or not self.scales or stored.dtype.kind == "f":
            return stored
        scales, zeros = np.asarray(self.scales), np.asarray(self.zero_points or [0] * len(self.scales))
        if len(scales) > 1 and stored.ndim > self.quantized_dimension:
            view = [1] * stored.ndim
            view[self.quantized_dimension] = -1
            scales, zeros = scales.reshape(view), zeros.reshape(view)
        return ((stored.astype(np.float32) - zeros) * scales).astype(np.float32)


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
    def learned(self) -> tuple[TfliteTensor, ...]:
        """The constants that are parameters: not the shapes, axes and permutations of shape operators."""
        return () if self.op in SHAPE_ARGUMENT_OPS else self.weights

    @property
    def params(self) -> int:
        return sum(t.elements for t in self.learned)

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


def file_precision(found: TfliteFile) -> str:
    """The workbench's name for how the file computes: ``int8`` when every operator but the I/O
    (de)quantizers works on integer tensors (what Coral and microcontrollers take), ``int8-weights`` for
    int8 weights with float activations, ``fp16`` for float16 weights, else ``fp32``."""
    integer = {"int8", "uint8", "int16", "int32", "int64", "bool"}
    compute = [op for op in found.operators if op.op not in ("QUANTIZE", "DEQUANTIZE")]
    activations = {t.dtype for op in compute for t in (*op.inputs, *op.outputs) if not t.constant_bytes}
    weights = {t.dtype for op in compute for t in op.weights}
    if compute and activations <= integer and activations & {"int8", "uint8", "int16"}:
        return "int8"
    if weights & {"int8", "uint8", "int4"}:
        return "int8-weights"
    if "float16" in weights:
        return "fp16"
    return "fp32"


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
        raw=data if size else None,
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


# --- as an analysis: the window's layer table reads a .tflite like any model -----------------------
def _macs(op: TfliteOperator) -> int | None:
    """Multiply-accumulates of the compute operators (from the weight and output shapes); 0 for the rest."""
    out = op.outputs[0].elements if op.outputs else 0
    weight = next((t for t in op.inputs if t.constant_bytes and len(t.shape) >= 2), None)
    if op.op in ("CONV_2D", "FULLY_CONNECTED") and weight is not None:
        return out * int(np.prod(weight.shape[1:]))  # [cout, kh, kw, cin] / [out, in]
    if op.op == "DEPTHWISE_CONV_2D" and weight is not None:
        return out * weight.shape[1] * weight.shape[2]  # [1, kh, kw, channels]
    if op.op == "TRANSPOSE_CONV" and weight is not None:
        return (op.inputs[2].elements if len(op.inputs) > 2 else out) * int(np.prod(weight.shape[:3]))
    return None if op.learned and op.op not in ("ADD", "MUL", "SUB") else 0


def tflite_analysis(found: TfliteFile) -> Any:
    """The file's operators as the workbench's layer rows: shapes, weights, int8 codes' sparsity, MACs."""
    from workbench.analysis import Analysis, LayerInfo
    from workbench.model import InputShapes

    rows = []
    seen: set[str] = set()
    for op in found.operators:
        weights = list(op.learned)
        stored = [t.stored() for t in weights]
        nonzero = sum(
            int(np.count_nonzero(v)) if v is not None else t.elements for t, v in zip(weights, stored, strict=True)
        )
        out = op.outputs[0] if op.outputs else None
        rows.append(
            LayerInfo(
                name=_row_name(out.name if out is not None else "", op, seen),
                op_type=op.op,
                input_shapes=[t.shape for t in op.inputs if not t.constant_bytes],
                output_shapes=[t.shape for t in op.outputs],
                params=sum(t.elements for t in weights),
                nonzero_params=nonzero,
                dtype=weights[0].dtype if weights else (out.dtype if out is not None else None),
                macs=_macs(op),
                weight_bytes=sum(t.constant_bytes for t in op.weights),
                activation_bytes=sum(t.elements * _NUMPY.get(t.dtype, np.float32)().itemsize for t in op.outputs),
                weight_names=tuple(str(t.index) for t in weights),
            )
        )
    steps = memory_timeline(found)
    shapes = InputShapes({t.name: t.shape for t in found.inputs}, "model")
    notes = [f"LiteRT flatbuffer, {found.subgraphs} subgraph(s); rows are the first subgraph's operators"]
    return Analysis(
        model_name=found.path.stem,
        source_format="tflite",
        input_shapes=shapes,
        layers=rows,
        peak_activation_bytes=max((s.live_bytes for s in steps), default=0),
        peak_is_lower_bound=False,
        notes=notes,
    )


def _row_name(tensor: str, op: TfliteOperator, seen: set[str]) -> str:
    """A short unique name from the output tensor's: converters write the whole module path, fused
    names joined by ';' (litert-torch: ``torch.nn.modules.container.Sequential/.../torch.nn.modules.conv.Conv2d_0``)."""
    short = tensor.split(";")[0].rsplit("/", 1)[-1].removeprefix("torch.nn.modules.") or f"{op.op.lower()}_{op.index}"
    name = short if short not in seen else f"{short} #{op.index}"
    seen.add(name)
    return name
