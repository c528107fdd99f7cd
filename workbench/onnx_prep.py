"""Preparing real third-party ONNX graphs for graph-level plugins (quantization, fp16, simplification).

Each step has a fallback, and :func:`check_loads` makes sure no plugin hands back a model that
onnxruntime refuses.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from workbench.errors import PluginError

if TYPE_CHECKING:
    import onnx

log = logging.getLogger(__name__)


def copy_proto(proto: onnx.ModelProto) -> onnx.ModelProto:
    import onnx

    copied = onnx.ModelProto()
    copied.CopyFrom(proto)
    return copied


def with_outputs(proto: onnx.ModelProto, names: list[str]) -> onnx.ModelProto:
    """A copy of ``proto`` that also returns the named intermediate tensors."""
    probe = copy_proto(proto)
    existing = {o.name for o in probe.graph.output}
    for name in names:
        if name not in existing:
            probe.graph.output.add().name = name
    return probe


def default_opset(proto: onnx.ModelProto) -> int:
    return next((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), 0)


def ensure_opset(proto: onnx.ModelProto, minimum: int, notes: list[str]) -> onnx.ModelProto:
    """Raise the default-domain opset to ``minimum`` (per-channel QDQ needs 13) or fail with the reason."""
    from onnx import version_converter

    current = default_opset(proto)
    if current >= minimum:
        return proto
    try:
        converted = version_converter.convert_version(proto, minimum)
    except Exception as exc:
        raise PluginError(
            f"model uses opset {current}; raising it to {minimum} failed ({str(exc).splitlines()[0][:160]})"
        ) from None
    notes.append(f"raised opset {current} → {minimum}")
    return converted


def strip_initializer_inputs(proto: onnx.ModelProto) -> None:
    """Old exporters list weights as graph inputs; tools then treat them as user inputs. Constant-node
    weights become initializers too, so every weight sits where graph-editing plugins look."""
    constants_to_initializers(proto)
    weights = {init.name for init in proto.graph.initializer}
    kept = [vi for vi in proto.graph.input if vi.name not in weights]
    if len(kept) != len(proto.graph.input):
        del proto.graph.input[:]
        proto.graph.input.extend(kept)
    kept_vi = [vi for vi in proto.graph.value_info if vi.name not in weights]
    del proto.graph.value_info[:]
    proto.graph.value_info.extend(kept_vi)


def constants_to_initializers(proto: onnx.ModelProto) -> None:
    """Some exporters (Paddle, caffe2) keep weights in Constant nodes; make the multi-element ones initializers
    so weight-editing plugins see them."""
    kept = []
    for node in proto.graph.node:
        value = next((a.t for a in node.attribute if a.name == "value" and a.HasField("t")), None)
        size = 1
        for dim in value.dims if value is not None else ():
            size *= dim
        if node.op_type == "Constant" and node.domain in ("", "ai.onnx") and value is not None and size > 1:
            tensor = proto.graph.initializer.add()
            tensor.CopyFrom(value)
            tensor.name = node.output[0]
        else:
            kept.append(node)
    if len(kept) != len(proto.graph.node):
        del proto.graph.node[:]
        proto.graph.node.extend(kept)


def simplify(proto: onnx.ModelProto, notes: list[str]) -> onnx.ModelProto:
    """onnxslim: constant folding, dead-node removal, Conv+BN fusion; the input graph if it fails."""
    import onnxslim

    try:
        slimmed = onnxslim.slim(copy_proto(proto))
    except Exception as exc:
        notes.append(f"simplification skipped ({type(exc).__name__}: {str(exc).splitlines()[0][:120]})")
        return proto
    if slimmed is None or len(slimmed.graph.node) == 0:
        notes.append("simplification skipped (onnxslim returned no graph)")
        return proto
    return slimmed


def infer_shapes(proto: onnx.ModelProto, notes: list[str]) -> onnx.ModelProto:
    """Shape inference for the quantizer: ORT's symbolic inference, then ONNX's, then none."""
    try:
        from onnxruntime.tools.symbolic_shape_infer import SymbolicShapeInference

        inferred = SymbolicShapeInference.infer_shapes(copy_proto(proto), auto_merge=True)
        if inferred is not None:
            return inferred
    except Exception as exc:
        log.info("symbolic shape inference failed: %s", exc)
    try:
        import onnx

        return onnx.shape_inference.infer_shapes(proto)
    except Exception as exc:
        notes.append(f"shape inference failed ({str(exc).splitlines()[0][:120]}); quantizing without shapes")
        return proto


def check_loads(proto: onnx.ModelProto, what: str) -> None:
    """Refuse to return a model onnxruntime cannot load."""
    from workbench.errors import WorkbenchError
    from workbench.runtime import make_session

    try:
        make_session(proto.SerializeToString())
    except WorkbenchError as exc:
        raise PluginError(f"{what} produced a model onnxruntime cannot load: {exc.reason}") from None


def fuse_hard_swish(proto: onnx.ModelProto, notes: list[str]) -> onnx.ModelProto:
    """Replace exporters' spelled-out hard-swish, x·clip(x+3, 0, 6)/6 (Paddle, older torch exports), by
    onnxruntime's single HardSwish kernel (opset 14): four passes over the activations become one, which
    on small MobileNets is a third of the latency. Outputs change by float rounding only."""
    if not _hard_swish_patterns(proto.graph)[0]:
        return proto
    fused = ensure_opset(copy_proto(proto), 14, notes)
    replaced, removed = _hard_swish_patterns(fused.graph)
    nodes = [replaced.get(i, node) for i, node in enumerate(fused.graph.node) if i not in removed]
    del fused.graph.node[:]
    fused.graph.node.extend(nodes)
    notes.append(f"fused {len(replaced)} spelled-out hard-swish activations into HardSwish")
    return fused


def _hard_swish_patterns(graph: onnx.GraphProto) -> tuple[dict[int, onnx.NodeProto], set[int]]:
    """Div(Mul(x, Clip(Add(x, 3), 0, 6)), 6) chains whose inner results nothing else reads: the HardSwish
    node replacing each Div, and the Mul, Clip and Add nodes that go, by position in the graph."""
    from onnx import helper, numpy_helper

    constants = {init.name: numpy_helper.to_array(init) for init in graph.initializer}
    for node in graph.node:
        if node.op_type == "Constant" and node.attribute and node.attribute[0].HasField("t"):
            constants[node.output[0]] = numpy_helper.to_array(node.attribute[0].t)
    producer = {out: index for index, node in enumerate(graph.node) for out in node.output}
    uses: dict[str, int] = {}
    for node in graph.node:
        for name in node.input:
            uses[name] = uses.get(name, 0) + 1
    for output in graph.output:
        uses[output.name] = uses.get(output.name, 0) + 2  # a graph output is never an inner step

    def scalar(name: str, value: float) -> bool:
        array = constants.get(name)
        return array is not None and array.size == 1 and float(array.reshape(-1)[0]) == value

    def single(name: str, op: str) -> int | None:
        index = producer.get(name)
        found = index is not None and graph.node[index].op_type == op and uses.get(name) == 1
        return index if found else None

    def clip_bounds(clip) -> bool:
        if len(clip.input) >= 3:
            return scalar(clip.input[1], 0.0) and scalar(clip.input[2], 6.0)
        attrs = {a.name: helper.get_attribute_value(a) for a in clip.attribute}
        return attrs.get("min") == 0.0 and attrs.get("max") == 6.0

    nodes = graph.node
    replaced: dict[int, onnx.NodeProto] = {}
    removed: set[int] = set()
    for position, div in enumerate(nodes):
        if div.op_type != "Div" or not scalar(div.input[1], 6.0):
            continue
        mul = single(div.input[0], "Mul")
        if mul is None:
            continue
        for x_index in (0, 1):
            clip = single(nodes[mul].input[1 - x_index], "Clip")
            add = single(nodes[clip].input[0], "Add") if clip is not None and clip_bounds(nodes[clip]) else None
            x = nodes[mul].input[x_index]
            if add is None or x not in nodes[add].input:
                continue
            if not scalar(nodes[add].input[1 - list(nodes[add].input).index(x)], 3.0):
                continue
            replaced[position] = helper.make_node("HardSwish", [x], [div.output[0]], name=div.name)
            removed |= {mul, clip, add}
            break
    return replaced, removed
