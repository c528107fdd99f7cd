"""Low-rank factorization (truncated SVD) of Conv, Gemm and MatMul weights, by rank ratio or kept energy.

A [out × in] weight becomes [out × r]·[r × in]: Gemm/MatMul turn into two matrix products, a k×k Conv
into a k×k Conv with r filters followed by a 1×1 Conv. A layer is factorized only when that saves
parameters, i.e. r < out·in / (out + in).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

import numpy as np
from pydantic import Field

from workbench.errors import PluginError
from workbench.onnx_prep import check_loads, copy_proto, strip_initializer_inputs
from workbench.plugin import Plugin, PluginKind, PluginParams, Task
from workbench.weight_codec import refuse_subgraph_weights, subgraph_weight_slots

if TYPE_CHECKING:
    import onnx

    from workbench.model import Model


class LowRankParams(PluginParams):
    criterion: Literal["rank_ratio", "energy"] = Field(
        "energy",
        description="rank_ratio: keep that fraction of each layer's full rank; energy: keep the "
        "smallest rank whose singular values hold that fraction of the squared sum",
    )
    rank_ratio: float = Field(
        0.25,
        ge=0.01,
        le=1.0,
        description="fraction of the full rank kept (rank_ratio)",
        json_schema_extra={"shrinks": "down"},
    )
    energy: float = Field(
        0.9,
        ge=0.5,
        le=0.9999,
        description="fraction of spectral energy kept (energy)",
        json_schema_extra={"shrinks": "down"},
    )
    min_params: int = Field(
        1024,
        ge=0,
        le=1_000_000,
        description="skip layers with fewer weights than this",
        json_schema_extra={"tune": False},
    )
    exclude: list[str] = Field(default_factory=list, description="node names to leave untouched")


class LowRank(Plugin):
    id = "low_rank"
    title = "Low-rank factorization (SVD)"
    kind = PluginKind.FACTORIZE
    formats = frozenset({"onnx"})
    Params = LowRankParams
    description = "Split Conv/Gemm/MatMul weights into two thin factors with a truncated SVD."

    def apply(self, model: Model, params: LowRankParams, task: Task) -> Model:  # type: ignore[override]
        from onnx import helper, numpy_helper

        proto = copy_proto(model.to_onnx())
        strip_initializer_inputs(proto)
        inits = {i.name: i for i in proto.graph.initializer}
        uses: dict[str, int] = {}
        for node in proto.graph.node:
            for name in node.input:
                uses[name] = uses.get(name, 0) + 1
        new_nodes, factorized = [], 0
        for node in proto.graph.node:
            task.check()
            replacement = None
            weight_name = node.input[1] if len(node.input) > 1 else ""
            if node.name not in params.exclude and weight_name in inits and uses.get(weight_name) == 1:
                weight = numpy_helper.to_array(inits[weight_name])
                if weight.dtype == np.float32 and weight.size >= params.min_params:
                    replacement = _factorize(node, weight, params, proto, helper, numpy_helper)
            if replacement is None:
                new_nodes.append(node)
            else:
                new_nodes.extend(replacement)
                factorized += 1
        if not factorized:
            refuse_subgraph_weights(proto, "factorized by low_rank (it rewrites the main graph's layers)")
            raise PluginError("no layer was worth factorizing at these settings (the rank would not save weights)")
        inside = subgraph_weight_slots(proto)
        if inside:
            task.note(f"{len(inside)} weight(s) inside If/Loop/Scan subgraphs are left as they are (not factorized)")
        del proto.graph.node[:]
        proto.graph.node.extend(new_nodes)
        used = {name for node in proto.graph.node for name in node.input}
        kept = [i for i in proto.graph.initializer if i.name in used]
        del proto.graph.initializer[:]
        proto.graph.initializer.extend(kept)
        check_loads(proto, "low-rank factorization")
        return model.derive(onnx_proto=proto)


def choose_rank(singular: np.ndarray, rows: int, cols: int, params: LowRankParams) -> int | None:
    if params.criterion == "rank_ratio":
        rank = max(1, round(params.rank_ratio * len(singular)))
    else:
        energy = np.cumsum(singular.astype(np.float64) ** 2) / max(
            float(np.sum(singular.astype(np.float64) ** 2)), 1e-30
        )
        rank = int(np.searchsorted(energy, params.energy) + 1)
    return rank if rank * (rows + cols) < rows * cols else None


def _factorize(node, weight, params, proto: onnx.ModelProto, helper, numpy_helper) -> list | None:
    op = node.op_type
    attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
    if op == "Gemm" and not attrs.get("transA", 0):
        matrix = weight if attrs.get("transB", 0) else weight.T  # as [out, in]
    elif op == "MatMul" and weight.ndim == 2:
        matrix = weight.T
    elif op == "Conv" and attrs.get("group", 1) == 1 and weight.ndim == 4:
        matrix = weight.reshape(weight.shape[0], -1)
    else:
        return None
    u, s, vt = np.linalg.svd(matrix.astype(np.float64), full_matrices=False)
    rank = choose_rank(s, *matrix.shape, params)
    if rank is None:
        return None
    left = (u[:, :rank] * s[:rank]).astype(np.float32)  # [out, r]
    right = vt[:rank].astype(np.float32)  # [r, in]
    base = node.name or f"{op}_{node.output[0]}"
    mid = f"{base}_lowrank_mid"
    names = (f"{base}_lowrank_in", f"{base}_lowrank_out")
    if op == "Conv":
        first_w = right.reshape(rank, *weight.shape[1:])
        second_w = left.reshape(weight.shape[0], rank, 1, 1)
        proto.graph.initializer.extend(
            [numpy_helper.from_array(first_w, names[0]), numpy_helper.from_array(second_w, names[1])]
        )
        first = helper.make_node(
            "Conv",
            [node.input[0], names[0]],
            [mid],
            name=f"{base}_lr1",
            **{k: v for k, v in attrs.items() if k != "group"},
        )
        second = helper.make_node("Conv", [mid, names[1], *node.input[2:]], list(node.output), name=f"{base}_lr2")
        return [first, second]
    proto.graph.initializer.extend(
        [
            numpy_helper.from_array(right.T.copy(), names[0]),  # [in, r]
            numpy_helper.from_array(left.T.copy(), names[1]),
        ]
    )  # [r, out]
    first = helper.make_node("MatMul", [node.input[0], names[0]], [mid], name=f"{base}_lr1")
    if op == "Gemm":
        alpha, beta = attrs.get("alpha", 1.0), attrs.get("beta", 1.0)
        second = helper.make_node(
            "Gemm", [mid, names[1], *node.input[2:]], list(node.output), name=f"{base}_lr2", alpha=alpha, beta=beta
        )
    else:
        second = helper.make_node("MatMul", [mid, names[1]], list(node.output), name=f"{base}_lr2")
    return [first, second]
