"""One trial of a search: a chain of steps applied to the project's root, each stored as a variant
(identical steps reuse the stored one), each measured like a step in the window, and the last held
against the goal: the accuracy it may lose and the device's budgets.

Runs in a worker process (or a Ray task): it opens the project itself, so only the folder, the chain
and the goal cross the process boundary, and the variants it makes are the project's own.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field

STAGES: dict[str, tuple[str, ...]] = {
    # what a step does to the network's structure or weights' count, then how the rest is coded
    "structure": ("magnitude_prune", "structured_prune", "low_rank", "distill"),
    "coding": (
        "weight_sharing",
        "quantize_int8",
        "low_bit_weights",
        "quantize_int4",
        "mixed_precision",
        "quantize_fp16",
        "qat_int8",
    ),
}
GUI_RUNS = 30  # timed runs per measurement, as the window's steps use
LATENCY_STEP = 0.05  # latency ratios closer than this are one value to the sampler


class Goal(BaseModel):
    """What the user asked for: a device, the accuracy they can lose, and the plugins allowed."""

    device: str
    max_drop: float | None = Field(0.5, ge=0, description="most points of accuracy (or agreement) to lose")
    min_agreement: float | None = Field(None, ge=0, le=1, description="least top-1 agreement with the baseline")
    max_latency_ratio: float | None = Field(
        None, gt=0, description="slowest latency against the baseline, measured here in the shipped session"
    )
    max_latency_ms: float | None = Field(None, gt=0, description="slowest estimated latency on the device")
    plugins: list[str] = Field(default_factory=lambda: [p for ids in STAGES.values() for p in ids])


class Step(BaseModel):
    plugin: str
    params: dict[str, Any]


class Constraint(BaseModel):
    value: float  # <= 0 when met (Optuna's convention)
    detail: str
    source: Literal["measured", "estimated"]


class Outcome(BaseModel):
    """What a trial found: the variant, the objectives, and every constraint with its source."""

    variant_id: str
    chain: list[Step]
    download_ratio: float  # what the device's bundle ships, xz-compressed / the same for the baseline
    latency_ratio: float  # in the device's runtime where it runs here, else the variant's ONNX in onnxruntime
    quality: float  # accuracy (labelled data) or agreement with the baseline, 0..1
    quality_name: str
    drop_points: float
    constraints: dict[str, Constraint]
    seconds: float
    shipped: str = ""  # the file the size was measured on

    @property
    def feasible(self) -> bool:
        return all(c.value <= 0 for c in self.constraints.values())

    def objectives(self, goal: Goal) -> tuple[float, float, float]:
        """Download ratio in halvings (log2: 20x to 40x smaller is worth what 2x to 4x is) and latency ratio,
        both down, and quality, up, as the sampler compares them.

        Quality counts no higher than the goal's floor: the user named the accuracy they can lose, so a
        variant that keeps more of it is not better for the search (rewarding it would spend trials on large,
        accurate variants the user did not ask for; the Pareto table still shows the real figures). Latency
        counts in steps of :data:`LATENCY_STEP` (this host's timing noise: finer differences would make every
        variant look Pareto-optimal)."""
        latency = round(self.latency_ratio / LATENCY_STEP) * LATENCY_STEP
        quality = self.quality + min(self.drop_points - self.allowed_drop(goal), 0.0) / 100
        return math.log2(self.download_ratio), latency, quality

    def allowed_drop(self, goal: Goal) -> float:
        """Points of this trial's quality measure the goal lets go (0 when the goal says nothing of it)."""
        if goal.max_drop is not None:
            return goal.max_drop
        if goal.min_agreement is not None and self.quality_name == "agreement":
            return (1 - goal.min_agreement) * 100
        return 0.0


def run_trial(folder: str, chain: list[dict[str, Any]], goal: dict[str, Any]) -> dict[str, Any]:
    """Apply and measure the chain; ``{"outcome": ...}`` or ``{"error": one line}`` (a step that refuses,
    a model a plugin cannot take), never an exception: a failed trial is a result of the search."""
    from workbench.errors import WorkbenchError, describe_exception

    started = time.perf_counter()
    try:
        outcome = _run(folder, [Step.model_validate(s) for s in chain], Goal.model_validate(goal), started)
        return {"outcome": outcome.model_dump(mode="json")}
    except WorkbenchError as exc:
        return {"error": str(exc)}
    except Exception as exc:  # a plugin's own bug must not end the search: the trial fails, and says why
        return {"error": describe_exception(exc)}


def _run(folder: str, chain: list[Step], goal: Goal, started: float) -> Outcome:
    from workbench.datasets import evaluation_ref, load_dataset
    from workbench.device_export import plan_export
    from workbench.devices import get_device
    from workbench.evaluate import measure
    from workbench.feeds import random_inputs_for
    from workbench.plugin import Task, discover_plugins
    from workbench.project import Project

    registry = discover_plugins()
    with Project.open(folder) as project:
        root = project.root
        baseline = project.load_model(root.id)
        ref = project.dataset or random_inputs_for(baseline)  # random inputs: agreement, stated as such
        data = load_dataset(evaluation_ref(ref)) if ref is not None else None

        def measured(model: Any, part: Task) -> Any:
            return measure(model, baseline=baseline, dataset=data, runs=GUI_RUNS, task=part, scoring=project.scoring)

        if root.metrics is None:
            measure_root(project, Task())
            root = project.root
        variant = root
        for step in chain:
            plugin = registry.get(step.plugin)
            variant = project.apply(variant.id, plugin, step.params, Task(), measure=measured)
            if variant.metrics is None:  # a cached variant stored by a step that measured nothing
                project.set_metrics(variant.id, measured(project.load_model(variant.id), Task()))
                variant = project.get(variant.id)
        metrics, reference = variant.metrics, root.metrics
        assert metrics is not None and reference is not None
        if reference.accuracy is not None and metrics.accuracy is not None:
            quality, name = metrics.accuracy, f"accuracy ({metrics.metric or 'top1'})"
            # rounded: 3 of 1,000 lost is 0.3 pt, not 0.30000000000000426 (which would break a 0.3 budget)
            drop = round((reference.accuracy - metrics.accuracy) * 100, 6)
        else:
            quality, name = (metrics.agreement if metrics.agreement is not None else 1.0), "agreement"
            drop = round((1 - quality) * 100, 6)
        device = get_device(goal.device)
        plan = plan_export(project, variant.id, device)
        shipped, refusal = _shipped(project, variant.id, plan, timed=True)
        base, _ = _shipped(project, root.id, plan_export(project, root.id, device), timed=False)
        constraints = _constraints(goal, plan, metrics, drop, name, shipped, refusal)
        if shipped is not None and base is not None:
            download_ratio, shipped_text = shipped.download / base.download, shipped.describe()
        else:  # the device takes neither this variant nor the baseline: its stored file, and infeasible anyway
            download_ratio, shipped_text = metrics.download / reference.download, "the variant's ONNX file"
        latency = shipped.latency_ratio if shipped is not None and shipped.latency_ratio is not None else None
        if latency is None:
            latency = metrics.latency_ratio if metrics.latency_ratio is not None else 1.0
        return Outcome(
            variant_id=variant.id,
            chain=chain,
            download_ratio=download_ratio,
            latency_ratio=latency,
            quality=quality,
            quality_name=name,
            drop_points=drop,
            constraints=constraints,
            seconds=time.perf_counter() - started,
            shipped=shipped_text,
        )


def stored_shipped(folder: Path, variant_id: str, device_id: str, timed: bool = False) -> Any:
    """The shipped figures a trial measured for this variant and device (``timed``: with the file's own
    latency ratio), or None: read as JSON from beside the study, never run."""
    import json

    from workbench.device_export import Shipped

    path = folder / "tuning" / "shipped" / f"{variant_id}-{device_id}.json"
    if not path.is_file():
        return None
    try:
        stored = json.loads(path.read_text(encoding="utf-8"))
        if timed and stored.pop("timed", None) is not True:
            return None
        stored.pop("timed", None)
        return Shipped(**stored)
    except (OSError, ValueError, TypeError):
        return None  # a damaged entry is measured again


def _shipped(project: Any, variant_id: str, plan: Any, timed: bool) -> tuple[Any, str | None]:
    """The device's shipped file for the variant, measured (:func:`shipped_figures`), and stored beside the
    study so a variant two trials share is converted once; or why the device's exporter refuses it."""
    import json

    from workbench.device_export import shipped_figures
    from workbench.errors import WorkbenchError
    from workbench.fileio import atomic_write_text

    cached = stored_shipped(project.folder, variant_id, plan.device.id, timed)
    if cached is not None:
        return cached, None
    if plan.format == "onnx" and timed:
        timed = False  # the stored file as it is: the variant's own measurement is the shipped session's
    try:
        shipped = shipped_figures(project, variant_id, plan, timed_runs=GUI_RUNS if timed else 0)
    except WorkbenchError as exc:
        return None, str(exc)
    path = project.folder / "tuning" / "shipped" / f"{variant_id}-{plan.device.id}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps({**shipped.__dict__, "timed": timed or plan.format == "onnx"}))
    return shipped, None


def _constraints(
    goal: Goal, plan: Any, metrics: Any, drop: float, quality_name: str, shipped: Any, refusal: str | None
) -> dict[str, Constraint]:
    found: dict[str, Constraint] = {}
    if goal.max_drop is not None:
        found["accuracy"] = Constraint(
            value=drop - goal.max_drop,
            detail=f"{quality_name}: {drop:.2f} pt lost (at most {goal.max_drop:g})",
            source="measured",
        )
    if goal.min_agreement is not None and metrics.agreement is not None:
        found["agreement"] = Constraint(
            value=goal.min_agreement - metrics.agreement,
            detail=f"top-1 agreement {metrics.agreement:.2%} (at least {goal.min_agreement:.2%})",
            source="measured",
        )
    timed_shipped = shipped is not None and shipped.latency_ratio is not None
    latency_ratio = shipped.latency_ratio if timed_shipped else metrics.latency_ratio
    if goal.max_latency_ratio is not None and latency_ratio is not None:
        where = (
            f"{shipped.file} in its runtime" if timed_shipped else "the variant's ONNX in onnxruntime, shipped session"
        )
        found["latency"] = Constraint(
            value=latency_ratio - goal.max_latency_ratio,
            detail=f"{latency_ratio:.2f}x the baseline here, {where} (at most {goal.max_latency_ratio:g}x)",
            source="measured",
        )
    if goal.max_latency_ms is not None:
        estimate = plan.latency_estimate_s
        found["device latency"] = Constraint(
            value=(estimate * 1000 - goal.max_latency_ms) if estimate is not None else 1.0,
            detail=f"{'?' if estimate is None else f'{estimate * 1000:.3f}'} ms on {plan.device.name} "
            f"(at most {goal.max_latency_ms:g}; the profile's estimate)",
            source="estimated",
        )
    storage, ram = plan.budgets[0], plan.budgets[1]
    found["storage"] = (
        _within(storage.limit, shipped.bytes, shipped.file, "measured")
        if shipped is not None
        else _within(storage.limit, storage.used, storage.label, "estimated", " (planned)")
    )
    found["RAM"] = (
        _within(ram.limit, shipped.arena_bytes, "TFLM tensor arena", "measured")
        if shipped is not None and shipped.arena_bytes is not None
        else _within(ram.limit, ram.used, ram.label, "estimated")
    )
    others = [r for r in plan.refusals if "storage" not in r and "RAM" not in r]
    converted = plan.ok  # else the plan refused it and nothing was converted
    if converted and refusal:
        others = [refusal]  # the conversion refused when run (a TFLM arena over the RAM, a converter's error)
    found["exportable"] = Constraint(
        value=1.0 if others else -1.0,
        detail="; ".join(others) or f"{plan.device.name} takes it ({plan.format}, {plan.export_precision})",
        source="measured" if converted else "estimated",
    )
    return found


def _within(limit: int, used: int, what: str, source: Literal["measured", "estimated"], note: str = "") -> Constraint:
    """A byte budget: ``used`` of ``limit``, met at or under it."""
    return Constraint(value=used / limit - 1, detail=f"{what} {used:,} B of {limit:,} B{note}", source=source)


def measure_root(project: Any, task: Any) -> None:
    """The baseline's figures are the reference every trial is held against: measured first if missing."""
    from workbench.datasets import evaluation_ref, load_dataset
    from workbench.evaluate import measure
    from workbench.feeds import random_inputs_for

    root = project.root
    if root.metrics is not None:
        return
    model = project.load_model(root.id)
    ref = project.dataset or random_inputs_for(model)
    data = load_dataset(evaluation_ref(ref)) if ref is not None else None
    task.report(0.0, "measuring the baseline")
    metrics = measure(model, baseline=model, dataset=data, runs=GUI_RUNS, scoring=project.scoring)
    project.set_metrics(root.id, metrics)
