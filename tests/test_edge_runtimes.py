"""The runtimes of the edge, converted and run here: LiteRT (Android, Coral), TensorFlow Lite Micro
(microcontrollers) and ExecuTorch (phones), each through its exporter in the registry."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from workbench.bundle_verify import verify_bundle
from workbench.datasets import load_dataset, mnist_sample_ref
from workbench.device_export import ExportRefused, export_for_device, plan_export
from workbench.devices import load_devices
from workbench.errors import WorkbenchError
from workbench.exporters import exporter_registry, open_artifact
from workbench.loading import load_model, model_from_module
from workbench.project import Project


@pytest.fixture(autouse=True)
def short_timing(monkeypatch):
    monkeypatch.setattr("workbench.artifact_metrics.TIMING_SECONDS", 0.05)  # latency is checked elsewhere


@pytest.fixture(scope="module")
def project(tmp_path_factory, demo_checkpoint):
    folder = tmp_path_factory.mktemp("edge") / "project"
    with Project.create(folder, load_model(demo_checkpoint), dataset=mnist_sample_ref("test", limit=120)) as p:
        yield p


def _manifest(bundle):
    return json.loads((bundle / "manifest.json").read_text())


def test_every_output_format_is_a_registered_exporter():
    registry = exporter_registry()
    assert {"onnx", "ort", "openvino", "onnx-fp16", "c-header", "tflite", "tflm", "executorch"} <= set(registry)
    assert all(e.precisions and e.label and e.runtime for e in registry.values())
    profiles = load_devices()[0]
    assert all(p.export.format in registry and set(p.export.also) <= set(registry) for p in profiles.values())


def test_litert_writes_each_precision_and_runs_it_in_its_interpreter(project, tmp_path):
    device = load_devices()[0]["android-litert"]
    sizes, io = {}, {}
    for precision in ("fp32", "fp16", "int8-weights", "int8"):
        bundle = export_for_device(project, project.root.id, device, tmp_path / precision, runs=5, precision=precision)
        manifest = _manifest(bundle)
        assert manifest["precision"] == precision and manifest["runtime"]["runtime"] == "litert"
        assert manifest["verification"]["passed"] and manifest["metrics"]["accuracy"] > 0.9
        sizes[precision] = manifest["metrics"]["artifact_bytes"]
        io[precision] = manifest["format_report"]["tflite"]["io_quantization"]
    assert sizes["int8"] < sizes["fp16"] < sizes["fp32"] and sizes["int8-weights"] < sizes["fp16"]
    # full int8 takes and gives int8, as Coral and microcontrollers need; dynamic int8 keeps float I/O
    assert io["int8"]["inputs"][0]["dtype"] == "int8" and io["int8"]["outputs"][0]["scale"] > 0
    assert io["int8-weights"]["inputs"][0]["dtype"] == "float32"


def test_full_int8_calibrates_on_the_calibration_split_and_refuses_without_data(tmp_path, demo_checkpoint):
    device = load_devices()[0]["coral-edgetpu"]
    no_data = Project.create(tmp_path / "p", load_model(demo_checkpoint))
    with no_data as p, pytest.raises(ExportRefused, match="calibration split"):
        export_for_device(p, p.root.id, device, tmp_path / "out", runs=5)
    assert not any((tmp_path / "out").glob("*coral*"))


@pytest.fixture(scope="module")
def coral_bundle(project, tmp_path_factory):
    out = tmp_path_factory.mktemp("coral")
    return export_for_device(project, project.root.id, load_devices()[0]["coral-edgetpu"], out, runs=5)


def test_coral_bundle_predicts_the_edge_tpu_placement_and_ships_the_compiler_script(coral_bundle):
    bundle = coral_bundle
    placement = _manifest(bundle)["format_report"]["edgetpu_placement"]
    assert placement and all(op["placement"] == "runs on the target" for op in placement)
    assert {"CONV_2D", "FULLY_CONNECTED"} <= {op["op"] for op in placement}
    assert "edgetpu_compiler" in (bundle / "compile_edgetpu.sh").read_text()
    assert "Edge TPU placement" in (bundle / "README.md").read_text()


def test_an_operator_outside_corals_table_and_everything_after_it_fall_back(tmp_path):
    from workbench.exporters.tflite import edgetpu_placement, float_tflite

    module = torch.nn.Sequential(torch.nn.Linear(8, 8), torch.nn.GELU(), torch.nn.Linear(8, 4)).eval()
    path = tmp_path / "m.tflite"
    path.write_bytes(float_tflite(model_from_module(module, "gelu", (1, 8))))
    ops = {"FULLY_CONNECTED"}
    placement = edgetpu_placement(path, ops)
    kinds = [op["placement"] for op in placement]
    assert kinds[0] != "runs on the target"  # float tensors: the Edge TPU takes 8-bit only
    assert "8-bit" in placement[0]["reason"] and all(k == "falls back" for k in kinds)


def test_tflm_bundle_states_the_exact_arena_and_flash_and_verify_recomputes_them(project, tmp_path):
    from workbench.exporters.tflm import tflm_arena_bytes

    bundle = export_for_device(project, project.root.id, load_devices()[0]["cortex-m7"], tmp_path, runs=5)
    manifest = _manifest(bundle)
    tflm = manifest["format_report"]["tflm"]
    content = (bundle / "model.tflite").read_bytes()
    assert tflm["arena_bytes"] == tflm_arena_bytes(content) > 1000
    assert tflm["flash_bytes"] == len(content) + tflm["runtime_flash_bytes"]
    assert manifest["runtime"]["runtime"] == "tflite-micro" and manifest["verification"]["passed"]
    main_cc = (bundle / "main.cc").read_text()
    assert f"Measured arena: {tflm['arena_bytes']} bytes" in main_cc and "resolver.AddConv2D();" in main_cc
    assert (bundle / "model_data.cc").read_text().count("0x") == len(content)
    checks = {c.figure: c for c in verify_bundle(bundle, runs=5, tolerance=10.0)}
    assert checks["TFLM arena"].ok and checks["accuracy"].ok
    # a manifest that overstates nothing but the arena is caught
    manifest["format_report"]["tflm"]["arena_bytes"] += 8
    (bundle / "manifest.json").write_text(json.dumps(manifest))
    assert not {c.figure: c for c in verify_bundle(bundle, runs=5, tolerance=10.0)}["TFLM arena"].ok


def test_an_arena_over_the_ram_budget_is_refused_with_the_fix_and_nothing_is_written(project, tmp_path):
    tiny = load_devices()[0]["cortex-m7"].model_copy(update={"ram_bytes": 4096})
    plan = plan_export(project, project.root.id, tiny)
    if not plan.ok:  # the estimate already says so
        assert "RAM" in plan.refusals[0]
        return
    with pytest.raises(ExportRefused, match="tensor arena needs .* structured_prune"):
        export_for_device(project, project.root.id, tiny, tmp_path, runs=5)
    assert list(tmp_path.iterdir()) == []


def test_the_phone_bundle_holds_an_executorch_program_verified_in_its_runtime(project, tmp_path):
    bundle = export_for_device(project, project.root.id, load_devices()[0]["phone"], tmp_path, runs=5)
    manifest = _manifest(bundle)
    (extra,) = manifest["also"]
    assert extra["runtime"]["file"] == "model.pte" and extra["verification"]["passed"]
    assert extra["verification"]["snr_db"] > 60  # fp32 XNNPACK against the variant
    from workbench.exporters import BundleRuntime

    session = open_artifact(bundle, BundleRuntime.from_json(extra["runtime"]))
    data = load_dataset(mnist_sample_ref("test", limit=4))
    expected = project.load_model(project.root.id).torch_module(torch.from_numpy(data.x)).detach().numpy()
    got = session.run(None, {session.get_inputs()[0].name: data.x})[0]
    np.testing.assert_allclose(got, expected, atol=1e-4)
    assert {c.figure for c in verify_bundle(bundle, runs=5, tolerance=10.0) if c.ok} >= {"model.pte accuracy"}


def test_placement_follows_the_profiles_operator_table_and_refusals_use_it(project):
    from workbench.analysis import analyze
    from workbench.placement import FALLS_BACK, ON_TARGET, UNSUPPORTED, place_layers

    layers = analyze(project.load_model(project.root.id)).layers
    profiles = load_devices()[0]
    assert {p.where for p in place_layers(layers, profiles["coral-edgetpu"])} == {ON_TARGET}
    # an Edge TPU table without max-pooling: the compiler stops at the first pool, the rest runs on the CPU
    no_pool = profiles["coral-edgetpu"].model_copy(
        update={"target_ops": [o for o in profiles["coral-edgetpu"].target_ops if o != "MAX_POOL_2D"]}
    )
    placed = place_layers(layers, no_pool)
    first = next(i for i, p in enumerate(placed) if p.op_type == "MaxPool")
    assert all(p.where == ON_TARGET for p in placed[:first]) and all(p.where == FALLS_BACK for p in placed[first:])
    assert "MAX_POOL_2D is not in" in placed[first].reason and "maps nothing after" in placed[first + 1].reason
    plan = plan_export(project, project.root.id, no_pool)
    assert plan.ok and "fall back to the CPU" in plan.warnings[0]
    # a microcontroller without a fully-connected kernel cannot take the model: refused, naming the layers
    no_fc = profiles["cortex-m7"].model_copy(
        update={"target_ops": [o for o in profiles["cortex-m7"].target_ops if o != "FULLY_CONNECTED"]}
    )
    assert [p.where for p in place_layers(layers, no_fc) if p.op_type == "Gemm"] == [UNSUPPORTED] * 3
    plan = plan_export(project, project.root.id, no_fc)
    assert not plan.ok and "3 layer(s) cannot run" in plan.refusals[0] and "Gemm" in plan.refusals[0]


def test_a_tflite_file_is_read_as_it_is_and_measured_in_litert(tmp_path):
    from workbench.cli import main
    from workbench.tflite_file import memory_timeline, read_tflite

    shipped = Path(__import__("tflite_micro").__file__).parent / "python" / "tflite_micro" / "sine_float.tflite"
    found = read_tflite(shipped)
    assert [op.op for op in found.operators] == ["FULLY_CONNECTED"] * 3 and found.params == 321
    assert found.weight_bytes == 321 * 4 and found.inputs[0].shape == (1, 1)
    assert max(s.live_bytes for s in memory_timeline(found)) == 2 * 16 * 4  # two 16-float activations live
    assert main(["info", str(shipped)]) == 0
    broken = tmp_path / "broken.tflite"
    broken.write_bytes(shipped.read_bytes()[:200])
    with pytest.raises(WorkbenchError, match="broken.tflite"):
        read_tflite(broken)
    assert main(["info", str(broken)]) != 0
    # the window and export take the model it came from, and say so in one line
    from workbench.errors import ModelLoadError

    with pytest.raises(ModelLoadError, match="workbench info.*workbench eval.*workbench export.*converted from"):
        load_model(shipped)


def test_a_tflite_file_is_bundled_as_it_is_for_litert_and_tflm_devices_and_verified(coral_bundle, tmp_path):
    from workbench.tflite_export import export_tflite_file, plan_tflite_export

    given = tmp_path / "kws_int8.tflite"  # a full-int8 LiteRT file from elsewhere: here, a Coral export's
    given.write_bytes((coral_bundle / "model.tflite").read_bytes())
    profiles = load_devices()[0]
    data = mnist_sample_ref("test", limit=60)
    for device_id in ("coral-edgetpu", "cortex-m7"):
        bundle = export_tflite_file(given, profiles[device_id], tmp_path / "out", data=data, runs=5)
        manifest = _manifest(bundle)
        assert (bundle / "model.tflite").read_bytes() == given.read_bytes()  # byte for byte, nothing converted
        assert manifest["precision"] == "int8" and manifest["metrics"]["accuracy"] > 0.9
        assert manifest["metrics"]["samples"] == 60 and manifest["source"]["sha256"]
        checks = {c.figure: c for c in verify_bundle(bundle, runs=5)}
        assert checks["accuracy"].ok and not [c for c in checks.values() if c.ok is False]
        assert "as it was given" in checks["latency ratio"].detail
    # TFLM is checked against the same file in LiteRT, and its arena is measured and rechecked
    assert "same file in LiteRT" in manifest["verification"]["summary"] and manifest["verification"]["passed"]
    assert checks["TFLM arena"].ok and (bundle / "main.cc").is_file()
    coral = _manifest(next((tmp_path / "out").glob("*coral-edgetpu")))
    assert any((tmp_path / "out").glob("*coral-edgetpu/compile_edgetpu.sh"))
    assert all(op["placement"] == "runs on the target" for op in coral["format_report"]["edgetpu_placement"])
    # a float file is not what Coral takes; a phone runs onnxruntime: both refused with the reason, nothing written
    shipped = Path(__import__("tflite_micro").__file__).parent / "python" / "tflite_micro" / "sine_float.tflite"
    assert (
        "computes in fp32 and coral-edgetpu takes int8"
        in plan_tflite_export(shipped, profiles["coral-edgetpu"]).refusals[0]
    )
    assert "goes as it is only to" in plan_tflite_export(shipped, profiles["phone"]).refusals[0]
    with pytest.raises(ExportRefused, match="sine_float.tflite"):
        export_tflite_file(shipped, profiles["phone"], tmp_path / "refused")
    assert not (tmp_path / "refused").exists()
    # the command line: bundled and printed; a device that does not run LiteRT gets one line, exit 2
    from workbench.cli import main

    assert main(["export", str(given), "--device", "android-litert", "-o", str(tmp_path / "cli")]) == 0
    assert main(["export", str(given), "--device", "phone", "-o", str(tmp_path / "cli")]) != 0
    # random inputs, stated as such, when no data is given
    bundle = export_tflite_file(shipped, profiles["android-litert"], tmp_path / "float", runs=5)
    assert _manifest(bundle)["dataset"]["kind"] == "random"
