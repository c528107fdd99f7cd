"""int4 weight-only quantization of MatMul/Gemm weights with onnxruntime's MatMulNBits quantizer.

Blockwise 4-bit weights (one scale per block of ``block_size`` values) dequantized inside the
MatMulNBits kernel. Gemm nodes are first rewritten as MatMul + Add so their weights qualify;
convolutions stay float (onnxruntime has no 4-bit convolution).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Literal

import numpy as np
from pydantic import Field

from workbench.errors import PluginError
from workbench.onnx_prep import check_loads, copy_proto, ensure_opset, strip_initializer_inputs
from workbench.plugin import Plugin, PluginKind, PluginParams, Task

if TYPE_CHECKING:
    import onnx

    from workbench.model import Model


class QuantizeInt4Params(PluginParams):
    block_size: Literal[16, 32, 64, 128] = Field(32, description="weights per scale (smaller: more accurate, larger)")
    symmetric: bool = Field(True, description="symmetric blocks (no zero point)")
    exclude: list[str] = Field(default_factory=list, description="node names to keep in float")


class QuantizeInt4(Plugin):
    id = "quantize_int4"
    title = "int4 weight-only (MatMul/Gemm)"
    kind = PluginKind.QUANTIZE
    formats = frozenset({"onnx"})
    Params = QuantizeInt4Params
    description = "4-bit blockwise weights for fully connected layers via onnxruntime's MatMulNBits."

    def apply(self, model: Model, params: QuantizeInt4Params, task: Task) -> Model:  # type: ignore[override]
        from onnxruntime.quantization.matmul_nbits_quantizer import MatMulNBitsQuantizer

        proto = copy_proto(model.to_onnx())
        strip_initializer_inputs(proto)
        proto = ensure_opset(proto, 21, [])
        if not _gemm_to_matmul(proto):
            raise PluginError("no MatMul/Gemm with a constant 2-D weight to quantize to int4")
        task.report(0.3, "quantizing MatMul weights to 4 bits")
        root = logging.getLogger()
        level = root.level
        root.setLevel(logging.ERROR)  # the quantizer logs every node it visits
        try:
            quantizer = MatMulNBitsQuantizer(
                proto,
                bits=4,
                block_size=params.block_size,
                is_symmetric=params.symmetric,
                nodes_to_exclude=params.exclude,
            )
            quantizer.process()
            result = quantizer.model.model
        except Exception as exc:
            raise PluginError(f"int4 quantization failed: {type(exc).__name__}: {str(exc)[:200]}") from None
        finally:
            root.setLevel(level)
        if not any(n.op_type == "MatMulNBits" for n in result.graph.node):
            raise PluginError(
                "no layer qualified for int4 (weights must be 2-D with an input dimension of at least 16)"
            )
        check_loads(result, "int4 quantization")
        return model.derive(onnx_proto=result)


def _gemm_to_matmul(proto: onnx.ModelProto) -> bool:
    """Rewrite Gemm(A, B, C) with a constant B as MatMul(A, Bᵀ) + C; report whether any MatMul qualifies."""
    from onnx import helper, numpy_helper

    inits = {i.name: i for i in proto.graph.initializer}
    nodes, found = [], False
    for node in proto.graph.node:
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        weight = inits.get(node.input[1]) if len(node.input) > 1 else None
        if node.op_type == "MatMul" and weight is not None and len(weight.dims) == 2:
            found = True
        if (
            node.op_type != "Gemm"
            or weight is None
            or attrs.get("transA", 0)
            or attrs.get("alpha", 1.0) != 1.0
            or attrs.get("beta", 1.0) != 1.0
        ):
            nodes.append(node)
            continue
        array = numpy_helper.to_array(weight)
        matrix = array.T if attrs.get("transB", 0) else array
        name = f"{node.input[1]}_kn"
        proto.graph.initializer.append(numpy_helper.from_array(np.ascontiguousarray(matrix), name))
        out = node.output[0] if len(node.input) < 3 else f"{node.output[0]}_matmul"
        nodes.append(helper.make_node("MatMul", [node.input[0], name], [out], name=f"{node.name}_matmul"))
        if len(node.input) >= 3:
            nodes.append(helper.make_node("Add", [out, node.input[2]], [node.output[0]], name=f"{node.name}_bias"))
        found = True
    del proto.graph.node[:]
    proto.graph.node.extend(nodes)
    used = {name for n in proto.graph.node for name in n.input}
    kept = [i for i in proto.graph.initializer if i.name in used]
    del proto.graph.initializer[:]
    proto.graph.initializer.extend(kept)
    return found
