"""Lossless compaction: real third-party models run bit-identically, names come back, nothing densifies."""

from __future__ import annotations

import glob
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

from workbench.compaction import compact, restore_names
from workbench.loading import load_model
from workbench.plugin import Task, discover_plugins, run_plugin
from workbench.project import Project


def _outputs(data: bytes, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
    session = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    return session.run(None, feeds)


def _random_feeds(proto: onnx.ModelProto, fixed: dict[int, int]) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    feeds = {}
    for value in proto.graph.input:
        dims = [
            d.dim_value if d.dim_value > 0 else fixed.get(i, 1) for i, d in enumerate(value.type.tensor_type.shape.dim)
        ]
        feeds[value.name] = rng.random(dims, dtype=np.float32)
    return feeds


def test_compact_is_bit_identical_smaller_and_idempotent_on_real_models(paddle_cls_onnx: Path) -> None:
    # setup: PaddleOCR's classifier and recognizer, as shipped (opset 11, long p2o.* names)
    rec = glob.glob(str(paddle_cls_onnx.parent / "ch_PP-OCRv4_rec_infer.onnx"))
    for path, fixed in [(paddle_cls_onnx, {2: 48, 3: 192}), *[(Path(p), {2: 48, 3: 320}) for p in rec]]:
        original = onnx.load(str(path))
        before = original.SerializeToString()
        # execute
        compacted, names = compact(original)
        data = compacted.SerializeToString(deterministic=True)
        # assert
        assert original.SerializeToString() == before, "compaction must not edit its argument"
        assert len(data) < len(before)
        feeds = _random_feeds(original, fixed)
        for want, got in zip(_outputs(before, feeds), _outputs(data, feeds), strict=True):
            assert np.array_equal(want, got), f"{path.name}: outputs changed"
        restored = restore_names(compacted, names)
        assert [n.name for n in restored.graph.node] == [n.name for n in original.graph.node]
        assert compact(restored)[0].SerializeToString(deterministic=True) == data


def test_weight_only_int8_loses_value_info_names_and_zero_points(paddle_cls_onnx: Path) -> None:
    # setup: the case: onnxslim leaves value_info, the int8 weights carry all-zero zero points
    model = load_model(paddle_cls_onnx, input_shapes="1,3,48,192", remember_shapes=False)
    quantized = run_plugin(discover_plugins().get("quantize_int8"), model, {"mode": "weight_only"}, Task())
    proto = quantized.to_onnx()
    assert len(proto.graph.value_info) > 0
    # execute
    data = quantized.artifact_bytes()
    compacted = onnx.load_from_string(data)
    # assert
    assert not compacted.graph.value_info
    assert all(len(n.input) == 2 for n in compacted.graph.node if n.op_type == "DequantizeLinear")
    assert len(data) < 0.85 * len(quantized.onnx_bytes())
    feeds = _random_feeds(proto, {2: 48, 3: 192})
    options = ort.SessionOptions()
    options.add_session_config_entry("session.disable_quant_qdq", "1")
    runs = [
        ort.InferenceSession(b, options, providers=["CPUExecutionProvider"]).run(None, feeds)
        for b in (quantized.onnx_bytes(), data)
    ]
    assert all(np.array_equal(a, b) for a, b in zip(*runs, strict=True))


def _twin_weight_model() -> onnx.ModelProto:
    """Two MatMuls sharing identical (but separately stored) sparse weights, inside and outside an If."""
    rng = np.random.default_rng(1)
    weight = rng.standard_normal((8, 8)).astype(np.float32)
    weight[np.abs(weight) < 1.0] = 0.0
    then_branch = helper.make_graph(
        [helper.make_node("MatMul", ["h", "weight_b"], ["then_out"], name="then_matmul")],
        "then",
        [],
        [helper.make_tensor_value_info("then_out", TensorProto.FLOAT, [1, 8])],
    )
    else_branch = helper.make_graph(
        [helper.make_node("Relu", ["h"], ["else_out"], name="else_relu")],
        "else",
        [],
        [helper.make_tensor_value_info("else_out", TensorProto.FLOAT, [1, 8])],
    )
    graph = helper.make_graph(
        [
            helper.make_node("MatMul", ["x", "weight_a"], ["h"], name="first_matmul"),
            helper.make_node("If", ["flag"], ["y"], name="branch", then_branch=then_branch, else_branch=else_branch),
        ],
        "twins",
        [
            helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 8]),
            helper.make_tensor_value_info("flag", TensorProto.BOOL, []),
        ],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 8])],
        [numpy_helper.from_array(weight, "weight_a"), numpy_helper.from_array(weight.copy(), "weight_b")],
        value_info=[helper.make_tensor_value_info("h", TensorProto.FLOAT, [1, 8])],
    )
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    proto.ir_version = 8
    return proto


def test_duplicates_merge_subgraphs_follow_and_sparsity_survives() -> None:
    proto = _twin_weight_model()
    compacted, names = compact(proto)
    # assert: one weight left, referenced from the branch too, with its zeros intact
    assert len(compacted.graph.initializer) == 1
    kept = numpy_helper.to_array(compacted.graph.initializer[0])
    original = numpy_helper.to_array(proto.graph.initializer[0])
    assert np.array_equal(kept == 0, original == 0) and (kept == 0).mean() > 0.5
    assert names.tensors[compacted.graph.initializer[0].name] == "weight_a"
    x = np.random.default_rng(2).standard_normal((1, 8)).astype(np.float32)
    for flag in (True, False):
        feeds = {"x": x, "flag": np.array(flag)}
        assert np.array_equal(
            _outputs(proto.SerializeToString(), feeds)[0],
            _outputs(compacted.SerializeToString(deterministic=True), feeds)[0],
        )
    assert [i.name for i in compacted.graph.input] == ["x", "flag"] and compacted.graph.output[0].name == "y"


def test_project_stores_compact_files_and_shows_original_names(tmp_path: Path, paddle_cls_onnx: Path) -> None:
    model = load_model(paddle_cls_onnx, input_shapes="1,3,48,192", remember_shapes=False)
    project = Project.create(tmp_path / "p", model)
    stored = onnx.load(str(project.artifact_path(project.root.id)))
    loaded = project.load_model(project.root.id)
    # assert: the file on disk is compacted, the model the workbench works on has the original names
    assert len(project.artifact_path(project.root.id).read_bytes()) < len(model.onnx_bytes())
    assert {n.name for n in stored.graph.node}.isdisjoint({n.name for n in model.to_onnx().graph.node})
    assert [n.name for n in loaded.to_onnx().graph.node] == [n.name for n in model.to_onnx().graph.node]
    assert loaded.artifact_bytes() == project.artifact_path(project.root.id).read_bytes()
    plugins = discover_plugins()
    simplified = project.apply(project.root.id, plugins.get("simplify_graph"), {})  # names PaddleOCR's nodes
    excluded = next(n.name for n in project.load_model(simplified.id).to_onnx().graph.node if n.op_type == "Conv")
    variant = project.apply(simplified.id, plugins.get("quantize_int8"), {"mode": "weight_only", "exclude": [excluded]})
    quantized = project.load_model(variant.id).to_onnx()
    conv = next(n for n in quantized.graph.node if n.name == excluded)  # exclusions name original layers
    assert conv.op_type == "Conv" and not any(n.output[0] == conv.input[1] for n in quantized.graph.node)
