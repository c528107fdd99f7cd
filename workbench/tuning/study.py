"""The search: an Optuna study over chains of plugin steps, multi-objective (download size and latency
against the baseline, down; accuracy, up) under the goal's constraints, stored in the project folder so
it resumes after a restart. Trials run in worker processes or on Ray; each becomes variants in the
project, and streams to the caller as it finishes.
"""

from __future__ import annotations

import json
import time
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from hashlib import sha256
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, Field

from workbench.errors import Cancelled, WorkbenchError, describe_exception
from workbench.plugin import Task
from workbench.tuning.trial import STAGES, Goal, Outcome, Step, measure_root

if TYPE_CHECKING:
    import optuna

    from workbench.plugin import PluginRegistry
    from workbench.project import Project

STUDY_DIR = "tuning"  # inside the project folder
DIRECTIONS = ("minimize", "minimize", "maximize")  # log2 download ratio, latency ratio, quality
OBJECTIVES = ("log2 download ratio", "latency ratio", "quality")
OBJECTIVES_VERSION = 2  # in the study's name: a study scored another way is not resumed as this one
# Hypervolume reference: no smaller than the baseline, twice its latency, every answer wrong.
HYPERVOLUME_REFERENCE = (0.0, 2.0, 1.0)
TUNE_EXTRA = 'pip install -e ".[tune]"'


class TuneSettings(BaseModel):
    goal: Goal
    trials: int | None = Field(None, ge=1, description="trials in the study, counting those of earlier runs")
    seconds: float | None = Field(None, gt=0, description="time for this run")
    workers: int = Field(1, ge=1)
    ray_address: str | None = None
    sampler: Literal["tpe", "random"] = "tpe"
    seed: int = 0
    study_name: str | None = None

    def name(self) -> str:
        """The same goal and sampler resume the same study; another goal starts another."""
        if self.study_name:
            return self.study_name
        key = json.dumps(
            [self.goal.model_dump(mode="json"), self.sampler, self.seed, OBJECTIVES_VERSION], sort_keys=True
        )
        return f"{self.goal.device}-{self.sampler}-{sha256(key.encode()).hexdigest()[:8]}"


@dataclass
class TrialRecord:
    number: int
    state: str  # complete, failed, running
    chain: list[Step]
    outcome: Outcome | None = None
    error: str | None = None
    values: tuple[float, ...] | None = None  # the objectives as the study scored them

    @property
    def feasible(self) -> bool:
        return self.outcome is not None and self.outcome.feasible

    def describe_chain(self) -> str:
        if not self.chain:
            return "the baseline (no step)"
        return " → ".join(f"{s.plugin}({_short(s.params)})" for s in self.chain)


@dataclass
class TuneResult:
    study_name: str
    records: list[TrialRecord]
    pareto: list[TrialRecord]
    best: TrialRecord | None
    hypervolume: float
    stopped: str  # why the run ended
    seconds: float
    goal: dict[str, Any] = field(default_factory=dict)


def study_path(folder: Path) -> Path:
    return folder / STUDY_DIR / "study.log"


def project_studies(folder: Path) -> list[TuneResult]:
    """Every study stored in the project folder, summarized (newest last); none without Optuna."""
    path = study_path(folder)
    if not path.is_file():
        return []
    try:
        import optuna
        from optuna.storages import JournalStorage
        from optuna.storages.journal import JournalFileBackend
    except ImportError:
        return []
    storage = JournalStorage(JournalFileBackend(str(path)))
    studies = [
        optuna.load_study(study_name=s.study_name, storage=storage) for s in optuna.get_all_study_summaries(storage)
    ]
    return [summarize(study, goal=dict(study.user_attrs.get("goal", {}))) for study in studies]


def open_study(folder: Path, settings: TuneSettings) -> optuna.Study:
    """The project's study for these settings, created or resumed; trials a killed run left running are
    failed and asked again first (their finished steps are in the project's cache)."""
    optuna = _optuna()
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend
    from optuna.trial import TrialState

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    path = study_path(folder)
    path.parent.mkdir(exist_ok=True)
    storage = JournalStorage(JournalFileBackend(str(path)))
    # a resumed study must not ask its first run's questions again: the seed moves on with its trials
    done = next((s.n_trials for s in optuna.get_all_study_summaries(storage) if s.study_name == settings.name()), 0)
    seed = settings.seed + done
    if settings.sampler == "random":
        sampler: Any = optuna.samplers.RandomSampler(seed=seed)
    else:
        with warnings.catch_warnings():  # multivariate and group are "experimental" in Optuna 5, and used as meant
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            sampler = optuna.samplers.TPESampler(
                seed=seed,
                multivariate=True,
                group=True,  # each chain has its own parameters: TPE models each group apart
                constant_liar=True,  # trials in flight count as pending, so parallel workers spread out
                n_startup_trials=12,
            )
    study = optuna.create_study(
        storage=storage,
        sampler=sampler,
        study_name=settings.name(),
        directions=list(DIRECTIONS),
        load_if_exists=True,
    )
    study.set_user_attr("goal", settings.goal.model_dump(mode="json"))
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        study.tell(trial.number, state=TrialState.FAIL)
        study.enqueue_trial(dict(trial.params))
    return study


def stage_options(goal: Goal, registry: PluginRegistry, torch_lineage: bool = True) -> dict[str, list[str]]:
    """Per stage, "none" and the plugins the goal allows (torch-only ones only for a model with a torch
    module). Each stage is its own categorical, so the sampler learns which structure step and which coding
    step pay, and how they combine."""
    usable = {"torch", "onnx"} if torch_lineage else {"onnx"}
    return {
        stage: [
            "none",
            *[i for i in ids if i in goal.plugins and registry.plugins.get(i) and registry.get(i).formats & usable],
        ]
        for stage, ids in STAGES.items()
    }


class ChainRefused(WorkbenchError):
    """A proposed chain whose second step cannot take what the first leaves: failed without running."""

    def __init__(self, reason: str, chain: list[Step]) -> None:
        super().__init__(reason)
        self.chain = chain


def propose_chain(trial: optuna.Trial, goal: Goal, registry: PluginRegistry, torch_lineage: bool = True) -> list[Step]:
    """One plugin (or none) per stage, at least one in all, and values for each chosen plugin's declared
    parameters (named by plugin, so a plugin's parameters are learned across the chains it is in)."""
    from workbench.tuning.space import suggest_params

    chain: list[Step] = []
    torch = torch_lineage
    stages = [
        (stage, options) for stage, options in stage_options(goal, registry, torch_lineage).items() if len(options) > 1
    ]
    for index, (stage, options) in enumerate(stages):
        if index == len(stages) - 1 and not chain:
            # the baseline is measured already: a chain with no step at all would be a wasted trial
            choice = trial.suggest_categorical(f"{stage} alone", options[1:])
        else:
            choice = trial.suggest_categorical(stage, options)
        if choice == "none":
            continue
        plugin = registry.get(choice)
        chain.append(Step(plugin=choice, params=suggest_params(trial, plugin)))
        if not plugin.formats & ({"torch", "onnx"} if torch else {"onnx"}):
            raise ChainRefused(f"{choice} takes torch models, and {chain[0].plugin} leaves only an ONNX graph", chain)
        torch = torch and "torch" in plugin.formats
    return chain


def tune(
    project: Project,
    settings: TuneSettings,
    *,
    task: Task | None = None,
    on_trial: Callable[[TrialRecord], None] | None = None,
) -> TuneResult:
    """Run trials until the trial or time budget is spent or the task is cancelled. One search at a time
    per project: a second one would take the first's running trials for a killed run's."""
    from workbench.fileio import held_alone

    with held_alone(project.folder / STUDY_DIR / "search.lock") as alone:
        if not alone:
            raise WorkbenchError("another search is running on this project: stop it first", project.folder)
        return _tune(project, settings, task, on_trial)


def _tune(
    project: Project,
    settings: TuneSettings,
    task: Task | None,
    on_trial: Callable[[TrialRecord], None] | None,
) -> TuneResult:
    from optuna.trial import TrialState

    from workbench.plugin import discover_plugins
    from workbench.tuning.workers import LocalWorkers, RayWorkers

    task = task or Task()
    started = time.monotonic()
    registry = discover_plugins()
    unknown = sorted(set(settings.goal.plugins) - set(registry.plugins))
    if unknown:
        raise WorkbenchError(f"no plugin {', '.join(unknown)} is installed (see: workbench plugins)")
    measure_root(project, task)
    study = open_study(project.folder, settings)
    torch_lineage = project.load_model(project.root.id).has_torch_lineage
    deadline = started + settings.seconds if settings.seconds else None
    workers: Any = (
        RayWorkers(settings.ray_address, settings.workers if settings.workers > 1 else None)
        if settings.ray_address
        else LocalWorkers(settings.workers)
    )
    in_flight: dict[int, tuple[Any, list[Step]]] = {}
    durations: list[float] = []
    options = stage_options(settings.goal, registry, torch_lineage)
    best = summarize(study).best
    ahead = Ahead(study)
    stopped = "interrupted"  # what the trials in flight are told if anything ends the run early
    goal = settings.goal.model_dump(mode="json")

    def done_count() -> int:
        finished = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)
        return len(study.get_trials(deepcopy=False, states=finished))

    try:
        while True:
            if task.cancelled:
                stopped = "stopped by the user"
                break
            now = time.monotonic()
            typical = sorted(durations)[len(durations) // 2] if durations else 0.0
            time_left = deadline is None or now + typical < deadline
            while workers.running() < workers.capacity and time_left:
                if settings.trials is not None and done_count() + len(in_flight) >= settings.trials:
                    break
                trial = ahead.ask(study)
                try:
                    chain = propose_chain(trial, settings.goal, registry, torch_lineage)
                except Exception as exc:  # known to fail (or not proposable): said so at once, no worker's time
                    reason = str(exc) if isinstance(exc, WorkbenchError) else describe_exception(exc)
                    record = _tell(study, trial, getattr(exc, "chain", []), {"error": reason}, settings.goal)
                    if on_trial is not None:
                        on_trial(record)
                    continue
                ahead.proposed(trial.params)
                trial.set_user_attr("chain", [s.model_dump(mode="json") for s in chain])
                in_flight[trial.number] = (trial, chain)
                workers.submit(trial.number, str(project.folder), [s.model_dump(mode="json") for s in chain], goal)
            if not in_flight:
                stopped = "the time budget is spent" if not time_left else "the trial budget is spent"
                break
            if deadline is not None and now > deadline:
                stopped = "the time budget is spent"
                break
            for number, result in workers.finished(timeout=0.5):
                trial, chain = in_flight.pop(number)
                record = _tell(study, trial, chain, result, settings.goal)
                if record.outcome is not None:
                    durations.append(record.outcome.seconds)
                if record.feasible and (best is None or best_key(record) < best_key(best)):
                    best = record
                    ahead.add(
                        (params, _pushed(trial.params, params) or {})
                        for params in refinements(trial.params, options, registry)
                    )
                elif not record.feasible and _smaller(record, best):
                    # smaller than the best but over a limit: more training first, then (a push) a smaller step
                    recovered = (  # fine-tuning needs the model's torch lineage; an ONNX graph ignores it
                        recover(trial.params, trial.user_attrs, record.outcome, registry) if torch_lineage else None
                    )
                    ahead.add(a for a in (recovered, step_back(trial.params, trial.user_attrs, registry)) if a)
                if on_trial is not None:
                    on_trial(record)
            fraction = _progress(settings, done_count(), time.monotonic() - started)
            left = "" if deadline is None else f", {max(0.0, deadline - time.monotonic()):.0f} s left"
            try:
                task.report(fraction, f"trial {done_count() + len(in_flight)}{_of(settings)} running{left}")
            except Cancelled:  # a stop is an answer too: the trials so far, summarized
                stopped = "stopped by the user"
                break
    finally:
        workers.stop()
        for number, (trial, chain) in in_flight.items():  # killed mid-way: failed, and said why
            trial.set_user_attr("error", stopped)
            study.tell(trial, state=TrialState.FAIL)
            if on_trial is not None:
                on_trial(TrialRecord(number, "failed", chain, error=stopped))
    return summarize(study, stopped, time.monotonic() - started)


class Ahead:
    """The trials the tuner asks for itself (:func:`refinements`, :func:`recover`, :func:`step_back`), newest
    first, taking turns with the sampler. Without turns a search that finds a good chain early spends its
    whole budget refining it and the sampler never explores (a LeNet-5 search never tried distillation);
    newest first, because what follows a newer best supersedes what followed an older one. They live in this
    run only: a resumed run starts from the sampler."""

    def __init__(self, study: Any) -> None:
        self.waiting: list[tuple[dict[str, Any], dict[str, Any]]] = []
        self.asked = {_signature(t.params) for t in study.get_trials(deepcopy=False)}
        self.turn = True

    def add(self, found: Iterable[tuple[dict[str, Any], dict[str, Any]]]) -> None:
        self.waiting += reversed([f for f in found if _signature(f[0]) not in self.asked])  # the first on top

    def ask(self, study: Any) -> Any:
        while self.waiting and self.turn and _signature(self.waiting[-1][0]) in self.asked:
            self.waiting.pop()  # asked since it was queued
        if self.waiting and self.turn:
            params, attrs = self.waiting.pop()
            study.enqueue_trial(params, attrs)
            self.asked.add(_signature(params))
            self.turn = False
        else:
            self.turn = True
        return study.ask()

    def proposed(self, params: dict[str, Any]) -> None:
        """A trial's parameters once its chain is proposed (the sampler's are known only then)."""
        self.asked.add(_signature(params))


def _smaller(record: TrialRecord, best: TrialRecord | None) -> bool:
    """Whether the trial downloads less than the best so far: only then is asking it again worth a trial."""
    if record.outcome is None:
        return False
    return best is None or best.outcome is None or record.outcome.download_ratio < best.outcome.download_ratio


def _signature(params: dict[str, Any]) -> str:
    return json.dumps(params, sort_keys=True, default=str)


def refinements(
    params: dict[str, Any], options: dict[str, list[str]], registry: PluginRegistry | None = None
) -> list[dict[str, Any]]:
    """Trials to ask next after a new best (every other parameter as it was):

    - each parameter that makes the model smaller pushed further that way (:meth:`Dimension.pushed`): the
      search steps its compression until the goal breaks, as accuracy-aware compression does, instead of
      waiting for the sampler to wander there;
    - its structure step with each other coding step the goal allows (their own parameters left to the
      sampler). The structure step is then the project's stored variant, so each costs only its coding step;
      without this, a sampler that found a good pruning seldom asks for that pruning again with int8 on top.
    """
    from workbench.plugin import discover_plugins
    from workbench.tuning.space import plugin_dimensions

    registry = registry or discover_plugins()
    found = []
    for plugin in _chosen(params, registry):
        for dimension in plugin_dimensions(registry.get(plugin)):
            key = f"{plugin}.{dimension.name}"
            pushed = dimension.pushed(params[key]) if key in params else None
            if pushed is not None:
                found.append(params | {key: pushed})
    structure = params.get("structure")
    if structure not in (None, "none"):
        kept = {k: v for k, v in params.items() if k == "structure" or k.startswith(f"{structure}.")}
        current = params.get("coding", "none")
        found += [kept | {"coding": c} for c in options.get("coding", []) if c not in ("none", current)]
    return found


MAX_STEP_BACKS = 2  # a push that breaks the goal is retried halfway back, then halfway again
MAX_RECOVERIES = 2  # and with more fine-tuning, then more again
QUALITY_LIMITS = frozenset({"accuracy", "agreement"})  # the constraints more training can mend
RECOVERABLE_POINTS = 2.0  # more training buys back a point or two, not tens


def _pushed(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any] | None:
    """The user attrs that mark a refinement as one shrinking parameter pushed (see :func:`step_back`)."""
    changed = [k for k in after if k in before and after[k] != before[k]]
    if len(changed) != 1 or len(after) != len(before) or changed[0].split(" ")[0] in STAGES:
        return None
    return {"pushed": {"key": changed[0], "from": before[changed[0]], "backs": 0}}


def step_back(
    params: dict[str, Any], user_attrs: dict[str, Any], registry: PluginRegistry | None = None
) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """A pushed trial that broke the goal, asked again halfway back towards where it was pushed from (params
    and user attrs to enqueue), as accuracy-aware compression halves its step; None for any other trial."""
    from workbench.plugin import discover_plugins
    from workbench.tuning.space import plugin_dimensions

    pushed = user_attrs.get("pushed")
    if not isinstance(pushed, dict) or pushed.get("backs", MAX_STEP_BACKS) >= MAX_STEP_BACKS:
        return None
    key = str(pushed.get("key"))
    plugin, _, name = key.partition(".")
    registry = registry or discover_plugins()
    if key not in params or plugin not in registry.plugins:
        return None
    dimension = next((d for d in plugin_dimensions(registry.get(plugin)) if d.name == name), None)
    middle = dimension.between(pushed["from"], params[key]) if dimension is not None else None
    if middle is None:
        return None
    return params | {key: middle}, _marks(user_attrs) | {"pushed": pushed | {"backs": pushed["backs"] + 1}}


def recover(
    params: dict[str, Any], user_attrs: dict[str, Any], outcome: Outcome | None, registry: PluginRegistry | None = None
) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """A trial that lost at most :data:`RECOVERABLE_POINTS` more accuracy (or agreement) than the goal allows
    and broke nothing else, asked again with every parameter of its chain that buys accuracy back with time
    moved halfway on (more fine-tuning epochs, more pruning steps, distillation on:
    :meth:`Dimension.recovered`), as accuracy-aware training extends its fine-tuning where a compression rate
    costs too much. The tuner asks this of trials smaller than its best. Params and user attrs to enqueue, or
    None (broke something training cannot mend, lost too much, recovered twice, or nothing left to spend)."""
    from workbench.plugin import discover_plugins
    from workbench.tuning.space import plugin_dimensions

    recoveries = int(user_attrs.get("recoveries", 0))
    if recoveries >= MAX_RECOVERIES or outcome is None:
        return None
    broken = {name: c.value for name, c in outcome.constraints.items() if c.value > 0}
    if not broken or not set(broken) <= QUALITY_LIMITS:
        return None
    short = max(value * 100 if name == "agreement" else value for name, value in broken.items())  # in points
    if short > RECOVERABLE_POINTS:
        return None
    registry = registry or discover_plugins()
    moved = {}
    for plugin in _chosen(params, registry):
        for dimension in plugin_dimensions(registry.get(plugin)):
            key = f"{plugin}.{dimension.name}"
            more = dimension.recovered(params[key]) if key in params else None
            if more is not None:
                moved[key] = more
    if not moved:
        return None
    return params | moved, _marks(user_attrs) | {"recoveries": recoveries + 1}


def _marks(user_attrs: dict[str, Any]) -> dict[str, Any]:
    """The user attrs a trial asked again passes on: how it was pushed, and how often recovered."""
    return {k: v for k, v in user_attrs.items() if k in ("pushed", "recoveries")}


def _chosen(params: dict[str, Any], registry: PluginRegistry) -> list[str]:
    """The plugins a trial's chain runs, from its stage parameters."""
    return [v for k, v in params.items() if k.split(" ")[0] in STAGES and v != "none" and v in registry.plugins]


def _tell(study: Any, trial: Any, chain: list[Step], result: dict[str, Any], goal: Goal) -> TrialRecord:
    from optuna.trial import TrialState

    if "outcome" in result:
        outcome = Outcome.model_validate(result["outcome"])
        trial.set_user_attr("outcome", result["outcome"])
        for name, constraint in outcome.constraints.items():
            trial.set_constraint(name, constraint.value)
        study.tell(trial, list(outcome.objectives(goal)))
        return TrialRecord(trial.number, "complete", chain, outcome)
    error = str(result.get("error", "unknown failure"))[:500]
    trial.set_user_attr("error", error)
    # A step that refuses these parameters is an answer about them: told as pruned and infeasible, so TPE
    # learns to avoid the region (a failed trial would teach it nothing, and it would ask again and again).
    trial.set_constraint("runs", 1.0)
    study.tell(trial, state=TrialState.PRUNED)
    return TrialRecord(trial.number, "failed", chain, error=error)


def summarize(study: Any, stopped: str = "", seconds: float = 0.0, goal: dict[str, Any] | None = None) -> TuneResult:
    """Every trial of the study, its feasible Pareto front, the best feasible variant and the hypervolume."""
    from optuna.trial import TrialState

    asked = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL, TrialState.RUNNING)
    records = [record_of(t) for t in study.get_trials(deepcopy=False, states=asked)]  # not those queued next
    feasible = [r for r in records if r.feasible and r.outcome is not None]
    unique = list(
        {r.outcome.variant_id: r for r in feasible if r.outcome is not None}.values()
    )  # a repeat is one point
    pareto = [r for r in unique if not any(_dominates(o, r) for o in unique if o is not r)]
    pareto.sort(key=lambda r: r.outcome.download_ratio if r.outcome else 0)
    best = min(feasible, key=best_key, default=None)
    goal = goal if goal is not None else dict(study.user_attrs.get("goal", {}))
    return TuneResult(study.study_name, records, pareto, best, hypervolume(feasible), stopped, seconds, goal)


def record_of(trial: Any) -> TrialRecord:
    chain = [Step.model_validate(s) for s in trial.user_attrs.get("chain", [])]
    outcome = trial.user_attrs.get("outcome")
    state = {"COMPLETE": "complete", "FAIL": "failed", "PRUNED": "failed"}.get(trial.state.name, "running")
    error = trial.user_attrs.get("error")
    if state == "failed" and error is None:  # failed when the study was reopened: its run had been killed
        error = "interrupted: the run that started it ended first; its parameters were asked again"
    return TrialRecord(
        trial.number,
        state,
        chain,
        Outcome.model_validate(outcome) if outcome and state == "complete" else None,
        error,
        tuple(trial.values) if state == "complete" and trial.values else None,
    )


def best_key(record: TrialRecord) -> tuple[float, float, float]:
    """Smallest download first (the edge's scarcest resource), then fastest, then most accurate."""
    assert record.outcome is not None
    return record.outcome.download_ratio, record.outcome.latency_ratio, -record.outcome.quality


def _minimized(outcome: Outcome) -> tuple[float, float, float]:
    return outcome.download_ratio, outcome.latency_ratio, 1 - outcome.quality


def _dominates(a: TrialRecord, b: TrialRecord) -> bool:
    assert a.outcome is not None and b.outcome is not None
    x, y = _minimized(a.outcome), _minimized(b.outcome)
    return all(p <= q for p, q in zip(x, y, strict=True)) and x != y


def hypervolume(records: list[TrialRecord]) -> float:
    """Volume the feasible trials dominate below :data:`HYPERVOLUME_REFERENCE`, in the objectives the study
    optimizes (quality counted up to the goal's floor, see :meth:`Outcome.objectives`), all minimized."""
    import numpy as np
    from optuna._hypervolume import compute_hypervolume  # Optuna's own; its visualisation uses it too

    reference = np.asarray(HYPERVOLUME_REFERENCE)
    values = [r.values for r in records if r.values is not None]
    points = np.asarray([(size, latency, 1 - quality) for size, latency, quality in values]).reshape(-1, 3)
    points = points[np.all(points < reference, axis=1)]
    return float(compute_hypervolume(points, reference)) if len(points) else 0.0


def _progress(settings: TuneSettings, done: int, elapsed: float) -> float:
    parts = []
    if settings.trials:
        parts.append(done / settings.trials)
    if settings.seconds:
        parts.append(elapsed / settings.seconds)
    return min(1.0, max(parts, default=0.0))


def _of(settings: TuneSettings) -> str:
    return f" of {settings.trials}" if settings.trials else ""


def _short(params: dict[str, Any]) -> str:
    shown = []
    for key, value in params.items():
        if isinstance(value, float):
            value = f"{value:.3g}"
        if isinstance(value, list | dict) and not value:
            continue
        shown.append(f"{key}={value}")
    return ", ".join(shown[:6]) + (", …" if len(shown) > 6 else "")


def _optuna() -> Any:
    try:
        import optuna
    except ImportError:
        raise WorkbenchError(f"the auto-tuner needs Optuna: {TUNE_EXTRA}") from None
    return optuna
