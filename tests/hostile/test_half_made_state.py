"""Class 5: no half-made state. A variant appears complete (with its metrics) or not at all; what a
killed writer leaves behind is removed by the next one; a model that cannot be measured leaves no
project behind. Kills here are deterministic: the child signals that it reached the critical moment
(by writing a flag file) and the test kills it there with SIGKILL."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest


def kill_when_flagged(sandbox, code: str, flag: Path, timeout: float = 120) -> None:
    """Run ``code`` in a child and SIGKILL it as soon as it creates ``flag``."""
    child = subprocess.Popen([sys.executable, "-c", code], env=sandbox.env(), cwd=sandbox.root, stderr=subprocess.PIPE)
    deadline = time.monotonic() + timeout
    while not flag.exists():
        if child.poll() is not None:
            pytest.fail(f"the child ended before the critical moment: {child.stderr.read().decode()[-2000:]}")
        if time.monotonic() > deadline:
            child.kill()
            pytest.fail("the child never reached the critical moment")
        time.sleep(0.02)
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    child.stderr.close()


@pytest.fixture
def project(sandbox, mlp_onnx) -> Path:
    from workbench.loading import load_model
    from workbench.project import Project

    folder = sandbox.root / "projects" / "p"
    Project.create(folder, load_model(mlp_onnx, remember_shapes=False)).close()
    return folder


def _state(folder: Path) -> tuple[set[str], list[str], str]:
    from workbench.project import Project

    with Project.open(folder) as project:
        ids = {v.id for v in project.variants()}
        unmeasured = [v.id for v in project.variants() if v.metrics is None and not v.is_root]
    with sqlite3.connect(folder / "project.db") as db:
        integrity = db.execute("PRAGMA integrity_check").fetchone()[0]
    db.close()
    return ids, unmeasured, integrity


APPLY = """
import sys, time
from pathlib import Path
from workbench.evaluate import measure
from workbench.plugin import discover_plugins
from workbench.project import Project
flag = Path({flag!r})
project = Project.open({folder!r})
def slow_measure(model, task):
    flag.write_text("measuring")
    time.sleep(60)
    return measure(model, runs=0)
project.apply(project.root.id, discover_plugins().get("magnitude_prune"), {{"sparsity": 0.5}}, measure=slow_measure)
"""


def test_a_kill_while_measuring_leaves_no_variant(sandbox, project):
    before, _, _ = _state(project)
    flag = sandbox.root / "flag"
    kill_when_flagged(sandbox, APPLY.format(flag=str(flag), folder=str(project)), flag)
    after, unmeasured, integrity = _state(project)
    assert after == before and not unmeasured and integrity == "ok"


WRITE = """
import os, time
from pathlib import Path
from workbench.plugin import discover_plugins
from workbench.project import Project
flag = Path({flag!r})
real_fsync = os.fsync
def stall(fd):
    flag.write_text("writing")  # the temp file exists, locked by this process
    time.sleep(60)
os.fsync = stall
project = Project.open({folder!r})
project.apply(project.root.id, discover_plugins().get("magnitude_prune"), {{"sparsity": 0.5}})
"""


def test_a_kill_while_writing_an_artifact_leaves_nothing_after_the_next_open(sandbox, project):
    from workbench.project import Project

    before, _, _ = _state(project)
    flag = sandbox.root / "flag"
    kill_when_flagged(sandbox, WRITE.format(flag=str(flag), folder=str(project)), flag)
    leftovers = list((project / "artifacts").glob(".*.tmp"))
    assert leftovers, "the kill should have left the temp file this test is about"
    Project.open(project).close()
    assert not list((project / "artifacts").glob(".*.tmp"))
    after, unmeasured, integrity = _state(project)
    assert after == before and not unmeasured and integrity == "ok"


def test_a_live_writers_temp_file_is_left_alone(sandbox, project):
    from workbench.project import Project

    flag = sandbox.root / "flag"
    child = subprocess.Popen(
        [sys.executable, "-c", WRITE.format(flag=str(flag), folder=str(project))], env=sandbox.env(), cwd=sandbox.root
    )
    try:
        deadline = time.monotonic() + 120
        while not flag.exists() and time.monotonic() < deadline and child.poll() is None:
            time.sleep(0.02)
        assert flag.exists()
        Project.open(project).close()  # another process is mid-write: its file must survive
        assert list((project / "artifacts").glob(".*.tmp"))
    finally:
        child.kill()
        child.wait()


def test_an_unreferenced_artifact_is_removed_only_when_no_one_else_has_the_project_open(project):
    from workbench.project import Project

    orphan = project / "artifacts" / ("ab" * 32 + ".onnx")  # written, then the process died before the row
    with Project.open(project):
        orphan.write_bytes(b"never committed")  # (or: being written by the process that has it open)
        Project.open(project).close()  # a second opener is not alone: it must not tidy
        assert orphan.exists()
    Project.open(project).close()
    assert not orphan.exists()


CREATE = """
import time
from pathlib import Path
from workbench.loading import load_model
from workbench.project import Project
flag = Path({flag!r})
original = Project._insert_variant
def stall(self, *args, **kwargs):
    flag.write_text("creating")
    time.sleep(60)
Project._insert_variant = stall
Project.create({folder!r}, load_model({model!r}, remember_shapes=False))
"""


def test_a_kill_while_creating_a_project_is_cleaned_by_the_next_create(sandbox, mlp_onnx):
    from workbench.loading import load_model
    from workbench.project import Project

    parent = sandbox.root / "projects"
    flag = sandbox.root / "flag"
    kill_when_flagged(sandbox, CREATE.format(flag=str(flag), folder=str(parent / "a"), model=str(mlp_onnx)), flag)
    assert list(parent.glob(".a.creating-*")) and not (parent / "a").exists()
    Project.create(parent / "b", load_model(mlp_onnx, remember_shapes=False)).close()
    assert sorted(p.name for p in parent.iterdir()) == ["b"]


EXPORT = """
import time
from pathlib import Path
import workbench.device_export as export
from workbench.devices import get_device
from workbench.project import Project
flag = Path({flag!r})
original = export._parity
def stall(*args, **kwargs):
    flag.write_text("exporting")
    time.sleep(60)
export._parity = stall
project = Project.open({folder!r})
export.export_for_device(project, project.root.id, get_device("x86-server"), {out!r})
"""


def test_a_kill_while_exporting_is_cleaned_by_the_next_export(sandbox, project):
    from workbench.device_export import export_for_device
    from workbench.devices import get_device
    from workbench.project import Project

    out, flag = sandbox.root / "bundles", sandbox.root / "flag"
    kill_when_flagged(sandbox, EXPORT.format(flag=str(flag), folder=str(project), out=str(out)), flag)
    assert list(out.glob(".*.exporting-*"))
    with Project.open(project) as opened:
        bundle = export_for_device(opened, opened.root.id, get_device("x86-server"), out)
    assert [p.name for p in out.iterdir()] == [bundle.name]


def test_a_model_that_cannot_be_measured_leaves_no_project_and_keeps_the_open_one(tmp_path, monkeypatch, mlp_onnx):
    from onnx import TensorProto, helper, numpy_helper

    from workbench.errors import WorkbenchError
    from workbench.workspace import Workspace

    monkeypatch.setenv("WORKBENCH_PROJECTS_DIR", str(tmp_path / "projects"))
    broken = tmp_path / "broken.onnx"
    shape = numpy_helper.from_array(np.array([3, 5], np.int64), "shape")
    graph = helper.make_graph(
        [helper.make_node("Reshape", ["x", "shape"], ["y"], name="reshape")],
        "broken",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [3, 5])],
        [shape],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    import onnx

    onnx.save(model, broken)
    workspace = Workspace()
    first = workspace.open_model(mlp_onnx)
    with pytest.raises(WorkbenchError, match=r"broken\.onnx: onnxruntime failed"):
        workspace.open_model(broken)
    assert workspace.project is first
    assert [p.name for p in (tmp_path / "projects").iterdir()] == [first.folder.name]
    workspace.close()


def test_variants_stored_without_metrics_are_measured_when_the_window_opens_them(project):
    from workbench.plugin import discover_plugins
    from workbench.project import Project
    from workbench.workspace import Workspace

    with Project.open(project) as opened:  # a CLI step (or an older version) stores no metrics
        opened.apply(opened.root.id, discover_plugins().get("magnitude_prune"), {"sparsity": 0.5})
        assert opened.unmeasured()
    workspace = Workspace()
    workspace.open_project(project)
    assert not workspace.require_project().unmeasured()
    workspace.close()
