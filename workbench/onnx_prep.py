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
