"""What you see is what you ship: named data splits that steps respect, notes that reach the user,
runtime settings recorded with every figure and carried by the bundle, and a verifier that recomputes a
bundle's figures and names the one that is wrong."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from workbench.datasets import (
    CALIBRATION_SAMPLES,
    DatasetRef,
    load_dataset,
    mnist_sample_ref,
    split_rule,
)
from workbench.device_export import export_for_device
from workbench.devices import get_device
from workbench.loading import load_model
from workbench.plugin import Task, discover_plugins
from workbench.project import Project


def _numbered_npz(path, count: int, **extra) -> None:
    """Samples whose first pixel is their index, so a split's members can be identified."""
    x = np.zeros((count, 1, 28, 28), np.float32)
    x[:, 0, 0, 0] = np.arange(count)
    np.savez(path, x=x, y=np.arange(count) % 10, **extra)


def _ids(ref: DatasetRef) -> set[int]:
    return {int(v) for v in load_dataset(ref).x[:, 0, 0, 0]}


def test_unsplit_data_gets_a_fixed_seeded_split_that_never_overlaps(tmp_path):
    _numbered_npz(tmp_path / "d.npz", 500)
    ref = DatasetRef(kind="npz", path=str(tmp_path / "d.npz"), preprocessing={"scale": 1.0})
    train, calibration, evaluation = (_ids(ref.with_split(s)) for s in ("train", "calibration", "evaluation"))
    assert len(evaluation) == 100 and len(train) == 400 and not train & evaluation
    assert calibration <= train and len(calibration) == CALIBRATION_SAMPLES
    assert _ids(ref.with_split("evaluation")) == evaluation  # fixed: the same every time
    assert "seeded" in split_rule(ref) and "20%" in split_rule(ref)


def test_data_that_comes_split_keeps_its_split(tmp_path):
    from PIL import Image

    for part, count in (("train", 6), ("val", 3)):
        for cls in ("cat", "dog"):
            folder = tmp_path / "images" / part / cls
            folder.mkdir(parents=True)
            for i in range(count):
                Image.new("L", (8, 8), color=i * 20 + (part == "val") * 7).save(folder / f"{i}.png")
    ref = DatasetRef(kind="folder", path=str(tmp_path / "images"), preprocessing={"grayscale": True})
    assert len(load_dataset(ref.with_split("train"))) == 12 and len(load_dataset(ref.with_split("evaluation"))) == 6
    assert set(np.round(load_dataset(ref.with_split("evaluation")).x[:, 0, 0, 0] * 255) % 20) == {7}  # only val/ images
    assert "train/ and val/" in split_rule(ref)

    x = np.arange(40, dtype=np.float32).reshape(10, 1, 2, 2)
    np.savez(tmp_path / "s.npz", x_train=x[:8], y_train=np.zeros(8, int), x_test=x[8:], y_test=np.ones(2, int))
    npz = DatasetRef(kind="npz", path=str(tmp_path / "s.npz"), preprocessing={"scale": 1.0})
    assert len(load_dataset(npz.with_split("evaluation"))) == 2 and len(load_dataset(npz.with_split("train"))) == 8
    assert set(load_dataset(npz.with_split("evaluation")).y) == {1}


def test_a_project_step_trains_only_on_the_train_split(tmp_path, demo_checkpoint, monkeypatch):
    """Iterative pruning's fine-tuning sees train samples only, never the evaluation data its figures use."""
    import workbench.training as training

    _numbered_npz(tmp_path / "d.npz", 300)
    ref = DatasetRef(kind="npz", path=str(tmp_path / "d.npz"), preprocessing={"scale": 1.0})
    seen: list[set[int]] = []
    real_train = training.train
    monkeypatch.setattr(
        training,
        "train",
        lambda module, x, **kw: seen.append({int(v) for v in x[:, 0, 0, 0]}) or real_train(module, x, **kw),
    )
    with Project.create(tmp_path / "p", load_model(demo_checkpoint), dataset=ref) as project:
        assert project.dataset.split == "evaluation"
        params = {"sparsity": 0.5, "iterations": 2, "fine_tune_epochs": 1}
        project.apply(project.root.id, discover_plugins().get("magnitude_prune"), params)
    evaluation = _ids(ref.with_split("evaluation"))
    assert len(seen) == 2 and all(s == _ids(ref.with_split("train")) and not s & evaluation for s in seen)


def test_notes_reach_the_variant_the_cli_and_the_manifest(tmp_path, demo_checkpoint, capsys):
    from workbench.cli import main

    with Project.create(tmp_path / "p", load_model(demo_checkpoint), dataset=mnist_sample_ref(limit=100)) as project:
        variant = project.apply(project.root.id, discover_plugins().get("quantize_int8"), {"mode": "static"})
        assert any("calibrated on 128 samples" in n and "calibration split" in n for n in variant.notes)
        project.recipe(variant.id).save(tmp_path / "r.yaml")
        bundle = export_for_device(project, variant.id, get_device("x86-server"), tmp_path / "out", runs=5)
    manifest = json.loads((bundle / "manifest.json").read_text())
    assert any("calibrated on 128 samples" in n for n in manifest["notes"])
    assert "calibrated on 128 samples" in (bundle / "README.md").read_text()
    assert (
        main(["apply", "--recipe", str(tmp_path / "r.yaml"), str(demo_checkpoint), "-o", str(tmp_path / "o.onnx")]) == 0
    )
    assert "note: calibrated on 128 samples" in capsys.readouterr().out


@pytest.fixture(scope="module")
def weight_only_bundle(tmp_path_factory, demo_checkpoint):
    folder = tmp_path_factory.mktemp("ship")
    from workbench.evaluate import measure

    base, data = load_model(demo_checkpoint), load_dataset(mnist_sample_ref(limit=150))
    with Project.create(folder / "p", base, dataset=data.ref) as project:
        variant = project.apply(
            project.root.id,
            discover_plugins().get("quantize_int8"),
            {"mode": "weight_only"},
            measure=lambda model, task: measure(model, baseline=base, dataset=data, runs=10),
        )
        bundle = export_for_device(project, variant.id, get_device("x86-server"), folder / "out")
        yield project.get(variant.id), bundle


def test_runtime_settings_are_recorded_and_shipped(weight_only_bundle):
    from workbench.device_export import BundleRuntime, open_artifact

    variant, bundle = weight_only_bundle
    assert variant.metrics.runtime.config == {"session.disable_quant_qdq": "1"}
    manifest = json.loads((bundle / "manifest.json").read_text())
    assert manifest["runtime"]["config"] == {"session.disable_quant_qdq": "1"}
    assert manifest["metrics"]["runtime"]["config"] == {"session.disable_quant_qdq": "1"}
    assert 'options.add_session_config_entry("session.disable_quant_qdq", "1")' in (bundle / "README.md").read_text()
    # run.py, the README's loader, gives exactly what the verifier's loader gives
    x = np.random.default_rng(1).standard_normal((1, 1, 28, 28)).astype(np.float32)
    np.save(bundle.parent / "x.npy", x)
    code = (
        "import sys, numpy as np; sys.path.insert(0, '.'); import run; "
        f"np.save('{bundle.parent / 'y.npy'}', run.load()({{'input': np.load('{bundle.parent / 'x.npy'}')}})[0])"
    )
    subprocess.run([sys.executable, "-c", code], cwd=bundle, check=True, timeout=120)
    session = open_artifact(bundle, BundleRuntime.from_json(manifest["runtime"]))
    np.testing.assert_array_equal(np.load(bundle.parent / "y.npy"), session.run(None, {"input": x})[0])


def test_bundle_figures_are_the_artifacts_on_the_whole_evaluation_split(weight_only_bundle):
    variant, bundle = weight_only_bundle
    manifest = json.loads((bundle / "manifest.json").read_text())
    metrics = manifest["metrics"]
    assert metrics["samples"] == 150 and metrics["dataset"]["split"] == "evaluation"
    assert metrics["agreement_with_variant"] >= 0.97 and metrics["max_abs_diff_vs_variant"] is not None
    assert manifest["variant_metrics"]["accuracy"] == variant.metrics.accuracy
    assert "split" in manifest["split_rule"] and metrics["latency_method"].startswith("batch 1")


def test_verify_names_the_figure_that_is_wrong(weight_only_bundle, tmp_path):
    import shutil

    _variant, bundle = weight_only_bundle
    run = [sys.executable, str(Path(__file__).resolve().parents[1] / "bench" / "verify_bundle.py")]
    good = subprocess.run([*run, str(bundle)], capture_output=True, text=True, timeout=300)
    assert good.returncode == 0, good.stdout + good.stderr
    assert "ok      accuracy" in good.stdout and "ok      latency ratio" in good.stdout

    for field, change, figure in (
        ("correct", lambda v: v - 1, "accuracy"),
        ("latency_ratio", lambda v: v * 2, "latency ratio"),
    ):
        copy = tmp_path / field
        shutil.copytree(bundle, copy)
        manifest = json.loads((copy / "manifest.json").read_text())
        manifest["metrics"][field] = change(manifest["metrics"][field])
        (copy / "manifest.json").write_text(json.dumps(manifest))
        bad = subprocess.run([*run, str(copy)], capture_output=True, text=True, timeout=300)
        assert bad.returncode == 1 and f"WRONG   {figure}" in bad.stdout and figure in bad.stderr

    copy = tmp_path / "tampered"
    shutil.copytree(bundle, copy)
    (copy / "model.onnx").write_bytes((copy / "model.onnx").read_bytes() + b"\0")
    bad = subprocess.run([*run, str(copy)], capture_output=True, text=True, timeout=300)
    assert bad.returncode == 1 and "WRONG   file model.onnx" in bad.stdout


def test_demo_table_ratio_is_the_quotient_of_the_medians_it_prints(tmp_path, demo_checkpoint):
    from workbench.demo import comparison_rows
    from workbench.evaluate import measure

    model = load_model(demo_checkpoint)
    with Project.create(tmp_path / "p", model) as project:
        variant = project.apply(
            project.root.id,
            discover_plugins().get("magnitude_prune"),
            {"sparsity": 0.5},
            Task(),
            measure=lambda m, task: measure(m, baseline=model, runs=20),
        )
        row = comparison_rows([variant])[1]
    ratio, medians = row[-1].split("x (")
    candidate, baseline = (float(v) for v in medians.removesuffix(" ms)").split(" / "))
    assert float(ratio) == pytest.approx(candidate / baseline, abs=0.006)
    assert row[-2].startswith(f"{candidate:.4g}")
