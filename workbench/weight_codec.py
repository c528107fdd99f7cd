"""Weights stored in fewer bits for real: packed integer codes behind DequantizeLinear, or per-layer
codebooks with packed indices, in graphs onnxruntime runs. Shared by the quantization, low-bit, weight
sharing and mixed-precision plugins.

- ``int8`` / ``int4`` / ``int2`` codes: ONNX INT8 (opset 13), INT4 (opset 21) or INT2 (opset 25) tensors,
  packed two or four to a byte in the file, per output channel or in blocks along the input axis
  (opset 21's blocked DequantizeLinear). Symmetric, so an exact zero weight is the code 0: sparsity
  survives.
- codebooks: a float32 table of k entries per layer and UINT4 (k ≤ 16) or UINT8 indices, read by
  Cast + Gather. A pruned layer's zeros get their own exact 0.0 entry, index 0.

The weights stay constant inputs, so onnxruntime folds them to float at session start and computes in
float (with ``session.disable_quant_qdq=1`` for DequantizeLinear, which the workbench's sessions set).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import numpy as np

from workbench.errors import PluginError

if TYPE_CHECKING:
    import onnx

CodeType = Literal["int8", "int4", "int2"]
# (largest code magnitude, ONNX opset that stores the type)
CODE_TYPES: dict[str, tuple[int, int]] = {"int8": (127, 13), "int4": (7, 21), "int2": (1, 25)}
BLOCKED_OPSET = 21  # DequantizeLinear's block_size attribute
CODEBOOK_UINT4_OPSET = 21  # Cast from UINT4
_CLIP_RATIOS = (1.0, 0.95, 0.9, 0.85, 0.8, 0.7, 0.6)  # scale search: clipping outliers can lower the error

# Weight input index and output-channel axis per op (Gemm's axis depends on transB).
_SLOTS: dict[str, tuple[int, int | None]] = {
    "Conv": (1, 0),
    "ConvTranspose": (1, 1),
    "Gemm": (1, None),
    "MatMul": (1, 1),
}


@dataclass(frozen=True)
class WeightSlot:
    """A float Conv/Gemm/MatMul weight stored in the file (an initializer or a Constant node's value, in the
    main graph or inside an If/Loop/Scan subgraph), and the layer that reads it."""

    name: str  # the tensor the layer reads
    node: str  # the first node that reads it
    op_type: str
    axis: int  # output-channel axis of the weight
    shape: tuple[int, ...]


def weight_tensors(proto: onnx.ModelProto) -> dict[str, onnx.TensorProto]:
    """Every stored tensor by the name layers read it under: the initializers of every graph, subgraphs
    included, and Constant nodes' values (exporters that inline If branches keep the weights there).
    Editing one in place edits the model."""
    from workbench.analysis import walk_graphs

    found: dict[str, onnx.TensorProto] = {}
    for graph in walk_graphs(proto.graph):
        for init in graph.initializer:
            found.setdefault(init.name, init)
        for node in graph.node:
            if node.op_type == "Constant" and node.domain in ("", "ai.onnx"):
                value = next((a.t for a in node.attribute if a.name == "value" and a.HasField("t")), None)
                if value is not None:
                    found.setdefault(node.output[0], value)
    return found


def _all_nodes(proto: onnx.ModelProto):
    from workbench.analysis import walk_graphs

    return (node for graph in walk_graphs(proto.graph) for node in graph.node)


def weight_slots(proto: onnx.ModelProto, exclude: set[str] | frozenset[str] = frozenset()) -> list[WeightSlot]:
    """Every float32 weight of 2 or more dimensions a Conv/ConvTranspose/Gemm/MatMul reads, in the main
    graph and in If/Loop/Scan subgraphs; ``exclude`` names nodes or weights to leave alone."""
    return _slots(proto, _all_nodes(proto), exclude)


def subgraph_weight_slots(proto: onnx.ModelProto) -> list[WeightSlot]:
    """The weights :func:`weight_slots` finds that layers inside If/Loop/Scan subgraphs read."""
    from workbench.analysis import walk_graphs

    subgraphs = list(walk_graphs(proto.graph))[1:]
    return _slots(proto, (node for graph in subgraphs for node in graph.node), frozenset())


def refuse_subgraph_weights(proto: onnx.ModelProto, what: str, instead: str = "") -> None:
    """Refuse, naming the reason, when ``what`` (a plugin that edits the main graph only) would leave
    weights inside If/Loop/Scan subgraphs as they are while the variant claims a compression."""
    inside = subgraph_weight_slots(proto)
    if inside:
        names = ", ".join(slot.name for slot in inside[:3]) + (", …" if len(inside) > 3 else "")
        raise PluginError(
            f"weights inside If/Loop/Scan subgraphs are not {what} ({len(inside)}: {names})"
            + (f"; {instead}" if instead else "")
        )


def _slots(proto: onnx.ModelProto, nodes, exclude: set[str] | frozenset[str]) -> list[WeightSlot]:
    from onnx import TensorProto

    initializers = weight_tensors(proto)
    slots: dict[str, WeightSlot] = {}
    for node in nodes:
        slot = _SLOTS.get(node.op_type)
        if slot is None or len(node.input) <= slot[0]:
            continue
        name = node.input[slot[0]]
        init = initializers.get(name)
        if init is None or name in slots or init.data_type != TensorProto.FLOAT or len(init.dims) < 2:
            continue
        if node.name in exclude or name in exclude:
            continue
        axis = slot[1]
        if node.op_type == "Gemm":
            axis = 0 if next((a.i for a in node.attribute if a.name == "transB"), 0) else 1
        slots[name] = WeightSlot(name, node.name, node.op_type, int(axis), tuple(init.dims))
    return list(slots.values())


def bias_slots(proto: onnx.ModelProto, exclude: set[str] | frozenset[str] = frozenset()) -> list[WeightSlot]:
    """The float32 bias vectors (input 2) of Conv, ConvTranspose and Gemm nodes, subgraphs included."""
    from onnx import TensorProto

    initializers = weight_tensors(proto)
    slots: dict[str, WeightSlot] = {}
    for node in _all_nodes(proto):
        if node.op_type not in ("Conv", "ConvTranspose", "Gemm") or len(node.input) < 3:
            continue
        init = initializers.get(node.input[2])
        name = node.input[2]
        if init is None or init.data_type != TensorProto.FLOAT or len(init.dims) != 1 or name in slots:
            continue
        if node.name not in exclude and name not in exclude:
            slots[name] = WeightSlot(name, node.name, node.op_type, 0, tuple(init.dims))
    return list(slots.values())


def weight_array(proto: onnx.ModelProto, name: str) -> np.ndarray:
    from onnx import numpy_helper

    found = next((i for i in proto.graph.initializer if i.name == name), None)
    return numpy_helper.to_array(found if found is not None else weight_tensors(proto)[name])


def _as_rows(weight: np.ndarray, axis: int) -> np.ndarray:
    """The weight as [channels, inputs]: one row per output channel."""
    return np.moveaxis(weight, axis, 0).reshape(weight.shape[axis], -1)


def _from_rows(rows: np.ndarray, shape: tuple[int, ...], axis: int) -> np.ndarray:
    moved = (shape[axis], *(d for i, d in enumerate(shape) if i != axis))
    return np.moveaxis(rows.reshape(moved), 0, axis)


def quantize_groups(groups: np.ndarray, code: CodeType | Literal["binary"]) -> tuple[np.ndarray, np.ndarray]:
    """Symmetric codes for each row of ``groups`` [g, n] and one scale per row, with the clipping ratio
    that gives the least squared error. Zero weights get the code 0."""
    values = groups.astype(np.float64)
    if code == "binary":  # XNOR-Net's optimal scale: the mean magnitude; pruned zeros stay zero
        nonzero = values != 0
        scale = np.abs(values).sum(axis=1) / np.maximum(nonzero.sum(axis=1), 1)
        scale = np.where(scale == 0, 1.0, scale)
        return np.sign(values).astype(np.int8), scale.astype(np.float32)
    levels = CODE_TYPES[code][0]
    peak = np.abs(values).max(axis=1)
    peak = np.where(peak == 0, 1.0, peak)
    best_scale, best_error = peak / levels, np.full(len(values), np.inf)
    for ratio in _CLIP_RATIOS if levels < 127 else (1.0,):
        scale = peak * ratio / levels
        codes = np.clip(np.round(values / scale[:, None]), -levels, levels)
        error = ((codes * scale[:, None] - values) ** 2).sum(axis=1)
        better = error < best_error
        best_scale, best_error = np.where(better, scale, best_scale), np.where(better, error, best_error)
    codes = np.clip(np.round(values / best_scale[:, None]), -levels, levels).astype(np.int8)
    return codes, best_scale.astype(np.float32)


def quantize_weight(
    weight: np.ndarray, axis: int, code: CodeType | Literal["binary"], block_size: int | None
) -> tuple[np.ndarray, np.ndarray]:
    """Codes shaped like the weight's rows [channels, inputs] and scales [channels, blocks]."""
    rows = _as_rows(weight, axis)
    channels, inputs = rows.shape
    if block_size is None or block_size >= inputs:
        codes, scale = quantize_groups(rows, code)
        return codes, scale[:, None]
    blocks = -(-inputs // block_size)
    padded = np.zeros((channels, blocks * block_size), dtype=rows.dtype)
    padded[:, :inputs] = rows
    codes, scale = quantize_groups(padded.reshape(channels * blocks, block_size), code)
    return codes.reshape(channels, -1)[:, :inputs], scale.reshape(channels, blocks)


def block_for(slot: WeightSlot, block_size: int | None) -> int | None:
    """The block size ``slot`` can be stored with: a weight whose output channels are not its first axis
    (ConvTranspose) is only stored per channel."""
    if block_size is None or (len(slot.shape) > 2 and slot.axis != 0):
        return None
    return block_size


def quantize_slot(
    proto: onnx.ModelProto, slot: WeightSlot, code: CodeType, block_size: int | None = None
) -> np.ndarray:
    """Quantize and store one weight; returns the float weight the runtime will compute with."""
    weight = weight_array(proto, slot.name)
    codes, scales = quantize_weight(weight, slot.axis, code, block_for(slot, block_size))
    store_codes(proto, slot, codes, scales, code)
    return dequantized(codes, scales, slot.shape, slot.axis)


def dequantized(codes: np.ndarray, scales: np.ndarray, shape: tuple[int, ...], axis: int) -> np.ndarray:
    """The float weight a runtime computes from ``codes`` and ``scales`` (see :func:`quantize_weight`)."""
    block = -(-codes.shape[1] // scales.shape[1])
    rows = codes.astype(np.float32) * np.repeat(scales, block, axis=1)[:, : codes.shape[1]]
    return _from_rows(rows, shape, axis)


def store_codes(
    proto: onnx.ModelProto, slot: WeightSlot, codes: np.ndarray, scales: np.ndarray, code: CodeType
) -> None:
    """Replace ``slot``'s float weight by packed codes behind DequantizeLinear (plus a Reshape when a
    convolution's weight is blocked along its flattened inputs)."""
    import ml_dtypes
    from onnx import helper, numpy_helper

    dtype = {"int8": np.int8, "int4": ml_dtypes.int4, "int2": ml_dtypes.int2}[code]
    name, nodes, inits = slot.name, [], []
    per_channel = scales.shape[1] == 1
    if per_channel:
        stored = _from_rows(codes, slot.shape, slot.axis)
        inits.append(numpy_helper.from_array(scales[:, 0].astype(np.float32), f"{name}_scale"))
        nodes.append(helper.make_node("DequantizeLinear", [f"{name}_q", f"{name}_scale"], [name], axis=slot.axis))
    else:
        block = -(-codes.shape[1] // scales.shape[1])
        two_d = len(slot.shape) == 2
        # A 2-D weight is blocked along its own input axis; others are stored flattened [channels, inputs].
        stored = _from_rows(codes, slot.shape, slot.axis) if two_d else codes
        scale = scales.T if two_d and slot.axis == 1 else scales
        block_axis = 1 - slot.axis if two_d else 1
        out = name if two_d else f"{name}_rows"
        inits.append(numpy_helper.from_array(np.ascontiguousarray(scale, dtype=np.float32), f"{name}_scale"))
        nodes.append(
            helper.make_node(
                "DequantizeLinear", [f"{name}_q", f"{name}_scale"], [out], axis=block_axis, block_size=block
            )
        )
        if not two_d:
            inits.append(numpy_helper.from_array(np.asarray(slot.shape, dtype=np.int64), f"{name}_shape"))
            nodes.append(helper.make_node("Reshape", [out, f"{name}_shape"], [name]))
    inits.insert(0, numpy_helper.from_array(np.ascontiguousarray(stored).astype(dtype), f"{name}_q"))
    replace_weight(proto, name, inits, nodes)


def store_codebook(
    proto: onnx.ModelProto, slot: WeightSlot, indices: np.ndarray, codebook: np.ndarray, clusters: int
) -> None:
    """Replace ``slot``'s float weight by packed indices into a per-layer float codebook (Cast + Gather);
    the index type follows the requested ``clusters`` (the opset was raised for it), not this layer's k."""
    import ml_dtypes
    from onnx import TensorProto, helper, numpy_helper

    dtype = ml_dtypes.uint4 if clusters <= 16 else np.uint8
    name = slot.name
    inits = [
        numpy_helper.from_array(indices.reshape(slot.shape).astype(dtype), f"{name}_index"),
        numpy_helper.from_array(codebook.astype(np.float32), f"{name}_codebook"),
    ]
    nodes = [
        helper.make_node("Cast", [f"{name}_index"], [f"{name}_index32"], to=TensorProto.INT32),
        helper.make_node("Gather", [f"{name}_codebook", f"{name}_index32"], [name], axis=0),
    ]
    replace_weight(proto, name, inits, nodes)


def codebook_opset(clusters: int) -> int:
    return CODEBOOK_UINT4_OPSET if clusters <= 16 else 13


def replace_weight(proto: onnx.ModelProto, name: str, inits: list, nodes: list) -> None:
    """Replace the stored weight ``name`` (an initializer or a Constant node, in whichever graph holds it)
    by ``inits`` and the ``nodes`` computing ``name`` from them, placed first in that graph."""
    from workbench.analysis import walk_graphs

    holder = next(
        (
            graph
            for graph in walk_graphs(proto.graph)
            if any(i.name == name for i in graph.initializer)
            or any(n.op_type == "Constant" and name in n.output for n in graph.node)
        ),
        proto.graph,
    )
    # Removed and inserted in place: rebuilding the lists would copy every weight once per replaced one.
    for index in reversed([i for i, init in enumerate(holder.initializer) if init.name == name]):
        del holder.initializer[index]
    for index in reversed([i for i, n in enumerate(holder.node) if n.op_type == "Constant" and name in n.output]):
        del holder.node[index]
    holder.initializer.extend(inits)
    for node in reversed(nodes):  # first in the graph: it stays topologically sorted
        holder.node.insert(0, node)


def stored_weight_bytes(proto: onnx.ModelProto) -> int:
    """Bytes of every initializer's payload as stored (packed types count packed), subgraphs included."""
    from workbench.analysis import walk_graphs

    return sum(len(i.raw_data) or i.ByteSize() for graph in walk_graphs(proto.graph) for i in graph.initializer)


def narrowest_code_bits(proto: onnx.ModelProto) -> int | None:
    """Bits of the narrowest packed integer initializer (INT4/UINT4: 4, INT2/UINT2: 2), if any."""
    from onnx import TensorProto

    from workbench.analysis import walk_graphs

    bits = {TensorProto.INT4: 4, TensorProto.UINT4: 4, TensorProto.INT2: 2, TensorProto.UINT2: 2}
    found = [bits[i.data_type] for graph in walk_graphs(proto.graph) for i in graph.initializer if i.data_type in bits]
    return min(found) if found else None


def require_slots(slots: list[WeightSlot], what: str) -> list[WeightSlot]:
    if not slots:
        raise PluginError(f"no float Conv/Gemm/MatMul weights (initializers) to {what}")
    return slots


_DECODERS = frozenset({"DequantizeLinear", "Cast", "Gather", "Reshape"})


def decode_weights(proto: onnx.ModelProto, weights: dict[str, np.ndarray]) -> tuple[dict[str, np.ndarray], set[str]]:
    """The float weights stored codes decode to (DequantizeLinear, codebook Cast + Gather, Reshape fed only
    by constants), in any graph, keyed by the tensor a layer reads; and the decoding nodes' outputs."""
    from onnx import helper

    from workbench.analysis import walk_graphs

    known = dict(weights)
    decoded: dict[str, np.ndarray] = {}
    decoders: set[str] = set()
    for node in (node for graph in walk_graphs(proto.graph) for node in graph.node):
        if node.op_type not in _DECODERS or node.domain not in ("", "ai.onnx"):
            continue
        inputs = [known.get(name) if name else None for name in node.input]
        if inputs[0] is None or any(v is None for name, v in zip(node.input, inputs, strict=True) if name):
            continue
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        try:
            value = _decode(node.op_type, inputs, attrs)
        except (ValueError, IndexError, TypeError):
            continue  # not a weight encoding this reader knows: left to the runtime
        if value is None:
            continue
        known[node.output[0]] = decoded[node.output[0]] = value
        decoders.add(node.output[0])
    return decoded, decoders


def _decode(op: str, inputs: list, attrs: dict) -> np.ndarray | None:
    if op == "Cast":
        return (
            np.asarray(inputs[0]).astype(np.int64)
            if inputs[0].dtype.kind in "iu" or "int" in str(inputs[0].dtype)
            else None
        )
    if op == "Gather":
        return np.take(inputs[0], inputs[1].astype(np.int64), axis=int(attrs.get("axis", 0)))
    if op == "Reshape":
        return np.asarray(inputs[0]).reshape([int(d) for d in inputs[1]])
    codes = np.asarray(inputs[0]).astype(np.float32)
    scale = np.asarray(inputs[1], dtype=np.float32)
    zero = np.asarray(inputs[2]).astype(np.float32) if len(inputs) > 2 and inputs[2] is not None else 0.0
    if scale.ndim == 0:
        return (codes - zero) * scale
    axis = int(attrs.get("axis", 1)) % codes.ndim
    block = int(attrs.get("block_size", 0))
    if block:
        scale = np.repeat(scale, block, axis=axis).take(range(codes.shape[axis]), axis=axis)
        if np.ndim(zero):
            zero = np.repeat(zero, block, axis=axis).take(range(codes.shape[axis]), axis=axis)
        return (codes - zero) * scale
    shape = [-1 if i == axis else 1 for i in range(codes.ndim)]
    return (codes - np.reshape(zero, shape) if np.ndim(zero) else codes - zero) * scale.reshape(shape)


def half_precision_constants(proto: onnx.ModelProto) -> int:
    """Store DequantizeLinear scales and Conv/Gemm biases as float16, cast back to float at session start.

    Their rounding (a relative 2^-11) is far below int8's; onnxruntime folds the Cast with the weights, so
    compute is unchanged. Returns how many tensors were halved."""
    from onnx import TensorProto, helper, numpy_helper

    from workbench.analysis import walk_graphs

    nodes = list(_all_nodes(proto))
    wanted = {n.input[1] for n in nodes if n.op_type == "DequantizeLinear" and len(n.input) > 1}
    wanted |= {n.input[2] for n in nodes if n.op_type in ("Conv", "ConvTranspose", "Gemm") and len(n.input) > 2}
    halved = 0
    for init in [i for graph in walk_graphs(proto.graph) for i in graph.initializer]:
        if init.name not in wanted or init.data_type != TensorProto.FLOAT:
            continue
        value = numpy_helper.to_array(init)
        small = numpy_helper.from_array(value.astype(np.float16), f"{init.name}_fp16")
        cast = helper.make_node("Cast", [small.name], [init.name], to=TensorProto.FLOAT)
        replace_weight(proto, init.name, [small], [cast])
        halved += 1
    return halved
