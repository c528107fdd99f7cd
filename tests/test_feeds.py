"""Several inputs and state: named inputs, constant side inputs, streams with state, and an If on a
sample rate that a random or zero probe would send down the wrong branch."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from workbench.datasets import Dataset, DatasetRef
from workbench.errors import DatasetError
from workbench.evaluate import measure
from workbench.feeds import ConstantInput, InputSpec, calibration_feeds, run_dataset, suggest_input_spec
from workbench.loading import load_model
from workbench.runtime import make_session


def _streaming_model(path) -> str:
    """out = sum(frame) + state, stateN = out; and a branch on sr: x2 at 16 kHz, x3 otherwise."""
    frame_sum = helper.make_node("ReduceSum", ["input", "axes"], ["frame_sum"], keepdims=0)
    total = helper.make_node("Add", ["frame_sum", "state"], ["stateN"])
    is_16k = helper.make_node("Equal", ["sr", "sr16k"], ["is_16k"])
    then_graph = helper.make_graph(
        [helper.make_node("Mul", ["stateN", "two"], ["scaled_then"])],
        "at_16k",
        [],
        [helper.make_tensor_value_info("scaled_then", TensorProto.FLOAT, None)],
        [numpy_helper.from_array(np.array(2.0, np.float32), "two")],
    )
    else_graph = helper.make_graph(
        [helper.make_node("Mul", ["stateN", "three"], ["scaled_else"])],
        "other_rate",
        [],
        [helper.make_tensor_value_info("scaled_else", TensorProto.FLOAT, None)],
        [numpy_helper.from_array(np.array(3.0, np.float32), "three")],
    )
    branch = helper.make_node("If", ["is_16k"], ["output"], then_branch=then_graph, else_branch=else_graph)
    graph = helper.make_graph(
        [frame_sum, total, is_16k, branch],
        "stream",
        [
            helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 4]),
            helper.make_tensor_value_info("state", TensorProto.FLOAT, ["N"]),
            helper.make_tensor_value_info("sr", TensorProto.INT64, []),
        ],
        [
            helper.make_tensor_value_info("output", TensorProto.FLOAT, ["N"]),
            helper.make_tensor_value_info("stateN", TensorProto.FLOAT, ["N"]),
        ],
        [
            numpy_helper.from_array(np.array([1], np.int64), "axes"),
            numpy_helper.from_array(np.array(16000, np.int64), "sr16k"),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, path)
    return str(path)


def _ref(path="memory") -> DatasetRef:
    return DatasetRef(kind="npz", path=str(path))


def test_a_stateful_model_is_streamed_frame_by_frame_with_its_declared_side_inputs(tmp_path):
    model = load_model(_streaming_model(tmp_path / "stream.onnx"), input_shapes="input=1,4;state=1")
    suggested = suggest_input_spec(model.inputs, model.outputs)
    assert suggested.state == {"state": "stateN"}
    assert suggested.constants["sr"].value == 16000 and suggested.constants["sr"].dtype == "int64"
    spec = suggested.model_copy(update={"frame": 4})
    audio = np.arange(2 * 10, dtype=np.float32).reshape(2, 10)  # 10 samples: 3 frames of 4, the last padded
    outputs = run_dataset(make_session(model.onnx_bytes()), Dataset(_ref(), audio, None), spec)
    padded = np.zeros((2, 12), np.float32)
    padded[:, :10] = audio
    expected = 2 * np.cumsum(padded.reshape(2, 3, 4).sum(axis=2), axis=1)  # running sum, the 16 kHz branch
    assert outputs["output"].shape == (2, 3)  # [samples, frames] of the model's [batch] output
    np.testing.assert_allclose(outputs["output"], expected)

    at_8k = spec.model_copy(update={"constants": spec.constants | {"sr": ConstantInput(dtype="int64", value=8000)}})
    outputs_8k = run_dataset(make_session(model.onnx_bytes()), Dataset(_ref(), audio, None), at_8k)
    np.testing.assert_allclose(outputs_8k["output"], expected / 2 * 3)

    # calibration sees each frame with the state the stream carries there, never zeros or random values
    feeds = calibration_feeds(model.onnx_bytes(), Dataset(_ref(), audio, None), spec, count=5)
    assert len(feeds) == 5
    np.testing.assert_allclose(feeds[1]["state"], [padded[0, :4].sum()])
    np.testing.assert_allclose(feeds[2]["state"], [padded[0, :8].sum()])
    assert feeds[3]["state"].tolist() == [0.0]  # the second sample starts from the declared state


def test_a_hop_shorter_than_the_frame_repeats_the_previous_samples_as_context(tmp_path):
    model = load_model(_streaming_model(tmp_path / "stream.onnx"), input_shapes="input=1,4;state=1")
    spec = suggest_input_spec(model.inputs, model.outputs).model_copy(update={"frame": 4, "hop": 2})
    audio = np.arange(1, 7, dtype=np.float32).reshape(1, 6)
    outputs = run_dataset(make_session(model.onnx_bytes()), Dataset(_ref(), audio, None), spec)
    # frames of 4 every 2 samples, two zeros of context before the first: [0 0 1 2] [1 2 3 4] [3 4 5 6]
    frame_sums = np.array([3.0, 10.0, 18.0])
    np.testing.assert_allclose(outputs["output"], [2 * np.cumsum(frame_sums)])
    with pytest.raises(DatasetError, match="hop"):
        run_dataset(
            make_session(model.onnx_bytes()),
            Dataset(_ref(), audio, None),
            spec.model_copy(update={"frame": 2, "hop": 4}),
        )


def test_measure_streams_and_reports_fidelity_per_output(tmp_path):
    model = load_model(_streaming_model(tmp_path / "stream.onnx"), input_shapes="input=1,4;state=1")
    spec = suggest_input_spec(model.inputs, model.outputs).model_copy(update={"frame": 4})
    model = model.with_input_spec(spec)
    audio = np.random.default_rng(0).standard_normal((3, 16)).astype(np.float32)
    metrics = measure(model, baseline=model, dataset=Dataset(_ref(), audio, None), runs=3)
    assert metrics.metric is None and metrics.input_spec == spec
    assert set(metrics.output_fidelity) == {"output"}
    assert metrics.outputs_identical and metrics.output_fidelity["output"].cosine == pytest.approx(1.0)
    assert metrics.latency_ms_median is not None


def test_an_input_neither_in_the_data_nor_declared_is_refused_with_the_fix(tmp_path):
    model = load_model(_streaming_model(tmp_path / "stream.onnx"), input_shapes="input=1,4;state=1")
    audio = np.zeros((2, 4), np.float32)
    with pytest.raises(DatasetError, match=r"declare the others constant \(--const sr=VALUE\)"):
        run_dataset(make_session(model.onnx_bytes()), Dataset(_ref(), audio, None), None)
    only_sr = InputSpec(constants={"sr": ConstantInput(dtype="int64", value=16000)})
    with pytest.raises(DatasetError, match="model takes 2 inputs"):
        run_dataset(make_session(model.onnx_bytes()), Dataset(_ref(), audio, None), only_sr)


def test_named_inputs_feed_the_model_inputs_they_name(tmp_path):
    graph = helper.make_graph(
        [helper.make_node("Sub", ["a", "b"], ["y"])],
        "two_inputs",
        [
            helper.make_tensor_value_info("a", TensorProto.FLOAT, ["N", 3]),
            helper.make_tensor_value_info("b", TensorProto.FLOAT, ["N", 3]),
        ],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 3])],
    )
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    proto.ir_version = 8
    onnx.save(proto, tmp_path / "sub.onnx")
    model = load_model(tmp_path / "sub.onnx", input_shapes="a=1,3;b=1,3")
    a = np.arange(12, dtype=np.float32).reshape(4, 3)
    b = np.ones((4, 3), np.float32)
    data = Dataset(_ref(), a, None, inputs={"b": b, "a": a})  # order in the data does not matter
    outputs = run_dataset(make_session(model.onnx_bytes()), data)
    np.testing.assert_allclose(outputs["y"], a - b)
    with pytest.raises(DatasetError, match="no array for input 'b'"):
        run_dataset(make_session(model.onnx_bytes()), Dataset(_ref(), a, None, inputs={"a": a}))
