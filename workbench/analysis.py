"""Per-layer analysis of ONNX graphs and torch modules: shapes, parameters, sparsity, MACs, bytes.

What cannot be computed (a shape inference could not settle, MACs of an op the workbench does not model)
is ``None`` and shown as unknown, never guessed. Every Analysis states the input shapes it used.

Control flow: the nodes of If/Loop/Scan subgraphs are rows of their own, listed right after their
control-flow row with ``parent`` (that row's name), ``branch`` (the attribute holding the subgraph:
``then_branch``, ``else_branch``, ``body``) and ``depth``. A weight is counted once, at its first reader
in graph order, so a weight shared by both branches of an If, or read from the outer graph, is in the
model's total once. MACs of a control-flow row:

- If: the branch it takes when its condition is known at the analysis' inputs (declared constant inputs,
  shapes; see ``branch_taken``), else the costlier branch (one branch runs per call, so an upper bound);
- Loop: the body's times the trip count, when the count is a constant and no condition ends it early;
- Scan: the body's times the sequence length.

``branch_macs`` keeps each subgraph's own figure (a Loop's or Scan's per iteration). Model totals add up
the main graph's rows, so subgraph MACs count through their control-flow row.
"""

from __future__ import annotations

import functools
from collections import ChainMap
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from workbench.model import InputShapes, Model, set_eval

if TYPE_CHECKING:
    import onnx
    from torch import nn

Shape = tuple[int, ...] | None

# Ops whose cost is dominated by multiply-accumulates we can count from shapes.
_CONV_OPS = {"Conv", "ConvInteger", "QLinearConv"}
_MATMUL_OPS = {"MatMul", "MatMulInteger", "QLinearMatMul", "FusedMatMul"}
# Gate matrices per recurrent op: per time step each multiplies the input by W and the state by R.
_RECURRENT_GATES = {"LSTM": 4, "GRU": 3, "RNN": 1}
# Ops that do multiply-accumulates we do not model: their MACs are unknown rather than zero.
_UNMODELLED_MAC_OPS = {
    "Einsum",
    "Attention",
    "MultiHeadAttention",
    "DeformConv",
    "ConvTranspose3D",
    "FunctionCall",
}
_SHAPE_ROUNDS = 16  # shape inference, then folding of shape computations, at most this often


@dataclass
class LayerInfo:
    name: str
    op_type: str
    input_shapes: list[Shape]
    output_shapes: list[Shape]
    params: int
    nonzero_params: int
    dtype: str | None
    macs: int | None
    weight_bytes: int
    activation_bytes: int | None
    weight_names: tuple[str, ...] = ()  # the tensors per-layer overrides refer to
    parent: str | None = None  # the If/Loop/Scan row whose subgraph holds this layer; None in the main graph
    branch: str | None = None  # the parent's attribute holding that subgraph: then_branch, else_branch, body
    depth: int = 0  # how many control-flow layers enclose this one
    branch_macs: dict[str, int | None] = field(default_factory=dict)  # control flow: MACs per subgraph (per run)
    branch_taken: str | None = None  # an If whose condition is known at the analysis' inputs: the branch it runs

    @property
    def sparsity(self) -> float | None:
        return None if self.params == 0 else 1.0 - self.nonzero_params / self.params


@dataclass
class Analysis:
    model_name: str
    source_format: str  # "onnx" or "torch"
    input_shapes: InputShapes | None
    layers: list[LayerInfo]  # in graph order, each control-flow row followed by its subgraphs' rows
    peak_activation_bytes: int
    peak_is_lower_bound: bool
    notes: list[str] = field(default_factory=list)
    runtime_refusal: str | None = None  # why running the model here is unsafe (a test run hit its cap)

    @property
    def params(self) -> int:
        return sum(layer.params for layer in self.layers)

    @property
    def nonzero_params(self) -> int:
        return sum(layer.nonzero_params for layer in self.layers)

    @property
    def sparsity(self) -> float:
        return 0.0 if self.params == 0 else 1.0 - self.nonzero_params / self.params

    @property
    def weight_bytes(self) -> int:
        return sum(layer.weight_bytes for layer in self.layers)

    @property
    def macs(self) -> int:
        """MACs of the main graph's layers whose MACs are known (control-flow rows include their subgraphs);
        see :attr:`macs_unknown_layers`."""
        return sum(layer.macs for layer in self.layers if layer.macs is not None and layer.depth == 0)

    @property
    def macs_unknown_layers(self) -> list[str]:
        """The layers whose unknown MACs leave :attr:`macs` short: unknown for a reason of their own (not only
        because a layer inside them is), and not inside a control-flow layer whose MACs are known anyway
        (the branch an If does not take)."""
        by_name = {layer.name: layer for layer in self.layers}
        unknown_inside = {layer.parent for layer in self.layers if layer.macs is None and layer.parent is not None}

        def missing_from_total(layer: LayerInfo) -> bool:
            while layer.parent is not None and layer.parent in by_name:
                layer = by_name[layer.parent]
                if layer.macs is not None:
                    return False
            return True

        return [
            layer.name
            for layer in self.layers
            if layer.macs is None and layer.name not in unknown_inside and missing_from_total(layer)
        ]

    def children(self, name: str) -> list[LayerInfo]:
        """The rows directly inside control-flow layer ``name``, all its subgraphs in order."""
        return [layer for layer in self.layers if layer.parent == name]


def analyze(model: Model) -> Analysis:
    """Analyze a model at its settled input shapes (torch modules by hooks, everything else as ONNX), with
    its declared constant inputs (a sample rate) as the values they hold."""
    if model.onnx_proto is None and model.torch_module is not None:
        result = analyze_torch(model)
        if result is not None:
            return result
    spec = model.input_spec
    constants = {name: c.array() for name, c in spec.constants.items()} if spec is not None else None
    return analyze_onnx(model.to_onnx(), model.input_shapes, model.name, constants)


# --- ONNX -----------------------------------------------------------------------------------------
def analyze_onnx(
    proto: onnx.ModelProto,
    shapes: InputShapes | None,
    name: str = "model",
    constants: Mapping[str, np.ndarray] | None = None,
) -> Analysis:
    """``constants``: inputs that hold a fixed value (an If on them then counts the branch it takes)."""
    notes: list[str] = []
    weights, decoders = weights_as_computed(proto)
    constants = dict(constants or {})
    inferred, tensor_info, runtime_refusal = _infer_tensor_info(proto, shapes, notes, constants)
    scope = _Scope(ChainMap(tensor_info), ChainMap(_graph_info(inferred, proto.graph)[1], constants))
    builder = _RowBuilder(weights, decoders, _default_opset(proto))
    layers = builder.graph_rows(proto.graph, inferred, scope, None, None, 0)
    peak, lower_bound = _peak_activation(proto, tensor_info, set(weights))
    if lower_bound:
        notes.append("some activation shapes are unknown: the peak-memory figure is a lower bound")
    if any(layer.depth for layer in layers):
        notes.append(
            "If rows count the branch their condition takes where the inputs decide it, else the costlier one; "
            "Loop/Scan rows their body's MACs times the iterations; the peak-memory figure follows the main graph"
        )
    unknown = Analysis(name, "onnx", shapes, layers, 0, False).macs_unknown_layers
    if unknown:
        notes.append(f"MACs unknown for {len(unknown)} layer(s) (control flow, unmodelled ops or unknown shapes)")
    return Analysis(name, "onnx", shapes, layers, peak, lower_bound, notes, runtime_refusal)


@dataclass
class _Scope:
    """What a graph sees: its own tensors' dtypes, shapes and small constant values, then its parents'."""

    info: ChainMap  # name -> (dtype, concrete shape or None)
    values: ChainMap  # name -> small constant array (Loop trip counts and conditions)

    def child(self, inferred: onnx.GraphProto, graph: onnx.GraphProto) -> _Scope:
        info, values = _graph_info(inferred, graph)
        return _Scope(self.info.new_child(info), self.values.new_child(values))


class _RowBuilder:
    """Rows of a graph and, depth first, of its subgraphs; every weight counted at its first reader."""

    def __init__(self, weights: dict[str, np.ndarray], decoders: set[str], opset: int) -> None:
        self.weights, self.decoders, self.opset = weights, decoders, opset
        self.seen: set[str] = set()  # weights already counted
        self.names: set[str] = set()

    def graph_rows(
        self,
        graph: onnx.GraphProto,
        inferred: onnx.GraphProto,
        scope: _Scope,
        parent: str | None,
        branch: str | None,
        depth: int,
    ) -> list[LayerInfo]:
        """``inferred`` is ``graph`` after shape inference (node for node, shape computations folded)."""
        rows: list[LayerInfo] = []
        for index, (node, inferred_node) in enumerate(zip(graph.node, inferred.node, strict=True)):
            if node.op_type == "Constant" and node.domain in ("", "ai.onnx"):
                continue  # its value is a weight, counted where it is used
            if node.output and node.output[0] in self.decoders:
                self.seen.update(node.input)  # stored codes: the layer reading the decoded weight counts it
                continue
            name = self._name(node, index, parent, branch, depth)
            weight_names = self._claim(n for n in node.input if n)
            children: list[LayerInfo] = []
            branch_macs: dict[str, int | None] = {}
            for (attr, sub), (_, inferred_sub) in zip(_subgraphs(node), _subgraphs(inferred_node), strict=True):
                sub_rows = self.graph_rows(sub, inferred_sub, scope.child(inferred_sub, sub), name, attr, depth + 1)
                children += sub_rows
                own = [row.macs for row in sub_rows if row.depth == depth + 1]
                branch_macs[attr] = None if None in own else sum(own)  # type: ignore[arg-type]
            if branch_macs:  # weights a subgraph holds but no layer inside reads (a branch returning one)
                weight_names += self._claim(_node_inputs_deep(node))
            info = scope.info
            in_shapes = [info.get(i, (None, None))[1] if i else None for i in node.input]
            out_shapes = [info.get(o, (None, None))[1] for o in node.output]
            out_dtypes = [info.get(o, (None, None))[0] for o in node.output]
            taken = None
            if branch_macs:
                taken = _taken_branch(node, scope.values)
                macs = _control_flow_macs(node, branch_macs, in_shapes, scope.values, self.opset, taken)
            else:
                macs = _onnx_macs(node, in_shapes, out_shapes)
            arrays = [self.weights[w] for w in weight_names]
            rows.append(
                LayerInfo(
                    name=name,
                    op_type=node.op_type if node.domain in ("", "ai.onnx") else f"{node.domain}.{node.op_type}",
                    input_shapes=in_shapes,
                    output_shapes=out_shapes,
                    params=sum(a.size for a in arrays),
                    nonzero_params=sum(int(np.count_nonzero(a)) for a in arrays),
                    dtype=next((a.dtype.name for a in arrays), None) or next((d for d in out_dtypes if d), None),
                    macs=macs,
                    weight_bytes=sum(a.nbytes for a in arrays),
                    activation_bytes=_total_bytes(out_shapes, out_dtypes),
                    weight_names=tuple(weight_names),
                    parent=parent,
                    branch=branch,
                    depth=depth,
                    branch_macs=branch_macs,
                    branch_taken=taken,
                )
            )
            rows += children
        return rows

    def _claim(self, names: Iterable[str]) -> list[str]:
        claimed = [n for n in dict.fromkeys(names) if n in self.weights and n not in self.seen]
        self.seen.update(claimed)
        return claimed

    def _name(self, node: onnx.NodeProto, index: int, parent: str | None, branch: str | None, depth: int) -> str:
        name = node.name or f"{node.op_type}_{index}"
        if depth == 0:
            self.names.add(name)
            return name
        if not node.name or name in self.names:  # unnamed, or named as in a sibling branch: say where it sits
            name = f"{parent}/{branch}/{name}"
        unique, count = name, 1
        while unique in self.names:
            count += 1
            unique = f"{name}#{count}"
        self.names.add(unique)
        return unique


def _subgraphs(node: onnx.NodeProto) -> list[tuple[str, onnx.GraphProto]]:
    """A node's subgraphs by the attribute holding them (If: then_branch, else_branch; Loop/Scan: body)."""
    found = []
    for attr in node.attribute:
        if attr.HasField("g"):
            found.append((attr.name, attr.g))
        found += [(f"{attr.name}[{i}]", g) for i, g in enumerate(attr.graphs)]
    return sorted(found, key=lambda item: item[0] != "then_branch")  # then before else, as written


def _control_flow_macs(
    node: onnx.NodeProto,
    branch_macs: dict[str, int | None],
    in_shapes: list[Shape],
    values: Mapping[str, np.ndarray],
    opset: int,
    taken: str | None,
) -> int | None:
    """An If's taken branch (its condition known) or else its costlier one; a Loop's body times its trip
    count; a Scan's body times its sequence length."""
    if taken is not None:
        return branch_macs[taken]
    if node.domain not in ("", "ai.onnx") or None in branch_macs.values():
        return None
    if node.op_type == "If":
        return max(branch_macs.values(), default=0)  # type: ignore[type-var]
    body = next((a.g for a in node.attribute if a.name == "body"), None)
    per_iteration = branch_macs.get("body")
    if body is None or per_iteration is None:
        return None
    if node.op_type == "Loop":
        trips = _loop_trips(node, body, values)
        return None if trips is None else trips * per_iteration
    if node.op_type == "Scan" and opset >= 9:
        attrs = {a.name: a for a in node.attribute}
        count = attrs["num_scan_inputs"].i if "num_scan_inputs" in attrs else 0
        axes = list(attrs["scan_input_axes"].ints) if "scan_input_axes" in attrs else [0] * count
        first = in_shapes[len(in_shapes) - count] if count else None
        if first is None or not axes:
            return None
        return first[axes[0] % len(first)] * per_iteration
    return None


def _taken_branch(node: onnx.NodeProto, values: Mapping[str, np.ndarray]) -> str | None:
    """The branch an If takes when its condition is known at the analysis' inputs."""
    if node.op_type != "If" or node.domain not in ("", "ai.onnx") or not node.input:
        return None
    condition = values.get(node.input[0])
    if condition is None or condition.size != 1:
        return None
    return "then_branch" if bool(condition.item()) else "else_branch"


def _loop_trips(node: onnx.NodeProto, body: onnx.GraphProto, values: Mapping[str, np.ndarray]) -> int | None:
    """The iterations of a Loop when it runs exactly its trip count: the count is a known constant and the
    condition is absent, or true and passed through the body unchanged."""
    trips = values.get(node.input[0]) if node.input and node.input[0] else None
    if trips is None or trips.size != 1:
        return None
    condition = node.input[1] if len(node.input) > 1 else ""
    if condition:
        start = values.get(condition)
        if start is None or start.size != 1 or not bool(start.item()) or len(body.input) < 2:
            return None
        passed, result = body.input[1].name, body.output[0].name
        producer = next((n for n in body.node if result in n.output), None)
        through = result == passed or (
            producer is not None and producer.op_type == "Identity" and producer.input[0] == passed
        )
        if not through:
            return None
    return max(int(trips.item()), 0)


def weights_as_computed(proto: onnx.ModelProto) -> tuple[dict[str, np.ndarray], set[str]]:
    """The weights layers compute with: stored ones, and packed codes or codebooks decoded, so a layer
    shows its own params and sparsity; plus the outputs of the decoding nodes (in any graph)."""
    from workbench.weight_codec import decode_weights

    weights = graph_weights(proto)
    decoded, decoders = decode_weights(proto, weights)
    return weights | decoded, decoders


def graph_weights(proto: onnx.ModelProto) -> dict[str, np.ndarray]:
    """Initializers and Constant-node tensors (Paddle and old exporters keep weights in Constants)."""
    weights: dict[str, np.ndarray] = {}
    for graph in walk_graphs(proto.graph):
        for init in graph.initializer:
            weights[init.name] = _to_array(init)
        for node in graph.node:
            if node.op_type == "Constant" and node.domain in ("", "ai.onnx"):
                for attr in node.attribute:
                    if attr.name == "value" and attr.HasField("t"):
                        weights[node.output[0]] = _to_array(attr.t)
    return weights


def _to_array(tensor: onnx.TensorProto) -> np.ndarray:
    from onnx import helper, numpy_helper

    if tensor.raw_data and tensor.data_type in _RAW_DTYPES:
        # frombuffer avoids numpy_helper's copy: a 100 MB model analyses in well under a second.
        dtype = helper.tensor_dtype_to_np_dtype(tensor.data_type)
        return np.frombuffer(tensor.raw_data, dtype=dtype).reshape(tuple(tensor.dims))
    try:
        return numpy_helper.to_array(tensor)
    except Exception:
        return np.zeros(tuple(tensor.dims), dtype=np.uint8)


def _raw_dtypes() -> set[int]:
    from onnx import TensorProto

    return {
        TensorProto.FLOAT,
        TensorProto.DOUBLE,
        TensorProto.FLOAT16,
        TensorProto.INT8,
        TensorProto.UINT8,
        TensorProto.INT16,
        TensorProto.UINT16,
        TensorProto.INT32,
        TensorProto.UINT32,
        TensorProto.INT64,
        TensorProto.UINT64,
        TensorProto.BOOL,
    }


_RAW_DTYPES = _raw_dtypes()


_GRAPH, _GRAPHS = 5, 10  # AttributeProto.GRAPH, AttributeProto.GRAPHS


def walk_graphs(graph: onnx.GraphProto) -> Iterable[onnx.GraphProto]:
    """The graph and every subgraph (If/Loop/Scan bodies), depth first; iterative, so nesting cannot
    exhaust Python's recursion limit."""
    stack = [graph]
    while stack:
        current = stack.pop()
        yield current
        nested = []
        for node in current.node:
            for attr in node.attribute:
                if attr.type == _GRAPH:
                    nested.append(attr.g)
                elif attr.type == _GRAPHS:
                    nested.extend(attr.graphs)
        stack.extend(reversed(nested))


def _node_inputs_deep(node: onnx.NodeProto) -> list[str]:
    """A node's inputs plus everything its subgraphs (If/Loop bodies) read, initializers included."""
    names = [n for n in node.input if n]
    for attr in node.attribute:
        subgraphs = ([attr.g] if attr.HasField("g") else []) + list(attr.graphs)
        for sub in subgraphs:
            for inner in walk_graphs(sub):
                names.extend(init.name for init in inner.initializer)
                for inner_node in inner.node:
                    names.extend(n for n in inner_node.input if n)
                    if inner_node.op_type == "Constant":
                        names.extend(inner_node.output)
    return list(dict.fromkeys(names))


def _infer_tensor_info(
    proto: onnx.ModelProto, shapes: InputShapes | None, notes: list[str], constants: dict[str, np.ndarray]
) -> tuple[onnx.GraphProto, dict[str, tuple[str | None, Shape]], str | None]:
    """The graph after ONNX shape inference at the given input shapes (node for node like ``proto``'s, its
    shape computations folded to constants); the main graph's name → (dtype, concrete shape or None); and
    why running the model is unsafe when a test run to settle what static inference left open hit its cap.

    Inference alternates with folding shape computations (:mod:`workbench.shape_values`) while that
    settles more, so the onnxruntime test run is needed only where static inference cannot go."""
    import onnx
    from onnx import shape_inference

    from workbench.shape_values import ShapeFolder

    skeleton = onnx.ModelProto()
    skeleton.CopyFrom(proto)
    for graph in walk_graphs(skeleton.graph):
        # Inference needs the values of small tensors (Reshape targets) but only the dims of weights.
        values = [a.t for n in graph.node if n.op_type == "Constant" for a in n.attribute if a.HasField("t")]
        for tensor in [*graph.initializer, *values]:
            if len(tensor.raw_data) > 4096:
                tensor.ClearField("raw_data")
                tensor.ClearField("data_location")
                del tensor.external_data[:]
                tensor.raw_data = b""
    given = {name: value.shape for name, value in constants.items()} | (dict(shapes.shapes) if shapes else {})
    for vi in skeleton.graph.input:
        if vi.name in given:
            dims = vi.type.tensor_type.shape.dim
            del dims[:]
            for size in given[vi.name]:
                dims.add().dim_value = int(size)
    for graph in walk_graphs(skeleton.graph):
        del graph.value_info[:]
    for vi in skeleton.graph.output:  # declared symbolic dims ("batch", -1) would stay over inferred ones
        if not all(d.HasField("dim_value") and d.dim_value >= 0 for d in vi.type.tensor_type.shape.dim):
            vi.type.tensor_type.ClearField("shape")
    inferred, folder = skeleton, ShapeFolder(_default_opset(proto), constants)
    branching = any(node.op_type == "If" for graph in walk_graphs(proto.graph) for node in graph.node)
    for _ in range(_SHAPE_ROUNDS):
        try:
            inferred = shape_inference.infer_shapes(skeleton, data_prop=True)
        except Exception as exc:
            notes.append(f"shape inference failed ({str(exc).splitlines()[0][:160]}); shapes unknown")
            inferred = skeleton
            break
        graphs = list(walk_graphs(inferred.graph))
        everywhere: dict[str, tuple[str | None, Shape]] = {}
        for graph in graphs:
            everywhere |= _value_infos(graph)
        open_outputs = any(
            out and everywhere.get(out, (None, None))[1] is None
            for graph in graphs
            for node in graph.node
            for out in node.output
        )
        if not open_outputs and not branching:  # (an If's condition may be known: its row counts that branch)
            break
        folded = folder.fold(skeleton.graph, {k: v[1] for k, v in everywhere.items()})
        if not folded + (folder.settle(skeleton.graph, inferred.graph) if branching else 0):
            break

    info, _values = _graph_info(inferred.graph, proto.graph)
    unknown = [
        out
        for node in proto.graph.node
        if node.op_type != "Constant"
        for out in node.output
        if out and info.get(out, (None, None))[1] is None
    ]
    if unknown and shapes is not None:
        return inferred.graph, info, _shapes_from_runtime(proto, shapes, unknown, info, notes, constants)
    return inferred.graph, info, None


def _graph_info(
    inferred: onnx.GraphProto, graph: onnx.GraphProto
) -> tuple[dict[str, tuple[str | None, Shape]], Mapping[str, np.ndarray]]:
    """A graph's own tensors: name → (dtype, concrete shape or None) from ``inferred`` (the graph after
    shape inference) and its initializers' dims, and the values of its small constants (read when asked)."""
    info = _value_infos(inferred)
    for init in graph.initializer:
        info[init.name] = (_dtype_name(init.data_type), tuple(init.dims))
    return info, _SmallConstants(inferred)


class _SmallConstants(Mapping):
    """The values of a graph's small initializers and Constant nodes (Loop trip counts, If conditions, many
    folded by :mod:`workbench.shape_values`), converted only when looked up."""

    def __init__(self, graph: onnx.GraphProto) -> None:
        self._holders: dict[str, Any] = {init.name: init for init in graph.initializer}
        for node in graph.node:
            if node.op_type == "Constant" and node.domain in ("", "ai.onnx") and node.output:
                self._holders[node.output[0]] = node
        self._values: dict[str, np.ndarray | None] = {}

    def _value(self, name: str) -> np.ndarray | None:
        from workbench.shape_values import MAX_ELEMENTS, constant_value

        if name not in self._values:
            holder = self._holders[name]
            if hasattr(holder, "op_type"):  # a Constant node
                self._values[name] = constant_value(holder, MAX_ELEMENTS)
            else:  # an initializer: the skeleton kept the bytes of the small ones
                self._values[name] = _to_array(holder) if int(np.prod(holder.dims)) <= MAX_ELEMENTS else None
        return self._values[name]

    def __getitem__(self, name: str) -> np.ndarray:
        value = self._value(name) if name in self._holders else None
        if value is None:
            raise KeyError(name)
        return value

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name in self._holders and self._value(name) is not None

    def __iter__(self):
        return (name for name in self._holders if name in self)

    def __len__(self) -> int:
        return sum(1 for _ in self)


def _value_infos(graph: onnx.GraphProto) -> dict[str, tuple[str | None, Shape]]:
    info: dict[str, tuple[str | None, Shape]] = {}
    for vi in [*graph.input, *graph.value_info, *graph.output]:
        tensor_type = vi.type.tensor_type
        dtype = _dtype_name(tensor_type.elem_type)
        shape: Shape = None
        if tensor_type.HasField("shape"):
            dims = [d.dim_value if d.HasField("dim_value") else -1 for d in tensor_type.shape.dim]
            shape = tuple(dims) if all(d >= 0 for d in dims) else None
        if vi.name not in info or info[vi.name][1] is None:
            info[vi.name] = (dtype, shape)
    return info


@functools.cache
def _dtype_name(elem_type: int) -> str | None:
    from onnx import helper

    try:
        return helper.tensor_dtype_to_np_dtype(elem_type).name if elem_type else None
    except (KeyError, TypeError, ValueError):
        return None


def _default_opset(proto: onnx.ModelProto) -> int:
    return next((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), 1)


def _shapes_from_runtime(
    proto: onnx.ModelProto,
    shapes: InputShapes,
    names: list[str],
    info: dict[str, tuple[str | None, Shape]],
    notes: list[str],
    constants: dict[str, np.ndarray],
) -> str | None:
    """Settle shapes static inference left open by running the graph once on zeros at the given shapes
    (declared constant inputs at their values).

    The run happens in a capped child process (see :mod:`workbench.shape_probe`). Returns why running
    the model here is unsafe when the run hit the memory or time cap, else None.
    """
    from workbench.onnx_prep import with_outputs
    from workbench.shape_probe import probe_shapes

    declared = {
        name: (value.dtype.name, value.shape, float(value.ravel()[0]) if value.size else 0.0)
        for name, value in constants.items()
    }
    result = probe_shapes(with_outputs(proto, names).SerializeToString(), shapes.shapes, names, constants=declared)
    if result.failure is not None:
        notes.append(f"{len(names)} tensor shape(s) unknown (static inference left them open and {result.failure})")
        return result.failure if result.over_budget else None
    for name, (dtype, shape) in result.shapes.items():
        info[name] = (dtype, shape)
    notes.append(f"{len(names)} tensor shape(s) taken from an onnxruntime run at the given input shapes")
    return None


def _onnx_macs(node: onnx.NodeProto, in_shapes: list[Shape], out_shapes: list[Shape]) -> int | None:
    op = node.op_type
    out = out_shapes[0] if out_shapes else None
    try:
        if op in _CONV_OPS:
            w_index = 3 if op == "QLinearConv" else 1
            w_shape = in_shapes[w_index] if len(in_shapes) > w_index else None
            if out is None or w_shape is None:
                return None
            return int(np.prod(out)) * int(np.prod(w_shape[1:]))
        if op == "ConvTranspose":
            x_shape, w_shape = in_shapes[0], in_shapes[1]
            if x_shape is None or w_shape is None:
                return None
            return int(np.prod(x_shape)) * int(np.prod(w_shape[1:]))
        if op == "Gemm":
            a_shape = in_shapes[0]
            if out is None or a_shape is None:
                return None
            trans_a = next((a.i for a in node.attribute if a.name == "transA"), 0)
            k = a_shape[0] if trans_a else a_shape[-1]
            return int(np.prod(out)) * int(k)
        if op in _MATMUL_OPS:
            a_shape = in_shapes[0]
            if out is None or a_shape is None:
                return None
            return int(np.prod(out)) * int(a_shape[-1])
        if op in _RECURRENT_GATES and node.domain in ("", "ai.onnx"):
            return _recurrent_macs(node, in_shapes)
    except (IndexError, TypeError):
        return None
    if op in _UNMODELLED_MAC_OPS or node.domain not in ("", "ai.onnx", "com.microsoft"):
        return None
    return 0


def _recurrent_macs(node: onnx.NodeProto, in_shapes: list[Shape]) -> int | None:
    """LSTM, GRU and RNN: per time step each gate (LSTM 4: input, output, forget, cell; GRU 3: update,
    reset, hidden; RNN 1) multiplies the input by its rows of W and the hidden state by its rows of R::

        MACs = seq_len × batch × directions × gates × hidden_size × (input_size + hidden_size)

    read from X [seq_len, batch, input_size] (layout 1: [batch, seq_len, input_size]),
    W [directions, gates × hidden_size, input_size] and R [directions, gates × hidden_size, hidden_size].
    Bias adds, peepholes and the gates' elementwise products are not counted (as Conv's bias is not); with
    ``sequence_lens`` shorter sequences stop early, so the figure is then an upper bound."""
    x, w, r = (in_shapes + [None] * 3)[:3]
    if x is None or w is None or r is None or len(x) != 3 or len(w) != 3 or len(r) != 3:
        return None
    layout = next((a.i for a in node.attribute if a.name == "layout"), 0)
    seq_len, batch = (x[1], x[0]) if layout else (x[0], x[1])
    directions, gate_rows = w[0], w[1]  # gate_rows = gates × hidden_size
    return int(seq_len) * int(batch) * int(directions) * int(gate_rows) * (int(w[2]) + int(r[2]))


def _total_bytes(shapes: list[Shape], dtypes: list[str | None]) -> int | None:
    total = 0
    for shape, dtype in zip(shapes, dtypes, strict=False):
        if shape is None or dtype is None:
            return None
        total += int(np.prod(shape)) * np.dtype(dtype).itemsize
    return total


def _peak_activation(
    proto: onnx.ModelProto, info: dict[str, tuple[str | None, Shape]], weight_names: set[str]
) -> tuple[int, bool]:
    """Peak of live activation bytes when nodes run in graph order and tensors die after last use."""
    graph = proto.graph
    last_use: dict[str, int] = {}
    for index, node in enumerate(graph.node):
        for name in _node_inputs_deep(node):
            last_use[name] = index
    keep = {o.name for o in graph.output}
    unknown = False

    def size(name: str) -> int:
        nonlocal unknown
        dtype, shape = info.get(name, (None, None))
        if shape is None or dtype is None:
            unknown = True
            return 0
        return int(np.prod(shape)) * np.dtype(dtype).itemsize

    live: dict[str, int] = {vi.name: size(vi.name) for vi in graph.input if vi.name not in weight_names}
    peak = sum(live.values())
    for index, node in enumerate(graph.node):
        if node.op_type == "Constant":
            continue
        for out in node.output:
            if out and out not in weight_names:
                live[out] = size(out)
        peak = max(peak, sum(live.values()))
        for name in [n for n in live if last_use.get(n, -1) <= index and n not in keep]:
            del live[name]
    return peak, unknown


# --- torch ----------------------------------------------------------------------------------------
def analyze_torch(model: Model) -> Analysis | None:
    """Hook every leaf module of an eager nn.Module; None when hooks cannot see the graph."""
    import torch

    module = model.torch_module
    if module is None or isinstance(module, (torch.jit.ScriptModule, torch.fx.GraphModule)):
        return None  # compiled graphs inline their layers: hooks would see nothing; the ONNX view is exact
    shapes = model.concrete_shapes()
    dtypes = {spec.name: spec.dtype for spec in model.inputs}
    examples = [torch.zeros(shape, dtype=getattr(torch, dtypes[name])) for name, shape in shapes.items()]
    rows: list[LayerInfo] = []
    calls: dict[str, int] = {}
    handles = []

    def hook(name: str, leaf: nn.Module):
        def record(_module, args, output):
            calls[name] = calls.get(name, 0) + 1
            label = name if calls[name] == 1 else f"{name}#{calls[name]}"
            first_call = calls[name] == 1
            rows.append(_torch_layer(label, leaf, args, output, count_weights=first_call))

        return record

    for name, leaf in module.named_modules():
        if name and not any(True for _ in leaf.children()):
            handles.append(leaf.register_forward_hook(hook(name, leaf)))
    try:
        with torch.no_grad():
            set_eval(module)(*examples)
    except Exception:
        return None
    finally:
        for handle in handles:
            handle.remove()
    hooked = {id(p) for name, leaf in module.named_modules() if name and name in calls for p in leaf.parameters(False)}
    if not rows or any(id(p) not in hooked for p in module.parameters()):
        return None  # weights outside called leaf modules (attention, raw Parameters): the ONNX view sees all
    peak = max((_bytes_of(r.input_shapes, "float32") or 0) + (r.activation_bytes or 0) for r in rows)
    notes = [
        "torch analysis counts module layers; functional ops inside forward() are not listed",
        "peak activation estimated as the largest layer's input + output (exact for sequential nets)",
    ]
    if any(r.macs is None for r in rows):
        notes.append("MACs unknown for layer types the workbench does not model")
    return Analysis(model.name, "torch", model.input_shapes, rows, peak, False, notes)


def _torch_layer(name: str, leaf: nn.Module, args: tuple, output: Any, count_weights: bool) -> LayerInfo:
    import torch
    from torch import nn

    tensors_in = [a for a in args if isinstance(a, torch.Tensor)]
    tensors_out = (
        [output]
        if isinstance(output, torch.Tensor)
        else [o for o in (output if isinstance(output, (tuple, list)) else []) if isinstance(o, torch.Tensor)]
    )
    params = list(leaf.parameters(recurse=False)) if count_weights else []
    buffers = list(leaf.buffers(recurse=False)) if count_weights else []
    out_shape = tuple(tensors_out[0].shape) if tensors_out else None
    macs: int | None = 0
    if isinstance(leaf, nn.modules.conv._ConvNd) and out_shape is not None:
        if isinstance(leaf, nn.modules.conv._ConvTransposeNd):
            macs = int(tensors_in[0].numel()) * int(np.prod(leaf.weight.shape[1:]))
        else:
            macs = int(np.prod(out_shape)) * int(np.prod(leaf.weight.shape[1:]))
    elif isinstance(leaf, nn.Linear) and out_shape is not None:
        macs = int(np.prod(out_shape)) * leaf.in_features
    elif isinstance(leaf, nn.RNNBase):
        macs = _torch_recurrent_macs(leaf, args[0] if args and isinstance(args[0], torch.Tensor) else None)
    elif params and not isinstance(leaf, (nn.modules.batchnorm._NormBase, nn.LayerNorm, nn.GroupNorm, nn.Embedding)):
        macs = None  # recurrent, attention and custom layers: not modelled
    weight_dtype = params[0].dtype if params else (tensors_out[0].dtype if tensors_out else None)
    return LayerInfo(
        name=name,
        op_type=type(leaf).__name__,
        input_shapes=[tuple(t.shape) for t in tensors_in],
        output_shapes=[tuple(t.shape) for t in tensors_out],
        params=sum(p.numel() for p in params),
        nonzero_params=sum(int(torch.count_nonzero(p)) for p in params),
        dtype=str(weight_dtype).removeprefix("torch.") if weight_dtype is not None else None,
        macs=macs,
        weight_bytes=sum(t.numel() * t.element_size() for t in [*params, *buffers]),
        activation_bytes=sum(t.numel() * t.element_size() for t in tensors_out),
        weight_names=tuple(
            f"{name}.{p_name}" for p_name, _ in leaf.named_parameters(recurse=False) if p_name == "weight"
        )
        if count_weights
        else (),
    )


def _torch_recurrent_macs(leaf: nn.RNNBase, x: Any) -> int | None:
    """nn.LSTM/GRU/RNN: per time step every layer and direction multiplies its input by ``weight_ih`` and
    its state by ``weight_hh`` (and an LSTM's projection by ``weight_hr``), so the MACs per step are those
    matrices' elements: seq_len × batch × Σ (gates × hidden × (input + hidden) [+ proj × hidden]), the ONNX
    LSTM/GRU/RNN figure for the same layer. None for packed sequences."""
    if x is None or x.dim() not in (2, 3):
        return None
    seq_len, batch = (
        (x.shape[0], 1) if x.dim() == 2 else ((x.shape[1], x.shape[0]) if leaf.batch_first else x.shape[:2])
    )
    per_step = sum(
        weight.numel()
        for name, weight in leaf.named_parameters()
        if name.startswith(("weight_ih", "weight_hh", "weight_hr"))
    )
    return int(seq_len) * int(batch) * int(per_step)


def _bytes_of(shapes: list[Shape], dtype: str) -> int | None:
    if any(s is None for s in shapes):
        return None
    return sum(int(np.prod(s)) for s in shapes if s is not None) * np.dtype(dtype).itemsize
