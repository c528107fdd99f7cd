"""Every variant the workbench makes × every device profile: exported and verified from the bundle alone,
or refused before anything is written, with a fix. No cell crashes."""

from __future__ import annotations

import json

import pytest

from workbench.bundle_verify import verify_bundle
from workbench.datasets import mnist_sample_ref
from workbench.device_export import ExportRefused, export_for_device
from workbench.devices import load_devices
from workbench.loading import load_model
from workbench.plugin import discover_plugins
from workbench.project import Project

VARIANTS = {
    "fp32": None,
    "pruned": ("magnitude_prune", {"sparsity": 0.5}),
    "fp16": ("quantize_fp16", {}),
    "int8 static QDQ": ("quantize_int8", {"mode": "static", "quant_format": "QDQ"}),
    "int8 static QOperator": ("quantize_int8", {"mode": "static", "quant_format": "QOperator"}),
    "int8 weight-only": ("quantize_int8", {"mode": "weight_only"}),
    "int4": ("quantize_int4", {}),
    "shared 16 (uint4 codebook)": ("weight_sharing", {"clusters": 16}),
    "ternary (int2)": ("low_bit_weights", {"bits": 2}),
}
FIX_WORDS = ("export", "quantize", "install", "prune", "lower", "use ")


@pytest.fixture(scope="module")
def matrix_project(tmp_path_factory, demo_checkpoint):
    folder = tmp_path_factory.mktemp("matrix") / "project"
    registry = discover_plugins()
    with Project.create(folder, load_model(demo_checkpoint), dataset=mnist_sample_ref("evaluation", limit=60)) as p:
        ids = {}
        for label, step in VARIANTS.items():
            ids[label] = p.root.id if step is None else p.apply(p.root.id, registry.get(step[0]), step[1]).id
        yield p, ids


@pytest.fixture(autouse=True)
def short_timing(monkeypatch):
    monkeypatch.setattr("workbench.artifact_metrics.TIMING_SECONDS", 0.05)  # latency is checked elsewhere


@pytest.mark.parametrize("device_id", sorted(load_devices()[0]))
@pytest.mark.parametrize("variant", list(VARIANTS))
def test_every_variant_exports_or_is_refused_with_a_fix(matrix_project, tmp_path, variant, device_id):
    project, ids = matrix_project
    device = load_devices()[0][device_id]
    try:
        bundle = export_for_device(project, ids[variant], device, tmp_path, runs=5)
    except ExportRefused as exc:
        reasons = str(exc).split(": ", 1)[1].split("; ")
        assert all(any(word in reason.split(": ", 1)[-1] for word in FIX_WORDS) for reason in reasons), str(exc)
        assert list(tmp_path.iterdir()) == []  # refused before anything was written
        return
    manifest = json.loads((bundle / "manifest.json").read_text())
    assert manifest["metrics"]["samples"] == 60 and manifest["verification"]["passed"]
    checks = verify_bundle(bundle, runs=5, tolerance=10.0)
    wrong = [f"{c.figure}: {c.detail}" for c in checks if c.ok is False]
    assert not wrong, wrong
    expected = {"accuracy", "artifact size", "latency ratio"}
    if manifest["runtime"]["runtime"] == "tflite-micro":  # host timing of MCU kernels is reported, not compared
        expected = expected - {"latency ratio"} | {"TFLM arena"}
    assert {c.figure for c in checks if c.ok} >= expected


def test_the_matrix_exports_most_cells(matrix_project, tmp_path):
    """Refusals are the exception: every runtime that runs here takes the variants it can run."""
    from workbench.device_export import plan_export

    project, ids = matrix_project
    devices = load_devices()[0]
    plans = {(v, d): plan_export(project, ids[v], devices[d]) for v in VARIANTS for d in devices}
    exported = {cell for cell, plan in plans.items() if plan.ok}
    for variant in ("fp32", "pruned"):
        assert {(variant, d) for d in devices} <= exported
    assert ("int8 weight-only", "intel-openvino") in exported and ("int8 weight-only", "cortex-m7") in exported
    assert ("int8 static QDQ", "phone") in exported and ("int4", "x86-server") in exported
