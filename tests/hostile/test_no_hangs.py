"""Class 2: nothing hangs. Special files are refused before anything opens them; a project whose
lineage loops is reported, with the variant named, and every walk over it ends."""

from __future__ import annotations

import json
import os
import sqlite3
import threading
from pathlib import Path

import pytest


@pytest.fixture
def fifo_model(sandbox) -> Path:
    path = sandbox.files / "model.onnx"
    os.mkfifo(path)
    return path


def test_a_fifo_named_like_a_model_is_refused_by_every_command(sandbox, fifo_model):
    unchanged = sandbox.snapshot()
    for args in (
        ["info", fifo_model],
        ["eval", fifo_model, "--data", "mnist-sample"],
        ["export", fifo_model, "--device", "x86-server", "-o", sandbox.root / "out"],
        ["apply", "--recipe", sandbox.files / "none.yaml", fifo_model, "-o", sandbox.root / "out.onnx"],
    ):
        run = sandbox.cli(*args, timeout=60)
        if args[0] == "apply":
            sandbox.assert_refused(run, "none.yaml")  # the recipe is read first; it does not exist
        else:
            sandbox.assert_refused(run, fifo_model, reason="not a regular file")
    unchanged()


def test_a_fifo_or_device_in_any_input_role_is_refused(sandbox):
    model = sandbox.tiny_onnx(sandbox.files / "model.onnx")
    os.mkfifo(sandbox.files / "data.npz")
    os.mkfifo(sandbox.files / "recipe.yaml")
    (sandbox.files / "images" / "cat").mkdir(parents=True)
    os.mkfifo(sandbox.files / "images" / "cat" / "photo.png")
    external = sandbox.tiny_onnx(sandbox.files / "external" / "model.onnx", external="weights.bin")
    (external.parent / "weights.bin").unlink()
    os.mkfifo(external.parent / "weights.bin")
    device = sandbox.files / "zero.onnx"
    device.symlink_to("/dev/zero")
    unchanged = sandbox.snapshot()
    cases = [
        (["eval", model, "--data", sandbox.files / "data.npz"], "data.npz"),
        (["apply", "--recipe", sandbox.files / "recipe.yaml", model, "-o", sandbox.root / "o.onnx"], "recipe.yaml"),
        (["eval", model, "--data", sandbox.files / "images"], "photo.png"),
        (["info", external], "weights.bin"),
        (["info", device], "zero.onnx"),
    ]
    for args, named in cases:
        run = sandbox.cli(*args, timeout=60)
        sandbox.assert_refused(run, named)
        assert "not a regular file" in run.lines[0] or "character device" in run.lines[0], run.describe()
    unchanged()


def test_the_window_refuses_a_fifo_without_hanging(sandbox, fifo_model):
    _run, results = sandbox.open_in_window(fifo_model)
    assert not results[0].get("hung"), results
    assert "not a regular file" in results[0]["notice"] and not results[0]["opened"], results
    assert not results[0]["details"]


@pytest.fixture
def looped_project(sandbox, mlp_onnx) -> tuple[Path, dict[str, str]]:
    """A real project with baseline -> a -> b -> c, then damaged so that b's parent is c (b -> c -> b)."""
    from workbench.loading import load_model
    from workbench.plugin import discover_plugins
    from workbench.project import Project

    folder = sandbox.root / "looped"
    prune = discover_plugins().get("magnitude_prune")
    with Project.create(folder, load_model(mlp_onnx, remember_shapes=False)) as project:
        a = project.apply(project.root.id, prune, {"sparsity": 0.3})
        b = project.apply(a.id, prune, {"sparsity": 0.5})
        c = project.apply(b.id, prune, {"sparsity": 0.7})
        ids = {"root": project.root.id, "a": a.id, "b": b.id, "c": c.id}
    with sqlite3.connect(folder / "project.db") as db:
        db.execute("UPDATE variants SET parent_id=? WHERE id=?", (ids["c"], ids["b"]))
    db.close()
    return folder, ids


def test_a_lineage_loop_is_reported_and_every_walk_ends(sandbox, looped_project):
    from workbench.errors import ProjectError
    from workbench.project import Project

    folder, ids = looped_project
    with Project.open(folder) as project:
        assert {v.id for v in project.variants()} == {ids["root"], ids["a"]}
        assert any(ids["b"] in p and "loops" in p for p in project.problems), project.problems
        for variant_id in (ids["b"], ids["c"]):
            with pytest.raises(ProjectError, match="set aside"):
                project.lineage(variant_id)
            with pytest.raises(ProjectError, match="set aside"):
                project.recipe(variant_id)
        assert [v.id for v in project.lineage(ids["a"])] == [ids["root"], ids["a"]]

    # export (a CLI walk) of a looped variant: one line naming it; of a healthy one: a bundle
    run = sandbox.cli(
        "export", folder, "--variant", ids["b"], "--device", "x86-server", "-o", sandbox.root / "out", timeout=60
    )
    sandbox.assert_refused(run, folder, reason=ids["b"])
    assert "loops" in run.lines[0]
    sandbox.assert_succeeded(
        sandbox.cli(
            "export", folder, "--variant", ids["a"], "--device", "x86-server", "-o", sandbox.root / "out", timeout=120
        )
    )


def test_deleting_in_a_looped_project_ends(looped_project):
    from workbench.workspace import Workspace

    folder, ids = looped_project
    workspace = Workspace()
    workspace.open_project(folder)
    done = threading.Event()

    def delete() -> None:
        workspace.delete(ids["a"])  # the UI thread runs this: it must end, whatever the file says
        done.set()

    worker = threading.Thread(target=delete, daemon=True)
    worker.start()
    worker.join(30)
    assert done.is_set(), "delete did not finish"
    assert [v.id for v in workspace.variants()] == [ids["root"]]
    workspace.close()


def test_the_window_names_the_looped_variant(sandbox, looped_project):
    folder, ids = looped_project
    _run, results = sandbox.open_in_window(folder)
    assert results[0]["opened"], results
    assert ids["b"] in results[0]["notice"] or ids["c"] in results[0]["notice"], results
    assert "loops" in results[0]["details"]
    assert json.dumps(results)  # the notice is plain text, no traceback
    assert "Traceback" not in results[0]["details"]
