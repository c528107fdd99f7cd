"""Class 4: every failure is one line that names the file and the reason, never a traceback, and
onnxruntime's own log lines stay off the terminal. Where the workbench can do better than fail (a
model that only runs at batch 1, a model with state inputs), it does the work instead."""

from __future__ import annotations

import json
import sqlite3
import struct
from pathlib import Path

import numpy as np
import pytest


def _vi(name: str, dtype: int, shape):
    from onnx import helper

    return helper.make_tensor_value_info(name, dtype, shape)


def batch_one_only(sandbox, path: Path) -> Path:
    """Declares a dynamic batch but reshapes to [1, 4] inside: breaks at batch > 1."""
    from onnx import TensorProto, helper, numpy_helper

    shape = numpy_helper.from_array(np.array([1, 4], np.int64), "shape")
    weight = numpy_helper.from_array(np.eye(4, 3, dtype=np.float32), "w")
    return sandbox.save_graph(
        path,
        [
            helper.make_node("Reshape", ["x", "shape"], ["flat"], name="reshape"),
            helper.make_node("MatMul", ["flat", "w"], ["y"], name="matmul"),
        ],
        [_vi("x", TensorProto.FLOAT, ["N", 4])],
        [_vi("y", TensorProto.FLOAT, ["N", 3])],
        [shape, weight],
    )


def impossible_reshape(sandbox, path: Path) -> Path:
    from onnx import TensorProto, helper, numpy_helper

    shape = numpy_helper.from_array(np.array([3, 5], np.int64), "shape")
    return sandbox.save_graph(
        path,
        [helper.make_node("Reshape", ["x", "shape"], ["y"], name="reshape")],
        [_vi("x", TensorProto.FLOAT, ["N", 4])],
        [_vi("y", TensorProto.FLOAT, [3, 5])],
        [shape],
    )


def string_input(sandbox, path: Path) -> Path:
    from onnx import TensorProto, helper

    return sandbox.save_graph(
        path,
        [helper.make_node("Identity", ["s"], ["y"], name="identity")],
        [_vi("s", TensorProto.STRING, ["N", 4])],
        [_vi("y", TensorProto.STRING, ["N", 4])],
    )


def bool_input(sandbox, path: Path) -> Path:
    from onnx import TensorProto, helper

    return sandbox.save_graph(
        path,
        [helper.make_node("Not", ["b"], ["y"], name="not")],
        [_vi("b", TensorProto.BOOL, ["N", 4])],
        [_vi("y", TensorProto.BOOL, ["N", 4])],
    )


def no_inputs(sandbox, path: Path) -> Path:
    from onnx import TensorProto, helper, numpy_helper

    value = numpy_helper.from_array(np.ones((1, 4), np.float32))
    return sandbox.save_graph(
        path,
        [
            helper.make_node("Constant", [], ["c"], name="constant", value=value),
            helper.make_node("Relu", ["c"], ["y"], name="relu"),
        ],
        [],
        [_vi("y", TensorProto.FLOAT, [1, 4])],
    )


def streaming_model(sandbox, path: Path) -> Path:
    """Like a streaming speech model: audio, a recurrent state, a sample-rate scalar; weights in an If."""
    from onnx import TensorProto, helper, numpy_helper

    def branch(name: str, scale: float):
        weight = numpy_helper.from_array((np.eye(16, 8) * scale).astype(np.float32), f"{name}_w")
        return helper.make_graph(
            [helper.make_node("MatMul", ["audio", f"{name}_w"], [f"{name}_out"], name=f"{name}_matmul")],
            name,
            [],
            [_vi(f"{name}_out", TensorProto.FLOAT, ["N", 8])],
            [weight],
        )

    rate = numpy_helper.from_array(np.array(16000, np.int64), "rate16k")
    return sandbox.save_graph(
        path,
        [
            helper.make_node("Equal", ["sr", "rate16k"], ["is16k"], name="check_rate"),
            helper.make_node(
                "If",
                ["is16k"],
                ["features"],
                name="by_rate",
                then_branch=branch("k16", 1.0),
                else_branch=branch("k8", 0.5),
            ),
            helper.make_node("ReduceMean", ["state"], ["memory"], name="memory", keepdims=0),
            helper.make_node("Add", ["features", "memory"], ["y"], name="mix"),
        ],
        [
            _vi("audio", TensorProto.FLOAT, ["N", 16]),
            _vi("state", TensorProto.FLOAT, [2, "N", 8]),
            _vi("sr", TensorProto.INT64, []),
        ],
        [_vi("y", TensorProto.FLOAT, [2, "N", 8])],
        [rate],
    )


def too_deep(path: Path, depth: int = 60) -> Path:
    """Graph -> node -> attribute -> graph ... deeper than protobuf will parse (wire format by hand)."""

    def field(number: int, payload: bytes) -> bytes:
        return _varint(number << 3 | 2) + _varint(len(payload)) + payload

    graph = field(1, b"")  # a graph with one empty node
    for _ in range(depth):
        attribute = field(1, b"g") + _varint(6 << 3 | 2) + _varint(len(graph)) + graph  # name, g
        node = field(5, attribute)  # NodeProto.attribute
        graph = field(1, node)  # GraphProto.node
    path.write_bytes(_varint(1 << 3) + _varint(8) + field(7, graph))  # ir_version, graph
    return path


def _varint(value: int) -> bytes:
    out = b""
    while True:
        byte = value & 0x7F
        value >>= 7
        out += struct.pack("B", byte | (0x80 if value else 0))
        if not value:
            return out


@pytest.fixture
def data(sandbox) -> Path:
    path = sandbox.files / "data.npz"
    np.savez(path, x=np.random.default_rng(0).standard_normal((6, 4)).astype(np.float32))
    return path


def test_a_model_that_only_runs_at_batch_1_is_evaluated_and_exported(sandbox, data):
    model = batch_one_only(sandbox, sandbox.files / "batch1.onnx")
    sandbox.assert_succeeded(sandbox.cli("eval", model, "--data", data, "--runs", "3"))
    sandbox.assert_succeeded(sandbox.cli("export", model, "--device", "x86-server", "-o", sandbox.root / "out"))


def test_runtime_failures_are_one_line(sandbox, data):
    model = impossible_reshape(sandbox, sandbox.files / "reshape.onnx")
    unchanged = sandbox.snapshot()
    for args in (
        ["eval", model, "--data", data],
        ["export", model, "--device", "x86-server", "-o", sandbox.root / "out"],
    ):
        run = sandbox.cli(*args)
        sandbox.assert_refused(run, model, reason="onnxruntime")
        assert "[E:onnxruntime" not in run.stderr and "reshape" in run.lines[0].lower(), run.describe()
    unchanged()


@pytest.mark.parametrize("make", [string_input, bool_input, no_inputs], ids=["string", "bool", "no-inputs"])
def test_unusual_inputs_are_analysed_and_refused_cleanly_for_running(sandbox, data, make):
    model = make(sandbox, sandbox.files / f"{make.__name__}.onnx")
    unchanged = sandbox.snapshot()
    sandbox.assert_succeeded(sandbox.cli("info", model))
    sandbox.assert_refused(sandbox.cli("eval", model, "--data", data), model)
    export = sandbox.cli("export", model, "--device", "x86-server", "-o", sandbox.root / "out")
    if make is bool_input:  # parity runs on zeros work for booleans; a bundle is a fine outcome
        assert export.code == 0 or len(export.lines) == 1, export.describe()
        assert "Traceback" not in export.stderr
    else:
        sandbox.assert_refused(export, model)
    if export.code != 0:
        unchanged()


def test_a_streaming_model_with_state_inputs_exports(sandbox, data):
    model = streaming_model(sandbox, sandbox.files / "stream.onnx")
    info = sandbox.cli("info", model, "--input-shape", "audio=1,16;state=2,1,8;sr=")
    sandbox.assert_succeeded(info)
    run = sandbox.cli(
        "export",
        model,
        "--device",
        "x86-server",
        "-o",
        sandbox.root / "out",
        "--input-shape",
        "audio=1,16;state=2,1,8;sr=",
    )
    sandbox.assert_succeeded(run)
    bundle = next((sandbox.root / "out").iterdir())
    manifest = json.loads((bundle / "manifest.json").read_text())
    assert [i["name"] for i in manifest["inputs"]] == ["audio", "state", "sr"]
    # the state no output returns is suggested as a zero constant, so one array feeds the audio
    evaluated = sandbox.cli("eval", model, "--data", data, "--input-shape", "audio=1,16;state=2,1,8;sr=")
    sandbox.assert_refused(evaluated, data, reason="samples are [4] but model input 'audio' takes [16]")
    audio = sandbox.files / "audio.npz"
    np.savez(audio, audio=np.random.default_rng(1).standard_normal((5, 16)).astype(np.float32))
    evaluated = sandbox.cli("eval", model, "--data", audio, "--input-shape", "audio=1,16;state=2,1,8;sr=")
    sandbox.assert_succeeded(evaluated)
    assert "state = 0" in evaluated.stdout and "sr = 16000" in evaluated.stdout, evaluated.describe()


def test_a_graph_nested_beyond_the_parser_is_refused(sandbox):
    model = too_deep(sandbox.files / "deep.onnx")
    sandbox.assert_refused(sandbox.cli("info", model), model, reason="not a valid ONNX file")


def test_deeply_nested_recipes_and_profiles_are_refused(sandbox, mlp_onnx):
    recipe = sandbox.files / "deep.json"
    recipe.write_text("[" * 100_000 + "]" * 100_000)
    run = sandbox.cli("apply", "--recipe", recipe, mlp_onnx, "-o", sandbox.root / "out.onnx")
    sandbox.assert_refused(run, recipe, reason="nested too deeply")
    (sandbox.root / "config" / "devices").mkdir(parents=True)
    (sandbox.root / "config" / "devices" / "deep.yaml").write_text("[" * 100_000 + "]" * 100_000)
    devices = sandbox.cli("devices")
    sandbox.assert_succeeded(devices)
    assert "deep.yaml: the profile is nested too deeply" in devices.stdout


def test_running_out_of_memory_is_one_line(sandbox, data):
    """With the budget lifted and the address space capped, the runtime's own allocation failure shows."""
    from onnx import TensorProto, helper, numpy_helper

    shape = numpy_helper.from_array(np.array([1, 1_000_000_000], np.int64), "shape")
    model = sandbox.save_graph(
        sandbox.files / "hungry.onnx",
        [
            helper.make_node(
                "ConstantOfShape",
                ["shape"],
                ["big"],
                name="grow",
                value=numpy_helper.from_array(np.ones(1, np.float32)),
            ),
            helper.make_node("ReduceSum", ["big"], ["s"], name="sum", keepdims=0),
            helper.make_node("Add", ["x", "s"], ["y"], name="add"),
        ],
        [_vi("x", TensorProto.FLOAT, ["N", 4])],
        [_vi("y", TensorProto.FLOAT, ["N", 4])],
        [shape],
    )
    capped = (
        "import os, resource, sys; resource.setrlimit(resource.RLIMIT_AS, (1600 << 20, 1600 << 20)); "
        "os.environ['WORKBENCH_MEMORY_BUDGET_MB'] = '100000'; from workbench.cli import main; "
        f"sys.exit(main(['eval', {str(model)!r}, '--data', {str(data)!r}]))"
    )
    sandbox.assert_refused(sandbox.python(capped), model, reason="ran out of memory")
    refused = sandbox.cli("eval", model, "--data", data)  # with the default budget: refused before running
    sandbox.assert_refused(refused, model, reason="would need")


def test_onnxruntime_log_lines_stay_off_the_terminal(sandbox, data):
    from onnx import TensorProto, helper, numpy_helper

    unused = numpy_helper.from_array(np.ones((8,), np.float32), "unused")  # onnxruntime warns about it
    model = sandbox.save_graph(
        sandbox.files / "noisy.onnx",
        [helper.make_node("Relu", ["x"], ["y"], name="relu")],
        [_vi("x", TensorProto.FLOAT, ["N", 4])],
        [_vi("y", TensorProto.FLOAT, ["N", 4])],
        [unused],
    )
    run = sandbox.cli("eval", model, "--data", data, "--runs", "2")
    sandbox.assert_succeeded(run)
    assert run.stderr.strip() == "", run.describe()


# --- damaged project files ------------------------------------------------------------------------
DAMAGE = {
    "json": ("params_json", "{not json"),
    "pydantic": ("metrics_json", '{"accuracy": "high"}'),
    "int": ("created_at", "yesterday"),
    "index": ("inputs_json", '{"specs": []}'),
    "artifact-name": ("onnx_sha", "../../../../etc/passwd"),
}


@pytest.mark.parametrize("kind", sorted(DAMAGE))
def test_a_damaged_variant_row_is_named_and_the_rest_still_works(sandbox, mlp_onnx, kind):
    from workbench.loading import load_model
    from workbench.plugin import discover_plugins
    from workbench.project import Project

    folder = sandbox.root / "project"
    prune = discover_plugins().get("magnitude_prune")
    with Project.create(folder, load_model(mlp_onnx, remember_shapes=False)) as project:
        healthy = project.apply(project.root.id, prune, {"sparsity": 0.3})
        damaged = project.apply(project.root.id, prune, {"sparsity": 0.6})
    column, value = DAMAGE[kind]
    with sqlite3.connect(folder / "project.db") as db:
        db.execute(f"UPDATE variants SET {column}=? WHERE id=?", (value, damaged.id))
    db.close()

    run = sandbox.cli("export", folder, "--variant", damaged.id, "--device", "x86-server", "-o", sandbox.root / "out")
    sandbox.assert_refused(run, folder, reason=damaged.id)
    good = sandbox.cli("export", folder, "--variant", healthy.id, "--device", "x86-server", "-o", sandbox.root / "out")
    sandbox.assert_succeeded(good)


@pytest.mark.parametrize(
    "damage",
    [
        "UPDATE meta SET value='abc' WHERE key='schema_version'",
        "UPDATE meta SET value='{]' WHERE key='dataset'",
        "garbage",
    ],
    ids=["version", "dataset", "not-sqlite"],
)
def test_a_damaged_project_file_is_one_line(sandbox, mlp_onnx, damage):
    from workbench.loading import load_model
    from workbench.project import Project

    folder = sandbox.root / "project"
    Project.create(folder, load_model(mlp_onnx, remember_shapes=False)).close()
    if damage == "garbage":
        (folder / "project.db").write_bytes(b"SQLite format 3\x00" + bytes(range(256)) * 64)
    else:
        with sqlite3.connect(folder / "project.db") as db:
            db.execute(damage)
        db.close()
    run = sandbox.cli("export", folder, "--device", "x86-server", "-o", sandbox.root / "out")
    sandbox.assert_refused(run, folder)


def test_a_failing_step_in_the_window_names_the_project(tmp_path, monkeypatch, mlp_onnx):
    from workbench.errors import PluginError
    from workbench.workspace import Workspace

    monkeypatch.setenv("WORKBENCH_PROJECTS_DIR", str(tmp_path / "projects"))
    workspace = Workspace()
    project = workspace.open_model(mlp_onnx)
    with pytest.raises(PluginError) as failure:
        workspace.apply("qat_int8", {})  # needs a torch model; this one is ONNX only
    assert str(failure.value).startswith(f"{project.folder}: ") and "torch" in str(failure.value)
    assert len(workspace.variants()) == 1
    workspace.close()
