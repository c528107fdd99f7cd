"""Shared pieces for plugins that simulate weights in fewer bits (clustering, low-bit): which ONNX
weights they touch, and the size a packed format would take. The file still holds float32 weights, so
that size is an analysis, said in a note on the step; the size the workbench shows is the file's."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

from workbench.errors import PluginError

if TYPE_CHECKING:
    import onnx

_WEIGHT_INPUTS = {"Conv": 1, "ConvTranspose": 1, "Gemm": 1, "MatMul": 1}


def encode_weights(
    proto: onnx.ModelProto, encode: Callable[[str, np.ndarray], tuple[np.ndarray, int]], exclude: set[str]
) -> int:
    """Replace each float Conv/Gemm/MatMul weight by ``encode(name, w) -> (decoded, packed_bytes)``.

    Returns the size all weights would take packed (encoded ones packed, everything else as stored).
    """
    from onnx import numpy_helper

    initializers = {init.name: init for init in proto.graph.initializer}
    targets = []
    for node in proto.graph.node:
        index = _WEIGHT_INPUTS.get(node.op_type)
        if index is None or len(node.input) <= index or node.input[index] not in initializers:
            continue
        if node.name not in exclude and node.input[index] not in exclude:
            targets.append(node.input[index])
    targets = [t for t in dict.fromkeys(targets) if numpy_helper.to_array(initializers[t]).dtype == np.float32]
    if not targets:
        raise PluginError("no float Conv/Gemm/MatMul weights (initializers) to encode")
    packed = 0
    for init in proto.graph.initializer:
        if init.name in targets:
            decoded, size = encode(init.name, numpy_helper.to_array(init))
            init.CopyFrom(numpy_helper.from_array(decoded.astype(np.float32), init.name))
            packed += size
        else:
            packed += numpy_helper.to_array(init).nbytes
    return packed


def simulated_note(packed: int, proto: onnx.ModelProto) -> str:
    from onnx import numpy_helper

    stored = sum(numpy_helper.to_array(init).nbytes for init in proto.graph.initializer)
    return (
        f"simulated: the weights are stored as float32 ({stored:,} B in the file, no smaller); packed, they "
        f"would take about {packed:,} B (an analysis, not a size the workbench ships)"
    )
