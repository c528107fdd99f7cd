"""Per-layer analysis of ONNX graphs and torch modules: shapes, parameters, sparsity, MACs, bytes.

What cannot be computed (a shape inference could not settle, MACs of a control-flow op) is ``None``
and shown as unknown, never guessed. Every Analysis states the input shapes it used.
"""

from __future__ import annotations

from collections.abc import Iterable
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
# Ops that do multiply-accumulates we do not model: their MACs are unknown rather than zero.
_UNMODELLED_MAC_OPS = {
    "LSTM",
    "GRU",
    "RNN",
    "Einsum",
    "Attention",
    "MultiHeadAttention",
    "If",
    "Loop",
    "Scan",
    "DeformConv",
    "ConvTranspose3D",
    "FunctionCall",
}


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

    @property
    def sparsity(self) -> float | None:
        return None if self.params == 0 else 1.0 - self.nonzero_params / self.params


@dataclass
class Analysis:
    model_name: str
    source_format: str  # "onnx" or "torch"
    input_shapes: InputShapes | None
    layers: list[LayerInfo]
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
        """MACs of the layers whose MACs are known; see :attr:`macs_unknown_layers`."""
        return sum(layer.macs for layer in self.layers if layer.macs is not None)

    @property
    def macs_unknown_layers(self) -> list[str]:
        return [layer.name for layer in self.layers if layer.macs is None]


def analyze(model: Model) -> Analysis:
    """Analyze a model at its settled input shapes (torch modules by hooks, everything else as ONNX)."""
    if model.onnx_proto is None and model.torch_module is not None:
        result = analyze_torch(model)
        if result is not None:
            return result
    return analyze_onnx(model.to_onnx(), model.input_shapes, model.name)


# --- ONNX -----------------------------------------------------------------------------------------
def analyze_onnx(proto: onnx.ModelProto, shapes: InputShapes | None, name: str = "model") -> Analysis:
    from onnx import helper

    notes: list[str] = []
    graph = proto.graph
    weights, decoders = weights_as_computed(proto)
    tensor_info, runtime_refusal = _infer_tensor_info(proto, shapes, notes)

    consumers_seen: set[str] = set()  # a shared weight is counted once, at its first consumer
    layers: list[LayerInfo] = []
    for index, node in enumerate(graph.node):
        if (node.op_type == "Constant" and node.domain in ("", "ai.onnx")) or index in decoders:
            continue  # its value is a weight, counted where it is used
        weight_names = [n for n in _node_inputs_deep(node) if n in weights and n not in consumers_seen]
        consumers_seen.update(weight_names)
        params = nonzero = nbytes = 0
        weight_dtype = None
        for wname in weight_names:
            array = weights[wname]
            params += array.size
            nonzero += int(np.count_nonzero(array))
            nbytes += array.nbytes
            weight_dtype = weight_dtype or array.dtype.name
        in_shapes = [tensor_info.get(i, (None, None))[1] if i else None for i in node.input]
        out_shapes = [tensor_info.get(o, (None, None))[1] for o in node.output]
        out_dtypes = [tensor_info.get(o, (None, None))[0] for o in node.output]
        layers.append(
            LayerInfo(
                name=node.name or f"{node.op_type}_{index}",
                op_type=node.op_type if node.domain in ("", "ai.onnx") else f"{node.domain}.{node.op_type}",
                input_shapes=in_shapes,
                output_shapes=out_shapes,
                params=params,
                nonzero_params=nonzero,
                dtype=weight_dtype or next((d for d in out_dtypes if d), None),
                macs=_onnx_macs(node, in_shapes, out_shapes, weights, helper),
                weight_bytes=nbytes,
                activation_bytes=_total_bytes(out_shapes, out_dtypes),
                weight_names=tuple(weight_names),
            )
        )
    peak, lower_bound = _peak_activation(proto, tensor_info, set(weights))
    if lower_bound:
        notes.append("some activation shapes are unknown: the peak-memory figure is a lower bound")
    unknown = [layer.name for layer in layers if layer.macs is None]
    if unknown:
        notes.append(f"MACs unknown for {len(unknown)} layer(s) (control flow, recurrent or unknown shapes)")
    return Analysis(name, "onnx", shapes, layers, peak, lower_bound, notes, runtime_refusal)


def weights_as_computed(proto: onnx.ModelProto) -> tuple[dict[str, np.ndarray], set[int]]:
    """The weights layers compute with: stored ones, and packed codes or codebooks decoded, so a layer
    shows its own params and sparsity; plus the indices of the decoding nodes."""
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
                if attr.HasField("g"):
                    nested.append(attr.g)
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
    proto: onnx.ModelProto, shapes: InputShapes | None, notes: list[str]
) -> tuple[dict[str, tuple[str | None, Shape]], str | None]:
    """Name → (dtype, concrete shape or None), from ONNX shape inference at the given input shapes, and
    why running the model is unsafe when a test run to settle the rest hit its cap."""
    import onnx
    from onnx import helper, shape_inference

    skeleton = onnx.ModelProto()
    skeleton.CopyFrom(proto)
    for init in skeleton.graph.initializer:
        # Inference needs the values of small tensors (Reshape targets) but only the dims of weights.
        if len(init.raw_data) > 4096:
            init.ClearField("raw_data")
            init.ClearField("data_location")
            del init.external_data[:]
            init.raw_data = b""
    if shapes is not None:
        for vi in skeleton.graph.input:
            if vi.name in shapes.shapes:
                dims = vi.type.tensor_type.shape.dim
                del dims[:]
                for size in shapes.shapes[vi.name]:
                    dims.add().dim_value = int(size)
    del skeleton.graph.value_info[:]
    try:
        inferred = shape_inference.infer_shapes(skeleton, data_prop=True)
    except Exception as exc:
        notes.append(f"shape inference failed ({str(exc).splitlines()[0][:160]}); shapes unknown")
        inferred = skeleton

    info: dict[str, tuple[str | None, Shape]] = {}
    graph = inferred.graph
    for vi in [*graph.input, *graph.value_info, *graph.output]:
        tensor_type = vi.type.tensor_type
        try:
            dtype = helper.tensor_dtype_to_np_dtype(tensor_type.elem_type).name if tensor_type.elem_type else None
        except (KeyError, TypeError):
            dtype = None
        shape: Shape = None
        if tensor_type.HasField("shape"):
            dims = [d.dim_value if d.HasField("dim_value") else -1 for d in tensor_type.shape.dim]
            shape = tuple(dims) if all(d >= 0 for d in dims) else None
        if vi.name not in info or info[vi.name][1] is None:
            info[vi.name] = (dtype, shape)
    for init in proto.graph.initializer:
        info[init.name] = (helper.tensor_dtype_to_np_dtype(init.data_type).name, tuple(init.dims))
    unknown = [
        out
        for node in proto.graph.node
        if node.op_type != "Constant"
        for out in node.output
        if out and info.get(out, (None, None))[1] is None
    ]
    if unknown and shapes is not None:
        return info, _shapes_from_runtime(proto, shapes, unknown, info, notes)
    return info, None


def _shapes_from_runtime(
    proto: onnx.ModelProto,
    shapes: InputShapes,
    names: list[str],
    info: dict[str, tuple[str | None, Shape]],
    notes: list[str],
) -> str | None:
    """Settle shapes static inference left open by running the graph once on zeros at the given shapes.

    The run happens in a capped child process (see :mod:`workbench.shape_probe`). Returns why running
    the model here is unsafe when the run hit the memory or time cap, else None.
    """
    from workbench.onnx_prep import with_outputs
    from workbench.shape_probe import probe_shapes

    result = probe_shapes(with_outputs(proto, names).SerializeToString(), shapes.shapes, names)
    if result.failure is not None:
        notes.append(f"{len(names)} tensor shape(s) unknown (static inference left them open and {result.failure})")
        return result.failure if result.over_budget else None
    for name, (dtype, shape) in result.shapes.items():
        info[name] = (dtype, shape)
    notes.append(f"{len(names)} tensor shape(s) taken from an onnxruntime run at the given input shapes")
    return None


def _onnx_macs(node, in_shapes: list[Shape], out_shapes: list[Shape], weights, helper) -> int | None:
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
    except (IndexError, TypeError):
        return None
    if op in _UNMODELLED_MAC_OPS or node.domain not in ("", "ai.onnx", "com.microsoft"):
        return None
    return 0


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


def _bytes_of(shapes: list[Shape], dtype: str) -> int | None:
    if any(s is None for s in shapes):
        return None
    return sum(int(np.prod(s)) for s in shapes if s is not None) * np.dtype(dtype).itemsize
