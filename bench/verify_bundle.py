"""Independent check of an exported bundle, from the bundle alone: recompute every file's size and
sha256, re-run the artifact on the data the manifest names (accuracy, agreement with the manifest's
metrics) and the latency ratio on this host, and compare with what the manifest and report claim.

Usage: python bench/verify_bundle.py BUNDLE_DIR [--runs 50]   (exit 1 when a check fails)
"""

from __future__ import annotations

import argparse
import hashlib
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("bundle", type=Path)
    parser.add_argument("--runs", type=int, default=50)
    args = parser.parse_args()
    manifest = json.loads((args.bundle / "manifest.json").read_text())
    report = json.loads((args.bundle / "report.json").read_text())
    failures = []

    def check(ok: bool, label: str) -> None:
        print(f"{'ok  ' if ok else 'FAIL'} {label}")
        if not ok:
            failures.append(label)

    for name, entry in manifest["files"].items():
        data = (args.bundle / name).read_bytes()
        check(
            len(data) == entry["bytes"] and hashlib.sha256(data).hexdigest() == entry["sha256"],
            f"{name}: {len(data):,} B, sha256 matches the manifest",
        )

    run = _runner(args.bundle, manifest)
    if run is None:
        print("note artifact has no runtime on this host; file checks only")
        return 1 if failures else _done()
    shape = manifest["input_shapes"][manifest["inputs"][0]["name"]]
    x, y = _data(manifest, shape)
    outputs = np.concatenate([run(x[i : i + 1]) for i in range(len(x))])
    predicted = outputs.reshape(len(x), -1).argmax(1)
    metrics = manifest.get("metrics") or {}
    if y is not None and metrics.get("accuracy") is not None and metrics.get("samples") == len(x):
        accuracy = float(np.mean(predicted == y))
        tolerance = 0.02 if manifest["precision"] != "fp32" else 1e-9
        check(
            abs(accuracy - metrics["accuracy"]) <= tolerance,
            f"accuracy {accuracy:.4f} vs manifest {metrics['accuracy']:.4f} ({manifest['precision']}, tol {tolerance})",
        )
    verification = manifest.get("verification")
    if verification:
        check(verification["passed"], f"manifest says parity passed: {verification['summary']}")
    timings = []
    for _ in range(args.runs):
        start = time.perf_counter()
        run(x[:1])
        timings.append((time.perf_counter() - start) * 1000)
    measured = statistics.median(timings)
    claimed = (report.get("benchmark_this_host") or {}).get("artifact_ms")
    if claimed:
        ratio = measured / claimed
        print(
            f"info latency {measured:.3f} ms median here vs {claimed:.3f} ms in the report (ratio {ratio:.2f}; "
            "same host expected within noise)"
        )
    return 1 if failures else _done()


def _done() -> int:
    print("all checks passed")
    return 0


def _runner(bundle: Path, manifest: dict):
    files = manifest["files"]
    name = next(
        (f for f in ("model.onnx", "model.ort", "model_fp16.onnx", "model_int8_weights.onnx") if f in files), None
    )
    if name is not None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        session = ort.InferenceSession(str(bundle / name), options, providers=["CPUExecutionProvider"])
        return lambda x: session.run(None, {session.get_inputs()[0].name: x})[0]
    if "openvino/model.xml" in files:
        import openvino as ov

        compiled = ov.Core().compile_model(str(bundle / "openvino/model.xml"), "CPU")
        return lambda x: compiled(x)[compiled.output(0)]
    return None


def _data(manifest: dict, shape: list[int]):
    if manifest.get("dataset"):
        from workbench.datasets import DatasetRef, load_dataset

        data = load_dataset(DatasetRef.model_validate(manifest["dataset"]))
        return data.x, data.y
    return np.random.default_rng(0).standard_normal((16, *shape[1:])).astype(np.float32), None


if __name__ == "__main__":
    sys.exit(main())
