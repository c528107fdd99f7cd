"""Lossless compaction of the ONNX files the workbench writes.

Names, value_info, doc strings, duplicate initializers and all-zero default zero points can be a quarter
of a small model's bytes while the runtime needs none of them. :func:`compact` drops them and gives
every tensor and node a short name assigned in graph order, so compaction is deterministic and
idempotent (compacting a restored model gives the same bytes). Graph inputs and outputs keep their names:
they are the model's interface. The returned :class:`NameMap` restores the original names for the layer
table, sensitivity, exclusions and overlays; values are never touched, so outputs stay bit-identical and
sparsity survives.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from pydantic import BaseModel, Field

if TYPE_CHECKING:
    import onnx

_ALPHABET = "0123456789abcdefghijklmnopqrstuvwxyz"


class NameMap(BaseModel):
    """Short name → original name, for tensors and for nodes (separate namespaces in ONNX)."""

    tensors: dict[str, str] = Field(default_factory=dict)
    nodes: dict[str, str] = Field(default_factory=dict)

    def original(self, name: str) -> str:
        return self.nodes.get(name) or self.tensors.get(name) or name


def short_name(index: int) -> str:
    text = ""
    while True:
        index, digit = divmod(index, len(_ALPHABET))
        text = _ALPHABET[digit] + text
        if index == 0:
            return text


def compact(proto: onnx.ModelProto) -> tuple[onnx.ModelProto, NameMap]:
    """A compacted copy of ``proto`` and the map back to its names. The input is left as it was."""
    import onnx

    model = onnx.ModelProto()
    model.CopyFrom(proto)
    model.doc_string = ""
    graph = model.graph
    _drop_default_zero_points(graph)
    _deduplicate_initializers(graph)
    for sub in _graphs(graph):
        del sub.value_info[:]
        sub.doc_string = ""
        for node in sub.node:
            node.doc_string = ""
    _drop_unused_initializers(graph)
    return model, _rename(model)


def restore_names(proto: onnx.ModelProto, names: NameMap) -> onnx.ModelProto:
    """A copy of a compacted ``proto`` with its original tensor and node names back."""
    import onnx

    model = onnx.ModelProto()
    model.CopyFrom(proto)
    if names.tensors or names.nodes:
        count = sum(len(sub.node) for sub in _graphs(model.graph))
        originals = [names.nodes.get(short_name(i), "") for i in range(count)]
        _apply_names(model.graph, names.tensors, node_names=originals)
    return model


def _graphs(graph: onnx.GraphProto) -> Iterator[onnx.GraphProto]:
    """``graph`` and every subgraph (If branches, Loop and Scan bodies), outermost first."""
    yield graph
    for node in graph.node:
        for attribute in node.attribute:
            if attribute.HasField("g"):
                yield from _graphs(attribute.g)
            for sub in attribute.graphs:
                yield from _graphs(sub)


def _drop_default_zero_points(graph: onnx.GraphProto) -> None:
    """DequantizeLinear's zero point defaults to 0 of its input's type: an all-zero one is redundant.

    QuantizeLinear's zero point also sets its output type, so only a uint8 one (the default type) without
    an ``output_dtype`` attribute may go.
    """
    from onnx import TensorProto, numpy_helper

    initializers = {init.name: init for init in graph.initializer}
    for node in graph.node:
        if node.op_type not in ("DequantizeLinear", "QuantizeLinear") or node.domain not in ("", "ai.onnx"):
            continue
        if len(node.input) != 3 or node.input[2] not in initializers:
            continue
        zero = initializers[node.input[2]]
        if node.op_type == "QuantizeLinear" and (
            zero.data_type != TensorProto.UINT8 or any(a.name == "output_dtype" for a in node.attribute)
        ):
            continue
        if zero.data_type in (TensorProto.INT4, TensorProto.UINT4, TensorProto.INT2, TensorProto.UINT2):
            continue  # numpy_helper unpacks these; leave them rather than risk a wrong reading
        if not numpy_helper.to_array(zero).any():
            del node.input[2]


def _deduplicate_initializers(graph: onnx.GraphProto) -> None:
    """Identical initializers (same type, shape and bytes) become one; references move to the first."""
    reserved = {i.name for i in graph.input} | {o.name for o in graph.output}
    first: dict[bytes, str] = {}
    replaced: dict[str, str] = {}
    for init in graph.initializer:
        if init.name in reserved:
            continue
        key = _initializer_key(init)
        if key in first:
            replaced[init.name] = first[key]
        else:
            first[key] = init.name
    if replaced:
        _apply_names(graph, replaced, rename_definitions=False)


def _initializer_key(init: onnx.TensorProto) -> bytes:
    import onnx

    copy = onnx.TensorProto()
    copy.CopyFrom(init)
    copy.name = ""
    copy.doc_string = ""
    return copy.SerializeToString(deterministic=True)


def _drop_unused_initializers(graph: onnx.GraphProto) -> None:
    used = {name for sub in _graphs(graph) for node in sub.node for name in node.input}
    used |= {o.name for o in graph.output} | {i.name for i in graph.input}
    kept = [init for init in graph.initializer if init.name in used]
    if len(kept) != len(graph.initializer):
        del graph.initializer[:]
        graph.initializer.extend(kept)


def _rename(model: onnx.ModelProto) -> NameMap:
    """Short names in order of definition: initializers, then node outputs, subgraphs in place."""
    graph = model.graph
    reserved = {i.name for i in graph.input} | {o.name for o in graph.output} | {""}
    tensors: dict[str, str] = {}  # original → short
    node_names: list[str] = []  # originals, by position
    counter = iter(range(1 << 62))

    def define(name: str) -> None:
        if name in reserved or name in tensors:
            return
        while (short := short_name(next(counter))) in reserved:
            pass
        tensors[name] = short

    for sub in _graphs(graph):
        for init in sub.initializer:
            define(init.name)
        if sub is not graph:
            for value in [*sub.input, *sub.output]:
                define(value.name)
        for node in sub.node:
            for output in node.output:
                define(output)
            node_names.append(node.name)
    # Unnamed nodes get a short name too: one stable identity per node.
    _apply_names(graph, tensors, node_names=[short_name(i) for i in range(len(node_names))])
    return NameMap(
        tensors={short: original for original, short in tensors.items()},
        nodes={short_name(i): name for i, name in enumerate(node_names) if name},
    )


def _apply_names(
    graph: onnx.GraphProto,
    tensors: dict[str, str],
    *,
    rename_definitions: bool = True,
    node_names: list[str] | None = None,
) -> None:
    """Rename tensors everywhere (graphs, subgraphs, references) and, given ``node_names``, nodes by position."""
    position = 0
    for sub in _graphs(graph):
        if rename_definitions:
            for init in sub.initializer:
                init.name = tensors.get(init.name, init.name)
            for value in [*sub.input, *sub.output, *sub.value_info]:
                value.name = tensors.get(value.name, value.name)
        for node in sub.node:
            node.input[:] = [tensors.get(name, name) for name in node.input]
            if rename_definitions:
                node.output[:] = [tensors.get(name, name) for name in node.output]
            if node_names is not None:
                node.name = node_names[position]
            position += 1
