"""Per-layer analysis on ONNX graphs and torch modules, including hard real-world graphs."""

from __future__ import annotations

import numpy as np
import pytest

from workbench.analysis import analyze
from workbench.loading import load_model
from workbench.model import InputShapes


def test_mlp_counts_are_exact(mlp_onnx):
    # setup
    model = load_model(mlp_onnx, input_shapes={"x": (4, 16)})
    # execute
    analysis = analyze(model)
    # assert
    gemms = [layer for layer in analysis.layers if layer.op_type == "Gemm"]
    assert [g.params for g in gemms] == [16 * 32 + 32, 32 * 10 + 10]
    assert [g.macs for g in gemms] == [4 * 16 * 32, 4 * 32 * 10]
    assert [g.output_shapes[0] for g in gemms] == [(4, 32), (4, 10)]
    assert gemms[0].activation_bytes == 4 * 32 * 4
    assert analysis.weight_bytes == 4 * (16 * 32 + 32 + 32 * 10 + 10)
    assert analysis.input_shapes.describe() == "x=4x16 (user)"
    assert not analysis.peak_is_lower_bound and analysis.peak_activation_bytes >= 4 * 32 * 4 * 2


def test_sparsity_is_counted_from_the_weights(tmp_path, mlp_onnx):
    import onnx
    from onnx import numpy_helper

    proto = onnx.load(mlp_onnx)
    w0 = numpy_helper.to_array(proto.graph.initializer[0]).copy()
    w0[:, :8] = 0  # half of the first layer's weights
    proto.graph.initializer[0].CopyFrom(numpy_helper.from_array(w0, "w0"))
    onnx.save(proto, tmp_path / "sparse.onnx")
    layer = analyze(load_model(tmp_path / "sparse.onnx")).layers[0]
    assert layer.nonzero_params == 32 * 8 + 32
    assert layer.sparsity == pytest.approx(256 / 544)


def test_torch_and_onnx_views_of_lenet_agree(demo_checkpoint):
    torch_model = load_model(demo_checkpoint)
    by_torch = analyze(torch_model)
    by_onnx = analyze(torch_model.derive(onnx_proto=torch_model.to_onnx()))
    assert by_torch.source_format == "torch" and by_onnx.source_format == "onnx"
    assert by_torch.params == by_onnx.params == 61706
    assert by_torch.macs == by_onnx.macs
    # conv1: 28x28 output, 6 filters of 1x5x5
    conv1 = next(layer for layer in by_torch.layers if layer.op_type == "Conv2d")
    assert conv1.macs == 6 * 28 * 28 * 25 and conv1.output_shapes == [(1, 6, 28, 28)]


def test_real_paddle_model_with_dynamic_dims(paddle_cls_onnx):
    model = load_model(paddle_cls_onnx, input_shapes="1,3,48,192")
    assert model.inputs[0].shape[0] == "?" or model.inputs[0].is_dynamic
    analysis = analyze(model)
    assert analysis.input_shapes.shapes == {"x": (1, 3, 48, 192)}
    assert analysis.params > 100_000  # weights live in Constant nodes and are still counted
    convs = [layer for layer in analysis.layers if layer.op_type == "Conv"]
    assert len(convs) == 53 and all(c.macs and c.macs > 0 for c in convs)
    assert analysis.layers[-1].output_shapes[0] == (1, 2)


def test_input_shape_is_remembered_per_model(paddle_cls_onnx):
    load_model(paddle_cls_onnx, input_shapes="1,3,48,192")
    again = load_model(paddle_cls_onnx)
    assert again.input_shapes.source == "remembered"
    assert again.input_shapes.shapes == {"x": (1, 3, 48, 192)}


def test_old_opset_model_zoo_graphs_analyze(onnx_light_models):
    for path in onnx_light_models:
        analysis = analyze(load_model(path, remember_shapes=False))
        assert analysis.layers, path
        assert analysis.macs > 0, path


def _write(tmp_path, graph, name, opset=17):
    import onnx
    from onnx import helper

    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    path = tmp_path / name
    onnx.save(model, path)
    return path


def test_control_flow_several_inputs_and_int_inputs_mark_unknowns(tmp_path):
    from onnx import TensorProto, helper, numpy_helper

    weight = numpy_helper.from_array(np.ones((4, 4), dtype=np.float32), "w")
    then_graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["then_out"])],
        "then",
        [],
        [helper.make_tensor_value_info("then_out", TensorProto.FLOAT, ["batch", 4])],
    )
    else_graph = helper.make_graph(
        [helper.make_node("Identity", ["x"], ["else_out"])],
        "else",
        [],
        [helper.make_tensor_value_info("else_out", TensorProto.FLOAT, ["batch", 4])],
    )
    graph = helper.make_graph(
        [
            helper.make_node("Cast", ["flag"], ["cond"], to=TensorProto.BOOL),
            helper.make_node("If", ["cond"], ["y"], name="branch", then_branch=then_graph, else_branch=else_graph),
            helper.make_node("Gather", ["y", "ids"], ["z"], name="pick"),
        ],
        "cf",
        [
            helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4]),
            helper.make_tensor_value_info("flag", TensorProto.INT64, []),
            helper.make_tensor_value_info("ids", TensorProto.INT64, ["k"]),
        ],
        [helper.make_tensor_value_info("z", TensorProto.FLOAT, ["k", 4])],
        [weight],
    )
    path = _write(tmp_path, graph, "cf.onnx")
    model = load_model(path, input_shapes="x=2,4;flag=;ids=3")
    analysis = analyze(model)
    branch = next(layer for layer in analysis.layers if layer.name == "branch")
    assert branch.macs == 2 * 4 * 4  # the costlier branch (x @ w); the flag is not known here
    assert branch.params == 0 and analysis.params == 16  # the weight belongs to the MatMul inside the branch
    assert [(row.op_type, row.branch) for row in analysis.children("branch")] == [
        ("MatMul", "then_branch"),
        ("Identity", "else_branch"),
    ]
    assert not analysis.macs_unknown_layers


def test_shapes_given_for_every_analysis(mlp_onnx):
    model = load_model(mlp_onnx).with_input_shapes(InputShapes({"x": (8, 16)}, "user"))
    assert analyze(model).layers[0].output_shapes == [(8, 32)]
