"""Projects, variants, caching, atomic writes and recipes that replay to identical artifacts."""

from __future__ import annotations

import pytest

from workbench.errors import Cancelled, ProjectError, RecipeError
from workbench.fileio import sha256_bytes, sha256_file
from workbench.loading import load_model
from workbench.plugin import Task, discover_plugins
from workbench.project import Project
from workbench.recipe import Recipe, replay


@pytest.fixture
def prune():
    return discover_plugins().get("magnitude_prune")


def test_variants_persist_and_reopen(tmp_path, demo_checkpoint, prune):
    folder = tmp_path / "proj"
    with Project.create(folder, load_model(demo_checkpoint), source_sha256=sha256_file(demo_checkpoint)) as project:
        child = project.apply(project.root.id, prune, {"sparsity": 0.5})
        grandchild = project.apply(child.id, prune, {"sparsity": 0.8, "scope": "per_layer"})
        project.rename(grandchild.id, "aggressive")
    with Project.open(folder) as reopened:
        variants = reopened.variants()
        assert next(v.name for v in variants) == "baseline" and variants[-1].name == "aggressive"
        assert [v.id for v in reopened.lineage(grandchild.id)] == [variants[0].id, child.id, grandchild.id]
        model = reopened.load_model(grandchild.id)
        assert model.has_torch_lineage and model.input_shapes.shapes == {"input": (1, 1, 28, 28)}
        assert sha256_bytes(model.artifact_bytes()) == grandchild.onnx_sha


def test_same_step_twice_reuses_the_stored_variant(tmp_path, mlp_onnx, prune):
    with Project.create(tmp_path / "p", load_model(mlp_onnx)) as project:
        first = project.apply(project.root.id, prune, {"sparsity": 0.5})
        second = project.apply(project.root.id, prune, {"sparsity": 0.5, "scope": "global"})
        assert first.id == second.id and len(project.variants()) == 2
        other = project.apply(project.root.id, prune, {"sparsity": 0.6})
        assert other.id != first.id


def test_cancel_leaves_no_variant(tmp_path, mlp_onnx, prune):
    with Project.create(tmp_path / "p", load_model(mlp_onnx)) as project:
        task = Task()
        task.cancel()
        with pytest.raises(Cancelled):
            project.apply(project.root.id, prune, {"sparsity": 0.5}, task)
        assert len(project.variants()) == 1


def test_failed_create_leaves_nothing_behind(tmp_path, mlp_onnx, monkeypatch):
    def crash(*args, **kwargs):
        raise OSError("disk full (simulated)")

    monkeypatch.setattr(Project, "_insert_variant", crash)
    (tmp_path / "projects").mkdir()
    with pytest.raises(OSError):
        Project.create(tmp_path / "projects" / "p", load_model(mlp_onnx))
    assert list((tmp_path / "projects").iterdir()) == []


def test_crash_while_writing_an_artifact_keeps_the_project(tmp_path, mlp_onnx, prune, monkeypatch):
    import workbench.project as project_module

    folder = tmp_path / "p"
    Project.create(folder, load_model(mlp_onnx)).close()
    before = sorted(p.name for p in (folder / "artifacts").iterdir())

    def crash(path, data):
        raise OSError("power cut (simulated)")

    monkeypatch.setattr(project_module, "atomic_write_bytes", crash)
    with Project.open(folder) as project, pytest.raises(OSError):
        project.apply(project.root.id, prune, {"sparsity": 0.5})
    with Project.open(folder) as project:
        assert len(project.variants()) == 1
    assert sorted(p.name for p in (folder / "artifacts").iterdir()) == before


def test_existing_folder_and_bad_project_are_refused(tmp_path, mlp_onnx):
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "notes.txt").write_text("mine")
    with pytest.raises(ProjectError, match="taken: already exists"):
        Project.create(tmp_path / "taken", load_model(mlp_onnx))
    assert (tmp_path / "taken" / "notes.txt").read_text() == "mine"
    with pytest.raises(ProjectError, match="not a workbench project"):
        Project.open(tmp_path / "taken")


def test_delete_removes_descendants_but_never_the_baseline(tmp_path, mlp_onnx, prune):
    with Project.create(tmp_path / "p", load_model(mlp_onnx)) as project:
        child = project.apply(project.root.id, prune, {"sparsity": 0.5})
        project.apply(child.id, prune, {"sparsity": 0.7})
        project.delete(child.id)
        assert len(project.variants()) == 1
        with pytest.raises(ProjectError, match="baseline"):
            project.delete(project.root.id)


@pytest.mark.parametrize("suffix", [".yaml", ".json"])
def test_recipe_replays_to_an_identical_artifact(tmp_path, demo_checkpoint, prune, suffix):
    with Project.create(tmp_path / "p", load_model(demo_checkpoint), source_sha256=sha256_file(demo_checkpoint)) as p:
        a = p.apply(p.root.id, prune, {"sparsity": 0.6})
        b = p.apply(a.id, prune, {"sparsity": 0.9, "overrides": {"0.0.weight": 0.0}})
        path = p.recipe(b.id).save(tmp_path / f"recipe{suffix}")
    recipe = Recipe.load(path)
    assert [s.plugin for s in recipe.steps] == ["magnitude_prune", "magnitude_prune"]
    result = replay(recipe, load_model(demo_checkpoint), discover_plugins(), model_sha256=sha256_file(demo_checkpoint))
    assert sha256_bytes(result.artifact_bytes()) == recipe.result_sha256 == b.onnx_sha


def test_cli_apply_writes_the_recipe_result(tmp_path, demo_checkpoint, prune, capsys):
    from workbench.cli import main

    with Project.create(tmp_path / "p", load_model(demo_checkpoint), source_sha256=sha256_file(demo_checkpoint)) as p:
        variant = p.apply(p.root.id, prune, {"sparsity": 0.7})
        p.recipe(variant.id).save(tmp_path / "r.yaml")
    out = tmp_path / "out.onnx"
    assert main(["apply", "--recipe", str(tmp_path / "r.yaml"), str(demo_checkpoint), "-o", str(out)]) == 0
    assert sha256_file(out) == variant.onnx_sha
    assert "identical to the artifact the recipe recorded" in capsys.readouterr().out


def test_recipe_errors_name_the_file(tmp_path, mlp_onnx):
    bad = tmp_path / "bad.yaml"
    bad.write_text("steps: [1, 2\n")
    with pytest.raises(RecipeError, match="bad.yaml: not valid yaml"):
        Recipe.load(bad)
    bad.write_text("format: something-else\n")
    with pytest.raises(RecipeError, match="bad.yaml: not a workbench recipe"):
        Recipe.load(bad)
    with pytest.raises(RecipeError, match="does not exist"):
        Recipe.load(tmp_path / "missing.yaml")
