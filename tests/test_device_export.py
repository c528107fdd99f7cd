"""Device profiles and one-click export: every built-in target from the demo variant, parity checked
where the runtime runs here, each refusal, atomicity, and an independent check of the bundle."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from workbench.datasets import mnist_sample_ref
from workbench.device_export import ExportRefused, export_for_device, plan_export
from workbench.devices import load_devices
from workbench.errors import Cancelled, WorkbenchError
from workbench.loading import load_model
from workbench.plugin import Task, discover_plugins
from workbench.project import Project

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def project(tmp_path_factory, demo_checkpoint):
    folder = tmp_path_factory.mktemp("devices") / "project"
    with Project.create(folder, load_model(demo_checkpoint), dataset=mnist_sample_ref("test", limit=200)) as p:
        pruned = p.apply(p.root.id, discover_plugins().get("magnitude_prune"), {"sparsity": 0.5})
        yield p, pruned.id


def test_built_in_profiles_validate_and_cover_the_targets():
    profiles, problems = load_devices()
    assert not problems
    assert {
        "x86-server",
        "raspberry-pi-4",
        "raspberry-pi-5",
        "phone",
        "jetson-orin",
        "intel-openvino",
        "coral-edgetpu",
        "cortex-m7",
    } <= set(profiles)
    assert all(p.throughput_source and p.energy_source for p in profiles.values())


def test_a_broken_user_profile_is_reported_not_fatal(tmp_path):
    (tmp_path / "mine.yaml").write_text("id: my-board\nname: x\n")
    (tmp_path / "good.yaml").write_text(
        (ROOT / "resources/devices/raspberry_pi_4.yaml").read_text().replace("id: raspberry-pi-4", "id: my-pi")
    )
    profiles, problems = load_devices(tmp_path)
    assert "my-pi" in profiles and len(problems) == 1 and "mine.yaml" in problems[0]


EXPECTED_FILES = {
    "x86-server": {"model.onnx"},
    "raspberry-pi-4": {"model.onnx"},
    "raspberry-pi-5": {"model.onnx"},
    "phone": {"model.ort", "required_operators.config", "model.pte"},
    "jetson-orin": {"model_fp16.onnx", "build_engine.sh"},
    "intel-openvino": {"openvino/model.xml", "openvino/model.bin"},
    "cortex-m7": {"model.tflite", "model_data.cc", "model_data.h", "main.cc"},
    "coral-edgetpu": {"model.tflite", "compile_edgetpu.sh"},
    "android-litert": {"model.tflite"},
}


@pytest.mark.parametrize("device_id", sorted(EXPECTED_FILES))
def test_export_to_every_target_that_runs_here(project, tmp_path, device_id):
    p, variant_id = project
    device = load_devices()[0][device_id]
    bundle = export_for_device(p, variant_id, device, tmp_path)
    manifest = json.loads((bundle / "manifest.json").read_text())
    assert EXPECTED_FILES[device_id] <= set(manifest["files"])
    assert {"README.md", "report.json", "recipe.yaml"} <= set(manifest["files"])
    # every figure is the artifact's, on the whole evaluation split, in the runtime named in the manifest
    metrics = manifest["metrics"]
    assert manifest["verification"]["passed"] and manifest["verification"]["samples"] == 200
    assert metrics["samples"] == 200 and metrics["dataset"]["split"] == "evaluation"
    assert metrics["file"] == manifest["runtime"]["file"] and manifest["runtime"]["file"] in manifest["files"]
    assert metrics["correct"] == round(metrics["accuracy"] * 200) and metrics["latency_ratio"] > 0
    assert manifest["preprocessing"]["mean"] == [0.1307] and manifest["inputs"][0]["name"] == "input"
    # run.py loads the artifact from the manifest's settings and runs it
    ran = subprocess.run([sys.executable, "run.py"], cwd=bundle, capture_output=True, text=True, timeout=120)
    assert ran.returncode == 0 and "[[" in ran.stdout, ran.stderr
    # the independent checker recomputes every figure and agrees
    result = subprocess.run(
        [sys.executable, str(ROOT / "bench/verify_bundle.py"), str(bundle)], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr
    # a microcontroller runtime's host timing is reported, not compared: it says nothing of the device
    timing = "skipped latency ratio" if device_id == "cortex-m7" else "ok      latency ratio"
    assert "WRONG" not in result.stdout and "ok      accuracy" in result.stdout and timing in result.stdout


def test_coral_refuses_an_onnx_only_model_with_the_reason_before_anything_is_written(tmp_path, paddle_cls_onnx):
    model = load_model(paddle_cls_onnx, input_shapes="1,3,48,192")
    with Project.create(tmp_path / "p", model) as p, pytest.raises(ExportRefused, match="onnx2torch"):
        export_for_device(p, p.root.id, load_devices()[0]["coral-edgetpu"], tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_a_model_tflm_cannot_take_falls_back_to_the_header_and_says_so(tmp_path, demo_checkpoint):
    torch_model = load_model(demo_checkpoint)
    onnx_only = torch_model.derive(onnx_proto=torch_model.to_onnx())  # the graph alone: no module to convert
    with Project.create(tmp_path / "p", onnx_only, dataset=mnist_sample_ref("test", limit=50)) as p:
        plan = plan_export(p, p.root.id, load_devices()[0]["cortex-m7"])
        assert plan.ok and plan.format == "c-header" and "TensorFlow Lite Micro" in plan.warnings[0]
        bundle = export_for_device(p, p.root.id, load_devices()[0]["cortex-m7"], tmp_path / "out", runs=5)
    assert (bundle / "model_weights.h").is_file() and json.loads((bundle / "report.json").read_text())["format"] == (
        "c-header"
    )


def test_budget_refusal_suggests_the_fix(project):
    p, variant_id = project
    tiny = load_devices()[0]["raspberry-pi-4"].model_copy(update={"storage_bytes": 100_000})
    plan = plan_export(p, variant_id, tiny)
    assert not plan.ok and "quantize to int8 first" in plan.refusals[0]
    tiny_ram = tiny.model_copy(update={"storage_bytes": 10**9, "ram_bytes": 1000})
    assert "RAM budget" in plan_export(p, variant_id, tiny_ram).refusals[0]


def test_unsupported_operator_is_refused(tmp_path, paddle_cls_onnx):
    with Project.create(tmp_path / "p", load_model(paddle_cls_onnx, input_shapes="1,3,48,192")) as p:
        plan = plan_export(p, p.root.id, load_devices()[0]["cortex-m7"])
    # neither TFLM (no torch module to convert) nor the hand-made header (an operator it has no kernel for)
    assert not plan.ok and "onnx2torch" in plan.refusals[0] and "HardSigmoid" in plan.refusals[1]


def test_interrupted_export_leaves_nothing(project, tmp_path):
    p, variant_id = project
    task = Task(lambda fraction, message: task.cancel() if fraction >= 0.5 else None)
    with pytest.raises(Cancelled):
        export_for_device(p, variant_id, load_devices()[0]["x86-server"], tmp_path, task=task)
    assert list(tmp_path.iterdir()) == []


def test_fleet_packaging(project, tmp_path):
    import yaml

    p, variant_id = project
    bundle = export_for_device(p, variant_id, load_devices()[0]["raspberry-pi-5"], tmp_path, fleet="greengrass")
    recipe = yaml.safe_load((bundle / "fleet" / "greengrass-recipe.yaml").read_text())
    assert recipe["Manifests"][0]["Artifacts"][0]["Algorithm"] == "SHA-256"
    bundle = export_for_device(p, variant_id, load_devices()[0]["x86-server"], tmp_path, fleet="azure")
    assert "modulesContent" in json.loads((bundle / "fleet" / "azure-iot-edge-deployment.json").read_text())


def test_cli_export_and_devices(tmp_path, demo_checkpoint, capsys):
    from workbench.cli import main

    assert main(["devices"]) == 0
    assert "cortex-m7" in capsys.readouterr().out
    assert main(["export", str(demo_checkpoint), "--device", "phone", "-o", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert (
        "parity" in out
        and "measured         model.ort in onnxruntime" in out
        and "model storage" in out
        and "(from the profile, not measured)" in out
    )
    # the throwaway project is gone; verify finds the fp32 baseline through the model file
    bundle = next(tmp_path.glob("*-phone"))
    assert main(["verify", str(bundle)]) == 0
    assert "ok      latency ratio" in capsys.readouterr().out
    assert "also             model.pte: 100.00% top-1 agreement" in out


def test_existing_bundle_is_not_overwritten(project, tmp_path):
    p, variant_id = project
    device = load_devices()[0]["x86-server"]
    export_for_device(p, variant_id, device, tmp_path)
    with pytest.raises(WorkbenchError, match="already exists"):
        export_for_device(p, variant_id, device, tmp_path)
