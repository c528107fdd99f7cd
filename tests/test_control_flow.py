"""Control flow and recurrent layers: If/Loop/Scan subgraphs as nested rows with their weights counted once
and their MACs per branch, LSTM/GRU/RNN MACs from W/R shapes, and weight plugins that reach weights inside
an If (or refuse, naming why). Every model is built here with onnx.helper; expected figures are computed
in the tests from the shapes, independently of the analysis."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper
from workbench.plugins.low_bit_weights import LowBitWeights
from workbench.plugins.magnitude_prune import MagnitudePrune
from workbench.plugins.quantize_int4 import QuantizeInt4
from workbench.plugins.quantize_int8 import QuantizeInt8
from workbench.plugins.weight_sharing import WeightSharing

from workbench.analysis import analyze, analyze_onnx
from workbench.errors import PluginError
from workbench.loading import load_model
from workbench.plugin import Task, run_plugin
from workbench.shape_values import fold_shape_values

RNG = np.random.default_rng(0)


def _weight(name: str, *shape: int) -> onnx.TensorProto:
    return numpy_helper.from_array(RNG.standard_normal(shape).astype(np.float32), name)


def _save(tmp_path, graph, name: str, opset: int = 17):
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    onnx.checker.check_model(model, full_check=True)
    path = tmp_path / name
    onnx.save(model, path)
    return path


def _branching_graph() -> onnx.GraphProto:
    """x [1,3,8,8] → stem Conv (main graph) → If(flag):
    then: Conv with its own initializer → Relu → Flatten → MatMul by the outer ``shared`` weight;
    else: Flatten → MatMul by ``shared`` plus MatMul by a weight held in a Constant node (inlined exporters)."""
    then_graph = helper.make_graph(
        [
            helper.make_node("Conv", ["h", "then_w"], ["t1"], name="then_conv", pads=[1, 1, 1, 1]),
            helper.make_node("Relu", ["t1"], ["t2"], name="then_relu"),
            helper.make_node("Flatten", ["t2"], ["t3"], name="then_flat"),
            helper.make_node("MatMul", ["t3", "shared"], ["then_out"], name="then_fc"),
        ],
        "then",
        [],
        [helper.make_tensor_value_info("then_out", TensorProto.FLOAT, None)],
        [_weight("then_w", 4, 4, 3, 3)],
    )
    else_graph = helper.make_graph(
        [
            helper.make_node("Constant", [], ["else_w"], value=_weight("else_w_value", 256, 10)),
            helper.make_node("Flatten", ["h"], ["e1"], name="else_flat"),
            helper.make_node("MatMul", ["e1", "shared"], ["e2"], name="else_fc_shared"),
            helper.make_node("MatMul", ["e1", "else_w"], ["e3"], name="else_fc_own"),
            helper.make_node("Add", ["e2", "e3"], ["else_out"], name="else_add"),
        ],
        "else",
        [],
        [helper.make_tensor_value_info("else_out", TensorProto.FLOAT, None)],
    )
    return helper.make_graph(
        [
            helper.make_node("Conv", ["x", "stem_w"], ["h"], name="stem", pads=[1, 1, 1, 1]),
            helper.make_node("If", ["flag"], ["y"], name="gate", then_branch=then_graph, else_branch=else_graph),
        ],
        "branching",
        [
            helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8]),
            helper.make_tensor_value_info("flag", TensorProto.BOOL, []),
        ],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 10])],
        [_weight("stem_w", 4, 3, 3, 3), _weight("shared", 256, 10)],
    )


# MACs of the branching model, from its shapes: a Conv's output elements × its weights per output.
STEM_MACS = (4 * 8 * 8) * (3 * 3 * 3)
THEN_MACS = (4 * 8 * 8) * (4 * 3 * 3) + 256 * 10
ELSE_MACS = 2 * (256 * 10)
BRANCHING_PARAMS = 4 * 3 * 3 * 3 + 4 * 4 * 3 * 3 + 256 * 10 + 256 * 10


@pytest.fixture
def branching(tmp_path):
    return load_model(_save(tmp_path, _branching_graph(), "branching.onnx"), input_shapes="x=1,3,8,8;flag=")


def _run(proto: onnx.ModelProto, x: np.ndarray, flag: bool) -> np.ndarray:
    options = ort.SessionOptions()
    options.add_session_config_entry("session.disable_quant_qdq", "1")
    session = ort.InferenceSession(proto.SerializeToString(), options, providers=["CPUExecutionProvider"])
    return session.run(None, {"x": x, "flag": np.array(flag)})[0]


def test_if_branches_are_nested_rows_with_weights_counted_once(branching):
    analysis = analyze(branching)
    gate = next(layer for layer in analysis.layers if layer.name == "gate")
    rows = [(layer.name, layer.parent, layer.branch, layer.depth) for layer in analysis.layers]
    assert rows == [
        ("stem", None, None, 0),
        ("gate", None, None, 0),
        ("then_conv", "gate", "then_branch", 1),
        ("then_relu", "gate", "then_branch", 1),
        ("then_flat", "gate", "then_branch", 1),
        ("then_fc", "gate", "then_branch", 1),
        ("else_flat", "gate", "else_branch", 1),
        ("else_fc_shared", "gate", "else_branch", 1),
        ("else_fc_own", "gate", "else_branch", 1),
        ("else_add", "gate", "else_branch", 1),
    ]
    by_name = {layer.name: layer for layer in analysis.layers}
    assert gate.params == 0  # no opaque lump: the branches' layers hold their weights
    assert by_name["then_conv"].params == 4 * 4 * 3 * 3 and by_name["then_conv"].weight_names == ("then_w",)
    assert by_name["then_fc"].params == 256 * 10  # the outer weight, at its first reader
    assert by_name["else_fc_shared"].params == 0  # ... and not again in the other branch
    assert by_name["else_fc_own"].weight_names == ("else_w",)  # a Constant node's value is a weight too
    assert analysis.params == BRANCHING_PARAMS
    assert analysis.weight_bytes == 4 * BRANCHING_PARAMS
    assert [row.name for row in analysis.children("gate")][:2] == ["then_conv", "then_relu"]


def test_if_macs_are_per_branch_and_the_row_counts_the_costlier(branching):
    analysis = analyze(branching)
    by_name = {layer.name: layer for layer in analysis.layers}
    gate = by_name["gate"]
    assert gate.branch_macs == {"then_branch": THEN_MACS, "else_branch": ELSE_MACS}
    assert gate.macs == max(THEN_MACS, ELSE_MACS) and gate.branch_taken is None
    assert by_name["then_conv"].macs == (4 * 8 * 8) * (4 * 3 * 3)
    assert by_name["then_conv"].output_shapes == [(1, 4, 8, 8)]  # shapes inside the subgraph
    assert by_name["then_conv"].activation_bytes == 4 * 8 * 8 * 4
    assert analysis.macs == STEM_MACS + THEN_MACS  # the branches count through the If row, once
    assert not analysis.macs_unknown_layers


def test_if_row_counts_the_branch_a_constant_condition_takes(branching):
    analysis = analyze_onnx(branching.to_onnx(), branching.input_shapes, constants={"flag": np.array(False)})
    gate = next(layer for layer in analysis.layers if layer.name == "gate")
    assert gate.branch_taken == "else_branch" and gate.macs == ELSE_MACS
    assert analysis.macs == STEM_MACS + ELSE_MACS


def test_loop_macs_are_the_body_times_a_constant_trip_count(tmp_path):
    trips = 3
    body = helper.make_graph(
        [
            helper.make_node("Identity", ["cond_in"], ["cond_out"]),
            helper.make_node("MatMul", ["v_in", "loop_w"], ["v_out"], name="step"),
        ],
        "body",
        [
            helper.make_tensor_value_info("i", TensorProto.INT64, []),
            helper.make_tensor_value_info("cond_in", TensorProto.BOOL, []),
            helper.make_tensor_value_info("v_in", TensorProto.FLOAT, [1, 8]),
        ],
        [
            helper.make_tensor_value_info("cond_out", TensorProto.BOOL, []),
            helper.make_tensor_value_info("v_out", TensorProto.FLOAT, [1, 8]),
        ],
    )
    graph = helper.make_graph(
        [
            helper.make_node("Constant", [], ["trips"], value=numpy_helper.from_array(np.array(trips, np.int64))),
            helper.make_node("Constant", [], ["go"], value=numpy_helper.from_array(np.array(True))),
            helper.make_node("Loop", ["trips", "go", "x"], ["y"], name="repeat", body=body),
        ],
        "looping",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 8])],
        [_weight("loop_w", 8, 8)],
    )
    analysis = analyze(load_model(_save(tmp_path, graph, "loop.onnx")))
    repeat = analysis.layers[0]
    step = next(layer for layer in analysis.layers if layer.name == "step")
    assert (step.parent, step.branch, step.depth) == ("repeat", "body", 1)
    assert step.macs == 8 * 8 and step.params == 8 * 8 and "loop_w" not in repeat.weight_names
    assert repeat.branch_macs == {"body": 8 * 8} and repeat.macs == trips * 8 * 8
    assert analysis.macs == trips * 8 * 8


def test_scan_macs_are_the_body_times_the_sequence_length(tmp_path):
    steps = 5
    body = helper.make_graph(
        [
            helper.make_node("MatMul", ["x_t", "scan_w"], ["p"], name="project"),
            helper.make_node("Add", ["p", "s_in"], ["s_out"], name="accumulate"),
            helper.make_node("Identity", ["s_out"], ["y_t"]),
        ],
        "body",
        [
            helper.make_tensor_value_info("s_in", TensorProto.FLOAT, [1, 8]),
            helper.make_tensor_value_info("x_t", TensorProto.FLOAT, [1, 6]),
        ],
        [
            helper.make_tensor_value_info("s_out", TensorProto.FLOAT, [1, 8]),
            helper.make_tensor_value_info("y_t", TensorProto.FLOAT, [1, 8]),
        ],
    )
    graph = helper.make_graph(
        [helper.make_node("Scan", ["s0", "xs"], ["s", "ys"], name="scan", body=body, num_scan_inputs=1)],
        "scanning",
        [
            helper.make_tensor_value_info("s0", TensorProto.FLOAT, [1, 8]),
            helper.make_tensor_value_info("xs", TensorProto.FLOAT, [steps, 1, 6]),
        ],
        [
            helper.make_tensor_value_info("s", TensorProto.FLOAT, [1, 8]),
            helper.make_tensor_value_info("ys", TensorProto.FLOAT, [steps, 1, 8]),
        ],
        [_weight("scan_w", 6, 8)],
    )
    analysis = analyze(load_model(_save(tmp_path, graph, "scan.onnx")))
    scan = analysis.layers[0]
    project = next(layer for layer in analysis.layers if layer.name == "project")
    assert project.parent == "scan" and project.macs == 6 * 8
    assert scan.macs == steps * 6 * 8 and analysis.macs == steps * 6 * 8
    assert scan.output_shapes == [(1, 8), (steps, 1, 8)]


def _recurrent_model(tmp_path, op: str, gates: int, layout: int, directions: int):
    seq, batch, inputs, hidden = 7, 2, 5, 6
    x_shape = [batch, seq, inputs] if layout else [seq, batch, inputs]
    y_shape = [batch, seq, directions, hidden] if layout else [seq, directions, batch, hidden]
    direction = "bidirectional" if directions == 2 else "forward"
    graph = helper.make_graph(
        [
            helper.make_node(
                op, ["x", "W", "R", "B"], ["y"], name="rnn", hidden_size=hidden, layout=layout, direction=direction
            )
        ],
        "recurrent",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, x_shape)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, y_shape)],
        [
            _weight("W", directions, gates * hidden, inputs),
            _weight("R", directions, gates * hidden, hidden),
            _weight("B", directions, 2 * gates * hidden),
        ],
    )
    proto = onnx.load(_save(tmp_path, graph, f"{op.lower()}.onnx", opset=14))
    # per time step, per direction: every gate multiplies the input [inputs] and the state [hidden] into [hidden]
    per_step = gates * (inputs * hidden + hidden * hidden)
    return proto, seq * batch * directions * per_step


@pytest.mark.parametrize(
    ("op", "gates", "layout", "directions"), [("LSTM", 4, 0, 2), ("GRU", 3, 1, 1), ("RNN", 1, 0, 1)]
)
def test_recurrent_macs_come_from_the_w_and_r_shapes(tmp_path, op, gates, layout, directions):
    proto, expected = _recurrent_model(tmp_path, op, gates, layout, directions)
    analysis = analyze_onnx(proto, None)  # (onnxruntime runs no layout-1 recurrences: analysed, not loaded)
    assert analysis.layers[0].macs == expected and analysis.macs == expected
    assert not analysis.macs_unknown_layers


def test_torch_lstm_macs_agree_with_the_onnx_formula():
    import torch
    from torch import nn

    from workbench.model import InputShapes, Model, TensorSpec

    class Tagger(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.rnn = nn.LSTM(5, 6, num_layers=2, batch_first=True, bidirectional=True)

        def forward(self, x):
            return self.rnn(x)[0]

    module = Tagger().eval()
    model = Model(name="tagger", inputs=(TensorSpec("x", "float32", (2, 7, 5)),), torch_module=module)
    model = model.with_input_shapes(InputShapes({"x": (2, 7, 5)}, "user"))
    analysis = analyze(model)
    assert analysis.source_format == "torch"
    seq, batch, hidden = 7, 2, 6
    # layer 0 reads 5 inputs, layer 1 the 2 × 6 outputs of both directions of layer 0
    expected = seq * batch * 2 * (4 * hidden * (5 + hidden) + 4 * hidden * (2 * hidden + hidden))
    assert analysis.layers[0].macs == expected
    with torch.no_grad():
        assert module(torch.zeros(2, 7, 5)).shape == (2, 7, 12)


def test_shape_computations_fold_where_onnx_data_propagation_stops():
    # Shape → Slice → Concat → Reshape at opset 12: onnx's data propagation leaves the Reshape open
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 120, 1, 40])
    ints = {name: numpy_helper.from_array(np.array(v, np.int64)) for name, v in [("a", [0]), ("b", [2]), ("m", [-1])]}
    graph = helper.make_graph(
        [
            *(helper.make_node("Constant", [], [name], value=value) for name, value in ints.items()),
            helper.make_node("Shape", ["x"], ["s"]),
            helper.make_node("Slice", ["s", "a", "b", "a"], ["head"]),
            helper.make_node("Concat", ["head", "m"], ["target"], axis=0),
            helper.make_node("Reshape", ["x", "target"], ["y"], name="flatten_tail"),
        ],
        "shapes",
        [x],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 12)])
    folded = onnx.ModelProto()
    folded.CopyFrom(model)
    assert fold_shape_values(folded.graph, {"x": (1, 120, 1, 40)}, 12) == 3  # Shape, Slice, Concat
    target = next(n for n in folded.graph.node if n.output[0] == "target")
    assert target.op_type == "Constant" and list(numpy_helper.to_array(target.attribute[0].t)) == [1, 120, -1]
    analysis = analyze_onnx(model, None)
    assert analysis.layers[-1].output_shapes == [(1, 120, 40)]
    assert not any("onnxruntime run" in note for note in analysis.notes)  # settled without running the model


# --- plugins on weights inside an If ------------------------------------------------------------------
SUBGRAPH_WEIGHTS = {"then_w", "shared", "else_w"}


def test_magnitude_prune_reaches_weights_inside_the_branches(branching):
    pruned = run_plugin(MagnitudePrune(), branching, {"sparsity": 0.5, "scope": "per_layer"})
    analysis = analyze(pruned)
    by_weight = {name: layer for layer in analysis.layers for name in layer.weight_names}
    for name in SUBGRAPH_WEIGHTS | {"stem_w"}:
        assert by_weight[name].sparsity == pytest.approx(0.5, abs=0.01), name
    assert analysis.params == BRANCHING_PARAMS
    x = RNG.standard_normal((1, 3, 8, 8)).astype(np.float32)
    for flag in (True, False):
        assert _run(pruned.to_onnx(), x, flag).shape == (1, 10)


@pytest.mark.parametrize(
    ("plugin", "params", "tolerance"),
    [
        (QuantizeInt4(), {"granularity": "per_channel"}, 0.25),
        (QuantizeInt8(), {"mode": "weight_only", "simplify_first": False}, 0.03),
        (LowBitWeights(), {"bits": 4}, 0.25),
        (WeightSharing(), {"clusters": 16}, 0.25),
    ],
    ids=["int4", "int8_weight_only", "low_bit", "weight_sharing"],
)
def test_quantizers_store_weights_inside_the_branches_for_real(branching, plugin, params, tolerance):
    stored = run_plugin(plugin, branching, params, Task())
    proto = stored.to_onnx()
    floats = {
        tensor.name
        for graph in (proto.graph, *(a.g for n in proto.graph.node for a in n.attribute if a.HasField("g")))
        for tensor in graph.initializer
        if tensor.data_type == TensorProto.FLOAT and len(tensor.dims) >= 2
    }
    constants = {
        n.output[0]
        for a in proto.graph.node[-1].attribute
        if a.HasField("g")
        for n in a.g.node
        if n.op_type == "Constant"
    }
    assert not (SUBGRAPH_WEIGHTS | {"stem_w"}) & (floats | constants)  # none left in float
    analysis = analyze(stored)
    decoded = {name for layer in analysis.layers for name in layer.weight_names}
    assert decoded >= SUBGRAPH_WEIGHTS  # the layers inside the branches read their decoded weights
    assert analysis.params == BRANCHING_PARAMS and analysis.macs == STEM_MACS + THEN_MACS  # codes not counted
    x = RNG.standard_normal((1, 3, 8, 8)).astype(np.float32)
    for flag in (True, False):
        reference, result = _run(branching.to_onnx(), x, flag), _run(proto, x, flag)
        assert np.abs(result - reference).max() <= tolerance * np.abs(reference).max()


def test_int8_dynamic_refuses_weights_it_would_leave_in_float(branching):
    with pytest.raises(PluginError, match="weights inside If/Loop/Scan subgraphs are not quantized by int8 dynamic"):
        run_plugin(QuantizeInt8(), branching, {"mode": "dynamic", "simplify_first": False}, Task())


# --- the layer table ------------------------------------------------------------------------------------
def test_layer_table_nests_branch_rows_under_their_if(qtbot, branching):
    pytest.importorskip("PySide6")
    from workbench.ui.layer_table import LayerTableView

    view = LayerTableView()
    qtbot.addWidget(view)
    analysis = analyze(branching)
    view.set_analysis(analysis)
    model = view.model
    assert model.rowCount() == 2  # stem, gate: the branches' layers are not top-level rows
    gate = model.index(1, 0)
    then_group, else_group = model.index(0, 0, gate), model.index(1, 0, gate)
    assert (model.data(then_group), model.rowCount(then_group)) == ("then_branch", 4)
    assert (model.data(else_group), model.rowCount(else_group)) == ("else_branch", 4)
    assert model.data(model.index(0, 7, gate)) == f"{THEN_MACS:,}"
    assert model.data(model.index(1, 7, gate)) == f"{ELSE_MACS:,}"  # the else group's MACs
    assert model.data(model.index(0, 5, gate)) == f"{4 * 4 * 3 * 3 + 256 * 10:,}"  # the then group's params

    view.filter.setText("else_fc_own")  # a nested match keeps the rows leading to it
    proxy = view.proxy
    assert proxy.rowCount() == 1
    kept_else = proxy.index(0, 0, proxy.index(0, 0))
    assert proxy.data(kept_else) == "else_branch" and proxy.rowCount(kept_else) == 1
    view.filter.clear()

    own = next(i for i, layer in enumerate(analysis.layers) if layer.name == "else_fc_own")
    with qtbot.waitSignal(view.layerSelected) as selected:
        view.select_row(own)
    assert selected.args == [own] and view.table.isExpanded(view.proxy.mapFromSource(else_group))


def test_the_sensitivity_sweep_reaches_layers_inside_the_branches(branching):
    from workbench.datasets import Dataset, DatasetRef
    from workbench.feeds import ConstantInput, InputSpec
    from workbench.metrics import MetricSettings
    from workbench.plugin import discover_plugins
    from workbench.sensitivity import sweep

    model = branching.with_input_spec(InputSpec(constants={"flag": ConstantInput(dtype="bool", value=1)}))
    x = RNG.standard_normal((6, 3, 8, 8)).astype(np.float32)
    data = Dataset(DatasetRef(kind="npz", path="memory"), x, None)
    fidelity = MetricSettings(metric="fidelity")  # cosine similarity: any change to the output shows
    report = sweep(model, data, discover_plugins(), sparsities=(0.9,), include_int4=False, samples=6, scoring=fidelity)
    by_weight = {layer.weight: layer for layer in report.layers}
    assert set(by_weight) == SUBGRAPH_WEIGHTS | {"stem_w"}
    # flag is true: the then branch runs, so its weights matter and the else branch's own weight never does
    untouched = pytest.approx(1.0, abs=1e-7)
    assert by_weight["else_w"].sparsity_quality["0.9"] == untouched and by_weight["else_w"].int8_quality == untouched
    assert by_weight["then_w"].sparsity_quality["0.9"] < 0.99
    assert by_weight["then_w"].int8_quality < 1.0 - 1e-6  # then_w quantized alone changes the output
