"""Static values of the small tensors that compute shapes (Shape → Gather/Slice → Concat → Reshape target).

ONNX's data propagation folds such chains only at some opsets (an opset-12 Slice of a Shape is left open),
so a Reshape they feed gets no output shape and everything after it stays unknown; learning those shapes
by running the model costs a child process and an onnxruntime session. Folding the chains with numpy at
the analysis' input shapes settles them statically: :func:`fold_shape_values` replaces each node whose
value follows from constants and known shapes by a Constant node, and shape inference runs again.
"""

from __future__ import annotations

from collections import ChainMap
from collections.abc import Callable, Mapping, MutableMapping
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import onnx

MAX_ELEMENTS = 256  # larger tensors are data, not shapes (and the analysis' skeleton drops their bytes)

Shape = tuple[int, ...] | None


class ShapeFolder:
    """Folds a graph's shape computations (:meth:`fold`) and settles Ifs with known conditions
    (:meth:`settle`), round after round of shape inference; constant values are read once, not per round.

    ``inputs``: graph inputs that hold a known value (declared constants such as a sample rate)."""

    def __init__(self, opset: int, inputs: Mapping[str, np.ndarray] | None = None) -> None:
        self.opset = opset
        self.inputs = dict(inputs or {})
        self._constants: dict[tuple, np.ndarray | None] = {}  # by position: (*subgraph path, node index)

    def fold(self, graph: onnx.GraphProto, shapes: Mapping[str, Shape]) -> int:
        """Replace, in place, every node of ``graph`` and its subgraphs whose outputs are computable from
        constants, the concrete ``shapes`` and the known inputs by Constant nodes holding those values;
        returns how many."""
        return self._fold(graph, ChainMap(self.inputs), shapes, ())

    def settle(self, graph: onnx.GraphProto, inferred: onnx.GraphProto) -> int:
        """Give the outputs of each If whose condition is a known constant the types its taken branch
        infers, as value_info of ``graph`` (``inferred`` is ``graph`` after shape inference, node for node).

        Shape inference merges both branches, so an If choosing between a Squeeze and an Identity has
        outputs of unknown rank even where the input shapes decide the branch; the next inference starts
        from these. Returns how many outputs got a shape."""
        return self._settle(graph, inferred, ChainMap(self.inputs), ())

    def _constant(self, node: onnx.NodeProto, key: tuple) -> np.ndarray | None:
        if key not in self._constants:
            self._constants[key] = constant_value(node, MAX_ELEMENTS)
        return self._constants[key]

    def _fold(self, graph: onnx.GraphProto, values: ChainMap, shapes: Mapping[str, Shape], path: tuple) -> int:
        from onnx import helper, numpy_helper

        values = values.new_child()
        for init in graph.initializer:
            if _elements(init.dims) <= MAX_ELEMENTS:
                array = _array(init)
                if array is not None:
                    values[init.name] = array
        folded = 0
        for index, node in enumerate(graph.node):
            subgraphs = [(attr.name, attr.g) for attr in node.attribute if attr.HasField("g")]
            subgraphs += [(f"{attr.name}[{i}]", g) for attr in node.attribute for i, g in enumerate(attr.graphs)]
            for name, sub in subgraphs:
                folded += self._fold(sub, values, shapes, (*path, index, name))
            if node.domain not in ("", "ai.onnx") or subgraphs:
                continue
            if node.op_type == "Constant":
                value = self._constant(node, (*path, index))
                if value is not None:
                    values[node.output[0]] = value
                continue
            result = _evaluate(node, values, shapes, self.opset)
            if result is None or result.size > MAX_ELEMENTS:
                continue
            values[node.output[0]] = self._constants[(*path, index)] = result
            constant = helper.make_node(
                "Constant", [], [node.output[0]], name=node.name, value=numpy_helper.from_array(result)
            )
            node.CopyFrom(constant)
            folded += 1
        return folded

    def _settle(self, graph: onnx.GraphProto, inferred: onnx.GraphProto, values: ChainMap, path: tuple) -> int:
        values = values.new_child()
        known: set[str] | None = None
        settled = 0
        for index, (node, inferred_node) in enumerate(zip(graph.node, inferred.node, strict=True)):
            if node.op_type == "Constant":
                value = self._constant(node, (*path, index))
                if value is not None:
                    values[node.output[0]] = value
                continue
            branches = {a.name: a.g for a in inferred_node.attribute if a.HasField("g")}
            originals = {a.name: a.g for a in node.attribute if a.HasField("g")}
            for name, sub in branches.items():
                settled += self._settle(originals[name], sub, values, (*path, index, name))
            condition = values.get(node.input[0]) if node.op_type == "If" and node.input else None
            if condition is None or condition.size != 1:
                continue
            taken = branches.get("then_branch" if bool(condition.item()) else "else_branch")
            if taken is None:
                continue
            if known is None:
                known = {vi.name for vi in [*inferred.value_info, *inferred.output] if _concrete(vi)}
            inside = {vi.name: vi for vi in [*taken.value_info, *taken.output] if _concrete(vi)}
            for output, branch_output in zip(node.output, taken.output, strict=False):
                found = inside.get(branch_output.name)
                if output and output not in known and found is not None:
                    info = graph.value_info.add()
                    info.CopyFrom(found)
                    info.name = output
                    settled += 1
        return settled


def fold_shape_values(
    graph: onnx.GraphProto,
    shapes: Mapping[str, Shape],
    opset: int,
    inputs: Mapping[str, np.ndarray] | None = None,
) -> int:
    """One :meth:`ShapeFolder.fold` of ``graph``; returns how many nodes became Constants."""
    return ShapeFolder(opset, inputs).fold(graph, shapes)


def _concrete(value_info: onnx.ValueInfoProto) -> bool:
    tensor = value_info.type.tensor_type
    return tensor.HasField("shape") and all(d.HasField("dim_value") for d in tensor.shape.dim)


def constant_value(node: onnx.NodeProto, max_elements: int | None = None) -> np.ndarray | None:
    """The value of a Constant node, whichever attribute holds it; None for sparse values, strings and
    tensors of more than ``max_elements``."""
    from onnx import helper

    for attr in node.attribute:
        if attr.name == "value" and attr.HasField("t"):
            too_big = max_elements is not None and _elements(attr.t.dims) > max_elements
            return None if too_big else _array(attr.t)
        if attr.name in ("value_int", "value_ints"):
            return np.asarray(helper.get_attribute_value(attr), dtype=np.int64)
        if attr.name in ("value_float", "value_floats"):
            return np.asarray(helper.get_attribute_value(attr), dtype=np.float32)
    return None


def _array(tensor: onnx.TensorProto) -> np.ndarray | None:
    from onnx import numpy_helper

    try:
        array = numpy_helper.to_array(tensor)
    except Exception:
        return None
    return array if array.dtype.kind in "biuf" and array.size == _elements(tensor.dims) else None


def _elements(dims) -> int:
    count = 1
    for dim in dims:
        count *= dim
    return count


def _evaluate(
    node: onnx.NodeProto, values: MutableMapping[str, np.ndarray], shapes: Mapping[str, Shape], opset: int
) -> np.ndarray | None:
    """The single output of ``node``, or None when an input is unknown or the op is not one of shapes'."""
    from onnx import helper

    op = node.op_type
    if len(node.output) != 1 or (op not in _OPS and op not in ("Shape", "Size")):
        return None
    attrs = {attr.name: helper.get_attribute_value(attr) for attr in node.attribute}
    if op in ("Shape", "Size"):
        shape = shapes.get(node.input[0]) if node.input else None
        if shape is None:
            return None
        if op == "Size":
            return np.asarray(_elements(shape), dtype=np.int64)
        start, end = attrs.get("start", 0), attrs.get("end")
        return np.asarray(shape[start:end], dtype=np.int64)
    inputs = [values.get(name) if name else None for name in node.input]
    if any(value is None for name, value in zip(node.input, inputs, strict=True) if name):
        return None
    try:
        result = _OPS[op](inputs, attrs, opset)
    except (ValueError, IndexError, TypeError, KeyError, OverflowError, ZeroDivisionError, FloatingPointError):
        return None
    return None if result is None else np.asarray(result)


def _axes(inputs: list, attrs: dict, opset: int, since: int) -> list[int] | None:
    """Axes from the attribute (before opset ``since``) or the second input."""
    if opset < since:
        return list(attrs["axes"]) if "axes" in attrs else None
    return [int(a) for a in inputs[1]] if len(inputs) > 1 and inputs[1] is not None else None


def _slice(inputs: list, attrs: dict, opset: int) -> np.ndarray:
    data = inputs[0]
    if opset < 10:
        starts, ends = attrs["starts"], attrs["ends"]
        axes, steps = attrs.get("axes", list(range(len(starts)))), [1] * len(starts)
    else:
        starts, ends = [int(v) for v in inputs[1]], [int(v) for v in inputs[2]]
        axes = [int(v) for v in inputs[3]] if len(inputs) > 3 and inputs[3] is not None else list(range(len(starts)))
        steps = [int(v) for v in inputs[4]] if len(inputs) > 4 and inputs[4] is not None else [1] * len(starts)
    index: list[Any] = [slice(None)] * data.ndim
    for start, end, axis, step in zip(starts, ends, axes, steps, strict=True):
        index[axis % data.ndim] = slice(int(start), int(end), int(step))
    return data[tuple(index)]


def _unsqueeze(inputs: list, attrs: dict, opset: int) -> np.ndarray:
    axes = _axes(inputs, attrs, opset, 13)
    result = inputs[0]
    rank = result.ndim + len(axes)
    for axis in sorted(a % rank for a in axes):
        result = np.expand_dims(result, axis)
    return result


def _squeeze(inputs: list, attrs: dict, opset: int) -> np.ndarray:
    axes = _axes(inputs, attrs, opset, 13)
    return np.squeeze(inputs[0], axis=None if axes is None else tuple(a % inputs[0].ndim for a in axes))


def _reshape(inputs: list, attrs: dict, opset: int) -> np.ndarray:
    data, target = inputs[0], [int(v) for v in inputs[1]]
    if not attrs.get("allowzero", 0):
        target = [data.shape[i] if v == 0 else v for i, v in enumerate(target)]
    return data.reshape(target)


def _divide(inputs: list, attrs: dict, opset: int) -> np.ndarray:
    a, b = inputs
    if a.dtype.kind in "iu" and b.dtype.kind in "iu":
        return (np.sign(a) * np.sign(b) * (np.abs(a) // np.abs(b))).astype(a.dtype)  # C division truncates
    return np.divide(a, b).astype(a.dtype)


def _reduce(function: Callable, since: int) -> Callable:
    def reduce(inputs: list, attrs: dict, opset: int) -> np.ndarray:
        axes = _axes(inputs, attrs, opset, since)
        if not axes and attrs.get("noop_with_empty_axes", 0):
            return inputs[0]
        keep = bool(attrs.get("keepdims", 1))
        return function(inputs[0], axis=None if not axes else tuple(axes), keepdims=keep).astype(inputs[0].dtype)

    return reduce


def _cast(inputs: list, attrs: dict, opset: int) -> np.ndarray:
    from onnx import helper

    return inputs[0].astype(helper.tensor_dtype_to_np_dtype(attrs["to"]))


def _constant_of_shape(inputs: list, attrs: dict, opset: int) -> np.ndarray | None:
    from onnx import numpy_helper

    fill = numpy_helper.to_array(attrs["value"]).ravel()[0] if "value" in attrs else np.float32(0)
    shape = [int(v) for v in inputs[0]]
    return None if _elements(shape) > MAX_ELEMENTS else np.full(shape, fill, dtype=np.asarray(fill).dtype)


def _expand(inputs: list, attrs: dict, opset: int) -> np.ndarray | None:
    shape = np.broadcast_shapes(inputs[0].shape, tuple(int(v) for v in inputs[1]))
    return None if _elements(shape) > MAX_ELEMENTS else np.broadcast_to(inputs[0], shape).copy()


def _range(inputs: list, attrs: dict, opset: int) -> np.ndarray | None:
    start, limit, delta = (v.item() for v in inputs)
    count = max(int(np.ceil((limit - start) / delta)), 0)
    return None if count > MAX_ELEMENTS else np.arange(start, limit, delta, dtype=inputs[0].dtype)


def _same_type(function: Callable) -> Callable:
    return lambda inputs, attrs, opset: function(*inputs).astype(inputs[0].dtype)


def _compare(function: Callable) -> Callable:
    return lambda inputs, attrs, opset: function(*inputs)


_OPS: dict[str, Callable[[list, dict, int], np.ndarray | None]] = {
    "Identity": lambda inputs, attrs, opset: inputs[0],
    "Cast": _cast,
    "Gather": lambda inputs, attrs, opset: np.take(inputs[0], inputs[1].astype(np.int64), axis=attrs.get("axis", 0)),
    "Slice": _slice,
    "Concat": lambda inputs, attrs, opset: np.concatenate([np.atleast_1d(v) for v in inputs], axis=attrs["axis"]),
    "Unsqueeze": _unsqueeze,
    "Squeeze": _squeeze,
    "Reshape": _reshape,
    "Flatten": lambda inputs, attrs, opset: inputs[0].reshape(_elements(inputs[0].shape[: attrs.get("axis", 1)]), -1),
    "Transpose": lambda inputs, attrs, opset: np.transpose(inputs[0], attrs.get("perm")),
    "Add": _same_type(np.add),
    "Sub": _same_type(np.subtract),
    "Mul": _same_type(np.multiply),
    "Div": _divide,
    "Mod": lambda inputs, attrs, opset: (np.fmod if attrs.get("fmod", 0) else np.mod)(*inputs),
    "Neg": _same_type(np.negative),
    "Abs": _same_type(np.abs),
    "Floor": _same_type(np.floor),
    "Ceil": _same_type(np.ceil),
    "Sqrt": _same_type(np.sqrt),
    "Min": lambda inputs, attrs, opset: np.minimum.reduce(np.broadcast_arrays(*inputs)),
    "Max": lambda inputs, attrs, opset: np.maximum.reduce(np.broadcast_arrays(*inputs)),
    "Equal": _compare(np.equal),
    "Less": _compare(np.less),
    "Greater": _compare(np.greater),
    "LessOrEqual": _compare(np.less_equal),
    "GreaterOrEqual": _compare(np.greater_equal),
    "Not": _compare(np.logical_not),
    "And": _compare(np.logical_and),
    "Or": _compare(np.logical_or),
    "Xor": _compare(np.logical_xor),
    "Where": lambda inputs, attrs, opset: np.where(*inputs),
    "ConstantOfShape": _constant_of_shape,
    "Range": _range,
    "Expand": _expand,
    "ReduceProd": _reduce(np.prod, 18),
    "ReduceSum": _reduce(np.sum, 13),
    "ReduceMin": _reduce(np.min, 18),
    "ReduceMax": _reduce(np.max, 18),
}
