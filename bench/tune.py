"""Issue-13 evidence: the auto-tuner finds the variant, with no human choice, and beats random search.

1. The demo LeNet-5 on the MNIST sample (4,000 train images to fine-tune, 1,000 test images to score),
   for a Raspberry Pi 5 (its bundle ships the variant's ONNX file as it is): goal >= 30x smaller download
   at <= 0.3 pt accuracy lost, found in <= 5 minutes.
2. PaddleOCR's text-direction classifier (a real third-party MobileNetV3, opset 11) on real rendered text
   lines, for a Raspberry Pi 5: goal >= 3.5x smaller, latency ratio <= 1.0 in the shipped session and
   >= 99 % top-1 agreement, found in <= 10 minutes.

Each search is Optuna's TPE over every plugin's declared parameters, in worker processes; then random
search gets the same number of trials in a fresh project, in the same run, and the hypervolume of both
is printed: of the objectives the study optimizes (size in halvings, latency, quality counted up to the
goal's floor), against the baseline's size, twice its latency and every answer wrong.

Usage: python bench/tune.py [--out DIR] [--workers 2] [--lenet-time 300] [--cls-time 600] [--only lenet|cls]
       [--seed 0]
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))


def search(label: str, project_folder: Path, model, ref, settings, scoring=None):
    from workbench.project import Project
    from workbench.tuning.study import tune

    started = time.perf_counter()
    reported: dict[int, float] = {}  # trial number -> seconds into the search when it finished
    with Project.create(project_folder, model, dataset=ref, scoring=scoring) as project:

        def show(record) -> None:
            reported[record.number] = time.perf_counter() - started
            if record.outcome is None:
                print(f"  [{label}] trial {record.number:3d} failed: {str(record.error)[:100]}")
                return
            o = record.outcome
            print(
                f"  [{label}] trial {record.number:3d} {1 / o.download_ratio:6.1f}x smaller, latency "
                f"{o.latency_ratio:.2f}x, {o.quality:.2%} ({-o.drop_points:+.2f} pt), "
                f"{'feasible' if o.feasible else 'infeasible'}, {o.seconds:.0f} s: {record.describe_chain()[:110]}"
            )

        result = tune(project, settings, on_trial=show)
        best = result.best
        found = None
        if best is not None:
            metrics = project.get(best.outcome.variant_id).metrics
            root = project.root.metrics
            found = {
                "download": 1 / best.outcome.download_ratio,  # what the device's bundle ships, xz-compressed
                "shipped": best.outcome.shipped,
                "file": root.artifact_bytes / metrics.artifact_bytes,
                "latency": metrics.latency_ratio,
                "accuracy": metrics.accuracy,
                "agreement": metrics.agreement,
                "drop": best.outcome.drop_points,
                "chain": best.describe_chain(),
                "variant": best.outcome.variant_id,
                "found_after": reported.get(best.number, float("nan")),
                "trial": best.number,
            }
    asked = sum(1 for r in result.records if r.state != "running")  # refused and failed trials count too
    return result, found, time.perf_counter() - started, asked


def tpe_then_random(name: str, out: Path, model, ref, goal, seconds: float, workers: int, seed: int = 0):
    """TPE for ``seconds``, then random search with as many trials, each in a fresh project."""
    from workbench.tuning.study import TuneSettings

    settings = TuneSettings(goal=goal, seconds=seconds, workers=workers, seed=seed)
    tpe = search(f"{name} tpe", out / f"{name}-tpe", model, ref, settings)
    random_settings = TuneSettings(goal=goal, trials=max(tpe[3], 1), workers=workers, sampler="random", seed=seed)
    return tpe, search(f"{name} random", out / f"{name}-random", model, ref, random_settings)


def check(found: dict | None, key: str, text: str, ok) -> tuple[str, str, bool]:
    """A goal line: the figure as ``text`` formats it, and whether ``ok`` holds for it."""
    if found is None:
        return key, "-", False
    return key, text.format(found[key]), bool(ok(found[key]))


def report(title: str, tpe, random_run, goals: list[tuple[str, str, bool]]) -> bool:
    (result, found, seconds, trials), (r_result, r_found, r_seconds, r_trials) = tpe, random_run
    print(f"\n{'=' * 100}\n{title}")
    print(f"TPE     {trials} trials in {seconds:.0f} s; hypervolume {result.hypervolume:.4f}")
    print(f"random  {r_trials} trials in {r_seconds:.0f} s; hypervolume {r_result.hypervolume:.4f}")
    if r_found is not None:
        print(f"        random's best: {r_found['download']:.1f}x smaller download, {-r_found['drop']:+.2f} pt")
    if found is None:
        print("best    none feasible")
        return False
    print(f"best    trial {found['trial']}, found {found['found_after']:.0f} s into the search: {found['chain']}")
    print(f"        measured on {found['shipped']}")
    print(
        f"        {found['download']:.1f}x smaller download ({found['file']:.2f}x smaller file), latency "
        f"{found['latency']:.3f}x, accuracy {found['accuracy']:.2%} ({-found['drop']:+.2f} pt), agreement "
        f"{found['agreement']:.2%}"
    )
    met = True
    for name, text, ok in goals:
        print(f"goal    {name:28s} {text:40s} {'met' if ok else 'NOT met'}")
        met = met and ok
    return met


def lenet(out: Path, args) -> bool:
    from workbench.datasets import mnist_sample_ref
    from workbench.demo import train_demo_model
    from workbench.loading import load_model
    from workbench.tuning.trial import Goal

    model = load_model(train_demo_model(out / "lenet5.pt"), remember_shapes=False)
    ref = mnist_sample_ref("evaluation")
    goal = Goal(device="raspberry-pi-5", max_drop=0.3)
    tpe, random_run = tpe_then_random("lenet", out, model, ref, goal, args.lenet_time, args.workers, args.seed)
    found = tpe[1]
    goals = [
        check(found, "download", "{:.1f}x smaller download (goal >= 30x)", lambda v: v >= 30),
        check(found, "drop", "{:.2f} pt accuracy lost (goal <= 0.3)", lambda v: v <= 0.3),
        check(found, "found_after", "found {:.0f} s into the search (goal <= 300 s)", lambda v: v <= 300),
    ]
    return report("LeNet-5 on the MNIST sample, for a Raspberry Pi 5", tpe, random_run, goals)


def classifier(out: Path, args) -> bool:
    from ship_table import render

    from workbench.datasets import DatasetRef, Preprocessing
    from workbench.loading import load_model
    from workbench.tuning.trial import Goal

    spec = importlib.util.find_spec("rapidocr_onnxruntime")
    if spec is None or not spec.submodule_search_locations:
        print("needs the test extras (rapidocr_onnxruntime ships the classifier)", file=sys.stderr)
        return False
    path = Path(spec.submodule_search_locations[0]) / "models" / "ch_ppocr_mobile_v2.0_cls_infer.onnx"
    render(out / "textlines", args.lines)
    prep = Preprocessing(resize=(48, 192), scale=1 / 255, mean=(0.5,), std=(0.5,))
    ref = DatasetRef(kind="folder", path=str(out / "textlines"), preprocessing=prep)
    model = load_model(path, input_shapes="1,3,48,192", remember_shapes=False)
    goal = Goal(device="raspberry-pi-5", max_drop=None, min_agreement=0.99, max_latency_ratio=1.0)
    tpe, random_run = tpe_then_random("cls", out, model, ref, goal, args.cls_time, args.workers, args.seed)
    found = tpe[1]
    goals = [
        check(found, "file", "{:.2f}x smaller file (goal >= 3.5x)", lambda v: v >= 3.5),
        check(found, "latency", "{:.3f}x latency (goal <= 1.0)", lambda v: v <= 1.0),
        check(found, "agreement", "{:.2%} agreement (goal >= 99 %)", lambda v: v >= 0.99),
        check(found, "found_after", "found {:.0f} s into the search (goal <= 600 s)", lambda v: v <= 600),
    ]
    return report(
        "PaddleOCR text-direction classifier on rendered text lines, for a Raspberry Pi 5", tpe, random_run, goals
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", help="folder for the projects (default: a new temp folder)")
    parser.add_argument("--workers", type=int, default=2, help="trials at once (worker processes)")
    parser.add_argument("--lenet-time", type=float, default=300.0)
    parser.add_argument("--cls-time", type=float, default=600.0)
    parser.add_argument("--lines", type=int, default=300, help="text lines for the classifier")
    parser.add_argument("--only", choices=["lenet", "cls"])
    parser.add_argument("--seed", type=int, default=0, help="the samplers' seed (both start from the same trials)")
    args = parser.parse_args()
    out = Path(args.out or tempfile.mkdtemp(prefix="bench-tune-"))
    out.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("WORKBENCH_CACHE_DIR", str(out / "cache"))
    ok = True
    if args.only in (None, "lenet"):
        ok = lenet(out, args) and ok
    if args.only in (None, "cls"):
        ok = classifier(out, args) and ok
    print(f"\noutput in {out}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
