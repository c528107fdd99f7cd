"""Where each layer runs on a device: on the target, falling back (to a CPU, or to slower kernels), or
unsupported, with the reason. One source for the layer table's Target column, the graph's colours
and the export refusals.

The prediction maps each ONNX layer to the LiteRT builtin its converter emits and checks it against the
operator table the device profile stores (Coral's published Edge TPU table, TensorFlow Lite Micro's
kernels); the Edge TPU compiler maps operators only up to the first one it cannot take.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from workbench.analysis import LayerInfo
    from workbench.devices import DeviceProfile

Where = Literal["runs on the target", "falls back", "unsupported"]
ON_TARGET: Where = "runs on the target"
FALLS_BACK: Where = "falls back"
UNSUPPORTED: Where = "unsupported"

# ONNX operator -> the LiteRT builtin litert-torch / the TFLite converter emits for it ("" : folded away).
TFLITE_BUILTIN = {
    "Conv": "CONV_2D",
    "ConvTranspose": "TRANSPOSE_CONV",
    "Gemm": "FULLY_CONNECTED",
    "MatMul": "FULLY_CONNECTED",
    "Relu": "RELU",
    "Clip": "RELU6",
    "LeakyRelu": "LEAKY_RELU",
    "PRelu": "PRELU",
    "Sigmoid": "LOGISTIC",
    "Tanh": "TANH",
    "HardSwish": "HARD_SWISH",
    "Softmax": "SOFTMAX",
    "MaxPool": "MAX_POOL_2D",
    "AveragePool": "AVERAGE_POOL_2D",
    "GlobalAveragePool": "MEAN",
    "ReduceMean": "MEAN",
    "ReduceMax": "REDUCE_MAX",
    "ReduceSum": "SUM",
    "Add": "ADD",
    "Sub": "SUB",
    "Mul": "MUL",
    "Div": "DIV",
    "Concat": "CONCATENATION",
    "Reshape": "RESHAPE",
    "Flatten": "RESHAPE",
    "Squeeze": "RESHAPE",
    "Unsqueeze": "RESHAPE",
    "Transpose": "TRANSPOSE",
    "Pad": "PAD",
    "Slice": "STRIDED_SLICE",
    "Split": "SPLIT",
    "Gather": "GATHER",
    "Resize": "RESIZE_BILINEAR",
    "Exp": "EXP",
    "Sqrt": "SQRT",
    "Erf": "GELU",
    "LSTM": "UNIDIRECTIONAL_SEQUENCE_LSTM",
    "BatchNormalization": "",  # folded into the convolution before it
    "Identity": "",
    "Dropout": "",
    "Constant": "",
    "Shape": "",  # static shapes are folded at conversion
    "QuantizeLinear": "QUANTIZE",
    "DequantizeLinear": "DEQUANTIZE",
    "QLinearConv": "CONV_2D",
    "QLinearMatMul": "FULLY_CONNECTED",
    "Cast": "CAST",
}


@dataclass(frozen=True)
class LayerPlacement:
    layer: str
    op_type: str
    where: Where
    reason: str


def place_layers(layers: Sequence[LayerInfo], device: DeviceProfile, fmt: str | None = None) -> list[LayerPlacement]:
    """The placement of every layer (in graph order) for ``device`` exported as ``fmt`` (its profile's
    format by default)."""
    fmt = fmt or device.export.format
    placements = []
    stopped_at: str | None = None  # the Edge TPU compiler maps nothing after its first unsupported op
    for layer in layers:
        where, reason = _place(layer.op_type, device, fmt, stopped_at)
        if where != ON_TARGET and device.runtime == "litert-edgetpu" and stopped_at is None:
            stopped_at = f"{layer.name} ({layer.op_type})"
        placements.append(LayerPlacement(layer.name, layer.op_type, where, reason))
    return placements


def _place(op: str, device: DeviceProfile, fmt: str, stopped_at: str | None) -> tuple[Where, str]:
    if fmt == "c-header":
        supported = device.supported_ops
        if supported is None or op in supported or op == "Constant":
            return ON_TARGET, "the header's kernels (CMSIS-NN) cover it"
        return UNSUPPORTED, f"no {op} kernel in the hand-made header's set; simplify_graph may fold it"
    if fmt not in ("tflite", "tflm"):
        return ON_TARGET, f"{device.runtime} has a kernel for every standard ONNX operator"
    builtin = TFLITE_BUILTIN.get(op)
    if builtin == "":
        return ON_TARGET, "folded away at conversion"
    if builtin is None:
        where = UNSUPPORTED if fmt == "tflm" else FALLS_BACK
        return where, f"no LiteRT builtin is known for {op}; the converter may lower it to several"
    table = device.target_ops
    if table is None:
        return ON_TARGET, f"LiteRT builtin {builtin}"
    if stopped_at is not None:
        return FALLS_BACK, f"the Edge TPU compiler maps nothing after {stopped_at}; runs on the CPU"
    if builtin in table:
        return ON_TARGET, f"{builtin} is in {device.target_ops_source or 'the target operator table'}"
    if fmt == "tflm":
        return UNSUPPORTED, f"{builtin} has no TensorFlow Lite Micro kernel in the profile's table"
    return FALLS_BACK, f"{builtin} is not in {device.target_ops_source or 'the operator table'}; runs on the CPU"


def summarize(placements: Sequence[LayerPlacement]) -> str:
    counts = {where: sum(p.where == where for p in placements) for where in (ON_TARGET, FALLS_BACK, UNSUPPORTED)}
    return ", ".join(f"{count} {where}" for where, count in counts.items() if count)
