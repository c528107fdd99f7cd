"""onnxruntime's plain quantize_dynamic / quantize_static defaults vs the workbench's quantization
routes, on the same models and data in one run. Prints size ratio, latency ratio and top-1 agreement.

Goal for the workbench's best route on small CNNs: >= 3.5x smaller, not slower than fp32, >= 99 %
top-1 agreement. Usage: python bench/compare_quantization.py [--runs 300]
"""

from __future__ import annotations

import argparse
import glob
import os
import sysconfig
import tempfile
from pathlib import Path

import numpy as np


class _Reader:
    def __init__(self, name: str, samples: np.ndarray) -> None:
        self._feeds = iter([{name: s[None]} for s in samples])

    def get_next(self):
        return next(self._feeds, None)


def plain_ort(proto, mode: str, calibration: np.ndarray):
    """Exactly what a user gets from onnxruntime's defaults (no pre-processing)."""
    import onnx
    from onnxruntime.quantization import quantize_dynamic, quantize_static

    from workbench.onnx_prep import copy_proto

    # The quantizer rewrites a ModelProto argument in place (to external data): give it a copy.
    proto = copy_proto(proto)

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "q.onnx"
        if mode == "dynamic":
            quantize_dynamic(proto, out)
        else:
            quantize_static(proto, out, _Reader(proto.graph.input[0].name, calibration))
        return onnx.load(str(out))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=300)
    args = parser.parse_args()
    os.environ.setdefault("WORKBENCH_CACHE_DIR", tempfile.mkdtemp(prefix="workbench-bench-cache-"))
    import logging

    logging.getLogger().setLevel(logging.ERROR)

    from workbench.datasets import load_dataset, mnist_sample_ref, random_inputs_ref
    from workbench.demo import ensure_demo_model
    from workbench.evaluate import measure
    from workbench.loading import load_model
    from workbench.plugin import Task, discover_plugins, run_plugin

    registry = discover_plugins()
    paddle = glob.glob(
        str(Path(sysconfig.get_paths()["purelib"]) / "rapidocr_onnxruntime/models/ch_ppocr_mobile*.onnx")
    )
    cases = [
        (
            "LeNet-5 (MNIST sample, real labels)",
            load_model(ensure_demo_model()),
            load_dataset(mnist_sample_ref("test")),
            load_dataset(mnist_sample_ref("train", limit=128)),
        )
    ]
    if paddle:
        shape = (1, 3, 48, 192)
        cases.append(
            (
                "PaddleOCR cls MobileNetV3 (random inputs)",
                load_model(paddle[0], input_shapes=",".join(map(str, shape)), remember_shapes=False),
                load_dataset(random_inputs_ref(shape, 256)),
                load_dataset(random_inputs_ref(shape, 64)),
            )
        )
    routes = {
        "workbench weight-only int8 (per-channel)": {"mode": "weight_only"},
        "workbench static int8 QDQ (per-channel)": {"mode": "static"},
        "workbench static int8 QOperator": {"mode": "static", "quant_format": "QOperator"},
        "workbench dynamic int8 (MatMul/Gemm)": {"mode": "dynamic"},
    }
    for title, model, data, calibration in cases:
        base = model.derive(onnx_proto=model.to_onnx())
        base_bytes = len(base.onnx_bytes())
        print(f"\n{title}: fp32 {base_bytes:,} B, {len(data)} evaluation samples, {args.runs} timed runs, 1 thread")
        print(f"{'route':44s} {'size ratio':>10s} {'latency ratio':>14s} {'agreement':>10s} {'accuracy':>9s}")
        candidates = {}
        for mode in ("dynamic", "static"):
            try:
                candidates[f"onnxruntime quantize_{mode} (defaults)"] = base.derive(
                    onnx_proto=plain_ort(base.to_onnx(), mode, calibration.x)
                )
            except Exception as exc:
                label = f"onnxruntime quantize_{mode} (defaults)"
                print(f"{label:44s} failed: {type(exc).__name__}: {str(exc)[:80]}")
        for name, params in routes.items():
            try:
                candidates[name] = run_plugin(registry.get("quantize_int8"), model, params, Task(dataset=calibration))
            except Exception as exc:
                print(f"{name:44s} refused: {str(exc)[:90]}")
        for name, candidate in candidates.items():
            try:
                m = measure(candidate, baseline=base, dataset=data, runs=args.runs)
            except Exception as exc:
                print(f"{name:44s} does not run: {str(exc)[:90]}")
                continue
            accuracy = "-" if m.accuracy is None else f"{m.accuracy:.2%}"
            ratios = f"{base_bytes / m.artifact_bytes:9.2f}x {m.latency_ratio:13.2f}x"
            print(f"{name:44s} {ratios} {m.agreement:10.2%} {accuracy:>9s}")


if __name__ == "__main__":
    main()
