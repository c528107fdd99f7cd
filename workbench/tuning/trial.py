"""One trial of a search: a chain of steps applied to the project's root, each stored as a variant
(identical steps reuse the stored one), each measured like a step in the window, and the last held
against the goal: the accuracy it may lose and the device's budgets.

Runs in a worker process (or a Ray task): it opens the project itself, so only the folder, the chain
and the goal cross the process boundary, and the variants it makes are the project's own.
"""

from __future__ import annotations

import time
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
    download_ratio: float  # variant's over-the-air download / the baseline's
    latency_ratio: float
    quality: float  # accuracy (labelled data) or agreement with the baseline, 0..1
    quality_name: str
    drop_points: float
    constraints: dict[str, Constraint]
    seconds: float

    @property
    def feasible(self) -> bool:
        return all(c.value <= 0 for c in self.constraints.values())

    @property
    def objectives(self) -> tuple[float, float, float]:
        """Download and latency ratios (down), quality (up), as the sampler compares them: quality counts no
        higher than the baseline's (a few samples more right on the evaluation split is noise, and rewarding it
        steers the search away from size), and latency in steps of :data:`LATENCY_STEP` (this host's timing
        noise: finer differences would make every variant look Pareto-optimal)."""
        latency = round(self.latency_ratio / LATENCY_STEP) * LATENCY_STEP
        return self.download_ratio, latency, self.quality + min(self.drop_points, 0.0) / 100


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
            drop = (reference.accuracy - metrics.accuracy) * 100
        else:
            quality, name = (metrics.agreement if metrics.agreement is not None else 1.0), "agreement"
            drop = (1 - quality) * 100
        device = get_device(goal.device)
        plan = plan_export(project, variant.id, device)
        constraints = _constraints(goal, plan, metrics, drop, name)
        return Outcome(
            variant_id=variant.id,
            chain=chain,
            download_ratio=metrics.download / reference.download,
            latency_ratio=metrics.latency_ratio if metrics.latency_ratio is not None else 1.0,
            quality=quality,
            quality_name=name,
            drop_points=drop,
            constraints=constraints,
            seconds=time.perf_counter() - started,
        )


def _constraints(goal: Goal, plan: Any, metrics: Any, drop: float, quality_name: str) -> dict[str, Constraint]:
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
    if goal.max_latency_ratio is not None and metrics.latency_ratio is not None:
        found["latency"] = Constraint(
            value=metrics.latency_ratio - goal.max_latency_ratio,
            detail=f"{metrics.latency_ratio:.2f}x the baseline here, shipped session (at most "
            f"{goal.max_latency_ratio:g}x)",
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
    for budget, key in zip(plan.budgets, ("storage", "RAM"), strict=False):
        found[key] = Constraint(
            value=budget.used / budget.limit - 1,
            detail=f"{budget.label} {budget.used:,} B of {budget.limit:,} B",
            source="measured" if key == "storage" and budget.used == metrics.artifact_bytes else "estimated",
        )
    others = [r for r in plan.refusals if "storage" not in r and "RAM" not in r]
    found["exportable"] = Constraint(
        value=1.0 if others else -1.0,
        detail="; ".join(others) or f"{plan.device.name} takes it ({plan.format}, {plan.export_precision})",
        source="estimated",
    )
    return found


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
