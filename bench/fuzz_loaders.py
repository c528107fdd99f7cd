"""Fuzz the model loader with mutated copies of a real third-party ONNX model.

Each iteration mutates PaddleOCR's text-direction classifier (shipped by rapidocr_onnxruntime, a test
dependency): bit flips, byte-range edits, or edits of protobuf fields (dims, data types, opsets,
operator names, attributes, tensor sizes). A worker process opens the copy the way ``workbench info``
and ``workbench eval`` do (load, analyse, run two samples) and answers with one of:

- ``ok``: the copy was still a model the workbench could open and measure;
- ``clean``: a WorkbenchError, one line naming the file;
- ``uncaught``: any other exception (a bug: the user would see an internal error).

A worker that dies is a ``crash``; one that does not answer within the time limit is a ``hang``.
Both are restarted. Goal: >= 5,000 iterations, 0 crashes, 0 uncaught, 0 hangs.

    python bench/fuzz_loaders.py [--iterations 5000] [--seed 0] [--timeout 60]
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SHAPE = "1,3,48,192"


def seed_model() -> Path:
    import rapidocr_onnxruntime

    path = Path(rapidocr_onnxruntime.__file__).parent / "models" / "ch_ppocr_mobile_v2.0_cls_infer.onnx"
    if not path.is_file():
        sys.exit(f"error: {path}: the seed model is missing (pip install -e '.[test]')")
    return path


# --- mutations -------------------------------------------------------------------------------------
def flip_bits(data: bytes, rng: random.Random) -> bytes:
    out = bytearray(data)
    for _ in range(rng.randint(1, 8)):
        position = rng.randrange(len(out))
        out[position] ^= 1 << rng.randrange(8)
    return bytes(out)


def edit_bytes(data: bytes, rng: random.Random) -> bytes:
    out = bytearray(data)
    start = rng.randrange(len(out))
    length = rng.randint(1, 4096)
    choice = rng.randrange(5)
    if choice == 0:  # overwrite with random bytes
        out[start : start + length] = rng.randbytes(min(length, len(out) - start))
    elif choice == 1:  # delete a range
        del out[start : start + length]
    elif choice == 2:  # duplicate a range
        out[start:start] = out[start : start + length]
    elif choice == 3:  # truncate
        del out[start:]
    else:  # fill with a byte that parses as a large varint
        out[start : start + length] = b"\xff" * min(length, len(out) - start)
    return bytes(out)


def edit_fields(data: bytes, rng: random.Random) -> bytes:
    import onnx
    from onnx import TensorProto

    model = onnx.load_from_string(data)
    graph = model.graph
    for _ in range(rng.randint(1, 3)):
        choice = rng.randrange(12)
        if choice == 0 and graph.initializer:  # a dim of a weight
            tensor = rng.choice(graph.initializer)
            if tensor.dims:
                tensor.dims[rng.randrange(len(tensor.dims))] = rng.choice([0, 1, -1, 7, 10**6, 2**31 - 1, 2**40])
        elif choice == 1 and graph.initializer:  # a weight's data type
            rng.choice(graph.initializer).data_type = rng.choice([0, 2, 7, 8, 9, 10, 16, 17, 21, 22, 99])
        elif choice == 2 and graph.initializer:  # a weight's bytes
            tensor = rng.choice(graph.initializer)
            tensor.raw_data = tensor.raw_data[: rng.randrange(len(tensor.raw_data) + 1)]
        elif choice == 3:  # the opset
            model.opset_import[0].version = rng.choice([1, 6, 9, 13, 21, 23, 99, -1])
        elif choice == 4 and graph.node:  # an operator
            rng.choice(graph.node).op_type = rng.choice(
                ["Loop", "If", "Scan", "ConstantOfShape", "Expand", "Tile", "Range", "Reshape", "NoSuchOp", ""]
            )
        elif choice == 5 and graph.node:  # an input name (dangling or self-referencing edges)
            node = rng.choice(graph.node)
            if node.input:
                node.input[rng.randrange(len(node.input))] = rng.choice(
                    [node.output[0] if node.output else "", "missing", graph.input[0].name, ""]
                )
        elif choice == 6 and graph.node:  # an integer attribute
            node = rng.choice(graph.node)
            for attribute in node.attribute:
                if attribute.ints:
                    attribute.ints[rng.randrange(len(attribute.ints))] = rng.choice([0, -1, 2**31, 10**9])
                elif attribute.type == onnx.AttributeProto.INT:
                    attribute.i = rng.choice([0, -1, 2**31, 10**9])
        elif choice == 7 and graph.input:  # the input's declared shape
            dims = graph.input[0].type.tensor_type.shape.dim
            if dims:
                dims[rng.randrange(len(dims))].dim_value = rng.choice([0, 1, 10**5, 2**31 - 1])
        elif choice == 8 and graph.input:  # the input's element type
            graph.input[0].type.tensor_type.elem_type = rng.choice([TensorProto.STRING, TensorProto.BOOL, 0, 99])
        elif choice == 9 and graph.node:  # drop a node
            del graph.node[rng.randrange(len(graph.node))]
        elif choice == 10 and graph.initializer:  # a weight that points to external data
            tensor = rng.choice(graph.initializer)
            tensor.data_location = TensorProto.EXTERNAL
            entry = tensor.external_data.add()
            entry.key, entry.value = "location", rng.choice(["w.bin", "../../etc/passwd", "/dev/zero", ""])
        elif graph.output:  # the output's name
            graph.output[0].name = rng.choice(["", "nowhere", graph.input[0].name if graph.input else "x"])
    return model.SerializeToString()


MUTATIONS = {"bit flips": flip_bits, "byte ranges": edit_bytes, "protobuf fields": edit_fields}


# --- the worker: opens what it is given, as info and eval do ----------------------------------------
def worker() -> None:
    import numpy as np

    from workbench.analysis import analyze
    from workbench.datasets import Dataset, DatasetRef
    from workbench.errors import WorkbenchError, with_path
    from workbench.evaluate import measure
    from workbench.loading import load_model

    # Answers go to the real stdout; whatever the libraries print (from Python or C) during a job goes
    # to a file, and is reported: a user would see it on the terminal.
    answers = os.fdopen(os.dup(1), "w")
    noise_file = tempfile.TemporaryFile()  # noqa: SIM115 (lives as long as the worker)
    os.dup2(noise_file.fileno(), 1)
    os.dup2(noise_file.fileno(), 2)
    sys.stdout = sys.stderr = open(noise_file.fileno(), "w", closefd=False)  # noqa: SIM115
    for line in sys.stdin:
        path = line.strip()
        noise_file.seek(0)
        noise_file.truncate()
        try:
            model = load_model(path, input_shapes=SHAPE, remember_shapes=False)
            analyze(model)
            shape = model.concrete_shapes()[model.inputs[0].name]
            x = np.random.default_rng(0).standard_normal((2, *shape[1:])).astype(np.float32)
            measure(model, baseline=model, dataset=Dataset(DatasetRef(kind="npz", path=path), x, None), runs=0)
            answer = {"result": "ok"}
        except WorkbenchError as exc:  # as the CLI prints it: naming the file it was working on
            answer = {"result": "clean", "message": str(with_path(exc, path)).replace(path, "<file>")[:300]}
        except Exception as exc:
            answer = {"result": "uncaught", "message": f"{type(exc).__name__}: {str(exc)[:300]}"}
        sys.stdout.flush()
        noise_file.seek(0)
        answer["noise"] = noise_file.read().decode("utf-8", "replace").strip()[:300]
        answers.write(json.dumps(answer) + "\n")
        answers.flush()


class Worker:
    def __init__(self, env: dict[str, str]) -> None:
        self.process = subprocess.Popen(
            [sys.executable, __file__, "--worker"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env=env,
        )
        self.buffer = b""

    def ask(self, path: str, timeout: float) -> dict | str:
        import select

        self.process.stdin.write(path.encode() + b"\n")
        self.process.stdin.flush()
        deadline = time.monotonic() + timeout
        fd = self.process.stdout.fileno()
        while b"\n" not in self.buffer:
            left = deadline - time.monotonic()
            if left <= 0:
                return "hang"
            ready, _, _ = select.select([fd], [], [], min(left, 1.0))
            if ready:
                chunk = os.read(fd, 65536)
                if not chunk:  # the worker closed its output: it died
                    self.process.wait()
                    return "crash"
                self.buffer += chunk
        line, self.buffer = self.buffer.split(b"\n", 1)
        return json.loads(line)

    def stop(self) -> None:
        self.process.kill()
        self.process.wait()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=5000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds a worker may take per file")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker()
        return 0

    rng = random.Random(args.seed)
    original = seed_model().read_bytes()
    counts: collections.Counter[str] = collections.Counter()
    by_mutation: dict[str, collections.Counter[str]] = {name: collections.Counter() for name in MUTATIONS}
    examples: dict[str, list[str]] = collections.defaultdict(list)
    reasons: collections.Counter[str] = collections.Counter()
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="fuzz-") as tmp:
        env = dict(
            os.environ, WORKBENCH_CONFIG_DIR=str(Path(tmp) / "config"), WORKBENCH_CACHE_DIR=str(Path(tmp) / "cache")
        )
        worker_process = Worker(env)
        for iteration in range(args.iterations):
            name = rng.choice(list(MUTATIONS))
            try:
                data = MUTATIONS[name](original, rng)
            except Exception:  # the seed could not be edited this way (protobuf refused): flip bits instead
                name, data = "bit flips", flip_bits(original, rng)
            path = Path(tmp) / f"case-{iteration}.onnx"
            path.write_bytes(data)
            answer = worker_process.ask(str(path), args.timeout)
            if isinstance(answer, str):  # crash or hang: keep the input, restart the worker
                kept = Path(tmp).parent / f"fuzz-{answer}-{args.seed}-{iteration}.onnx"
                kept.write_bytes(data)
                result, message = answer, str(kept)
                worker_process.stop()
                worker_process = Worker(env)
            else:
                result, message = answer["result"], answer.get("message", "")
                if answer.get("noise"):
                    counts["printed to the terminal"] += 1
                    if len(examples["printed to the terminal"]) < 5:
                        examples["printed to the terminal"].append(f"#{iteration} ({name}): {answer['noise']}")
            counts[result] += 1
            by_mutation[name][result] += 1
            if result == "clean":
                reasons[message.split(": ", 1)[-1][:60]] += 1
            elif result != "ok" and len(examples[result]) < 5:
                examples[result].append(f"#{iteration} ({name}): {message}")
            path.unlink()
            if (iteration + 1) % 500 == 0:
                print(f"  {iteration + 1} iterations, {dict(counts)}", file=sys.stderr, flush=True)
        worker_process.stop()
    elapsed = time.monotonic() - started
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024

    print(f"fuzzed {args.iterations:,} mutated copies of {seed_model().name} in {elapsed:.0f}s (seed {args.seed})")
    print(f"peak worker memory: {peak:,.0f} MB")
    print()
    print(f"{'mutation':18s} {'ok':>6s} {'clean':>6s} {'crash':>6s} {'uncaught':>9s} {'hang':>6s}")
    for name, counter in [*by_mutation.items(), ("all", counts)]:
        print(
            f"{name:18s} {counter['ok']:6d} {counter['clean']:6d} {counter['crash']:6d} "
            f"{counter['uncaught']:9d} {counter['hang']:6d}"
        )
    print()
    print("most common clean errors:")
    for reason, count in reasons.most_common(8):
        print(f"  {count:5d}  {reason}")
    for kind, listed in examples.items():
        print(f"\n{kind}:")
        for line in listed:
            print(f"  {line}")
    print(f"\niterations where the libraries printed to the terminal: {counts['printed to the terminal']}")
    goal = args.iterations >= 5000 and counts["crash"] == counts["uncaught"] == counts["hang"] == 0
    print(f"\ngoal (>= 5,000 iterations; 0 crashes, 0 uncaught, 0 hangs): {'met' if goal else 'NOT met'}")
    return 0 if goal else 1


if __name__ == "__main__":
    sys.exit(main())
