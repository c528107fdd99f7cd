"""Shared pieces for plugins that store weights in fewer bits (clustering, low-bit): which ONNX
weights they touch, and the packed size they report through the model's metadata."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

from workbench.errors import PluginError

if TYPE_CHECKING:
    import onnx

PACKED_KEY = "workbench.packed_weight_bytes"
_WEIGHT_INPUTS = {"Conv": 1, "ConvTranspose": 1, "Gemm": 1, "MatMul": 1}


def encode_weights(
    proto: onnx.ModelProto, encode: Callable[[str, np.ndarray], tuple[np.ndarray, int]], exclude: set[str]
) -> int:
    """Replace each float Conv/Gemm/MatMul weight by ``encode(name, w) -> (decoded, packed_bytes)``.

    Returns the packed size of all weights (encoded ones packed, everything else as stored) and records
    it in the model's metadata, where measurements pick it up.
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
    entry = next((p for p in proto.metadata_props if p.key == PACKED_KEY), None) or proto.metadata_props.add()
    entry.key, entry.value = PACKED_KEY, str(packed)
    return packed


def packed_weight_bytes(proto: onnx.ModelProto) -> int | None:
    value = next((p.value for p in proto.metadata_props if p.key == PACKED_KEY), None)
    return int(value) if value is not None else None
