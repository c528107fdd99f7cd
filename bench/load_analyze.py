"""Load + analyze an ONNX model and print the time: a generated ~100 MB one (target: under 2 s here), or a
given file such as a real 10 MB recognizer (target: under 1 s, the shape probe run only where static
inference fails).

Usage: python bench/load_analyze.py [--mb 100] [--repeat 3]
       python bench/load_analyze.py --model path/to/rec.onnx [--input-shape 1,3,48,320]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np


def make_model(path: Path, target_mb: float) -> int:
    """A CNN stem plus a stack of 2048-wide Gemm layers sized to reach ``target_mb`` of weights."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    width = 2048
    layers = max(1, round(target_mb * 1e6 / (width * width * 4)))
    nodes, inits = [], []
    conv_w = rng.standard_normal((16, 3, 3, 3)).astype(np.float32)
    inits.append(numpy_helper.from_array(conv_w, "stem.weight"))
    nodes += [
        helper.make_node("Conv", ["image", "stem.weight"], ["stem"], name="stem", pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["stem"], ["stem_relu"], name="stem_relu"),
        helper.make_node("GlobalAveragePool", ["stem_relu"], ["pooled"], name="pool"),
        helper.make_node("Flatten", ["pooled"], ["flat"], name="flatten"),
    ]
    inits.append(numpy_helper.from_array(rng.standard_normal((width, 16)).astype(np.float32), "proj.weight"))
    nodes.append(helper.make_node("Gemm", ["flat", "proj.weight"], ["h0"], name="proj", transB=1))
    current = "h0"
    for i in range(layers):
        inits.append(numpy_helper.from_array(rng.standard_normal((width, width)).astype(np.float32), f"fc{i}.weight"))
        nodes.append(helper.make_node("Gemm", [current, f"fc{i}.weight"], [f"g{i}"], name=f"fc{i}", transB=1))
        nodes.append(helper.make_node("Relu", [f"g{i}"], [f"r{i}"], name=f"relu{i}"))
        current = f"r{i}"
    graph = helper.make_graph(
        nodes,
        "bench",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["batch", 3, 224, 224])],
        [helper.make_tensor_value_info(current, TensorProto.FLOAT, ["batch", width])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8  # onnx's newest IR version is newer than onnxruntime reads
    onnx.save(model, path)
    return path.stat().st_size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--mb", type=float, default=100.0)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--model", type=Path, help="time this ONNX file instead of a generated one")
    parser.add_argument("--input-shape", help="with --model: the input shapes to analyze at")
    args = parser.parse_args()
    if args.model is not None:
        _time(args.model, args.input_shape, args.repeat, target=1.0)
        return

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "big.onnx"
        make_model(path, args.mb)
        _time(path, "1,3,224,224", args.repeat, target=2.0)


def _time(path: Path, input_shapes: str | None, repeat: int, target: float) -> None:
    from workbench.analysis import analyze
    from workbench.loading import load_model

    times, load_times = [], []
    for _ in range(repeat):
        start = time.perf_counter()
        model = load_model(path, input_shapes=input_shapes, remember_shapes=False)
        loaded = time.perf_counter()
        analysis = analyze(model)
        end = time.perf_counter()
        load_times.append(loaded - start)
        times.append(end - start)
    size = path.stat().st_size
    print(f"model            {size / 1e6:.1f} MB, {analysis.params:,} params, {len(analysis.layers)} layers")
    print(f"shapes           {analysis.input_shapes.describe() if analysis.input_shapes else '?'}")
    for note in analysis.notes:
        print(f"note             {note}")
    print(f"load             median {statistics.median(load_times):.3f} s")
    print(f"load + analyze   median {statistics.median(times):.3f} s, best {min(times):.3f} s (target < {target:g} s)")
    print("verdict          " + ("meets the target" if statistics.median(times) < target else "MISSES the target"))


if __name__ == "__main__":
    main()
