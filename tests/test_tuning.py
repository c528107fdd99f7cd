"""The auto-tuner: the search space read from plugins' Params, trials as project variants held against
the goal, a study that resumes in the project folder, and trials on a local Ray head."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Literal

import numpy as np
import pytest
from pydantic import Field

pytest.importorskip("optuna")

from workbench.datasets import dataset_ref_for_path
from workbench.loading import load_model
from workbench.plugin import Plugin, PluginKind, PluginParams, discover_plugins
from workbench.project import Project
from workbench.runtime import make_session
from workbench.tuning.space import plugin_dimensions, suggest_params
from workbench.tuning.study import TuneSettings, open_study, propose_chain, study_path, tune
from workbench.tuning.trial import Goal, run_trial


@pytest.fixture
def project(tmp_path, mlp_onnx):
    """An MLP with labelled data (its own predictions, one in five flipped): accuracy is real and known."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((200, 16)).astype(np.float32)
    session = make_session(mlp_onnx.read_bytes())
    labels = np.concatenate([session.run(None, {"x": x[i : i + 1]})[0] for i in range(len(x))]).argmax(axis=1)
    labels[::5] = (labels[::5] + 1) % 10
    np.savez(tmp_path / "data.npz", x=x, y=labels)
    ref = dataset_ref_for_path(str(tmp_path / "data.npz"), None)
    model = load_model(mlp_onnx, input_shapes="1,16", remember_shapes=False)
    with Project.create(tmp_path / "project", model, dataset=ref) as created:
        yield created


@pytest.fixture
def small_device(monkeypatch, tmp_path, project):
    """A device whose storage takes an int8 copy of the MLP but not the float one."""
    from workbench.devices import user_devices_dir

    size = len(project.load_model(project.root.id).artifact_bytes())
    folder = user_devices_dir()
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "small.yaml").write_text(
        "id: small-mcu\nname: Small test board\ncpu: test\nruntime: onnxruntime\nprecisions: [fp32, fp16, int8-weights, int8, int4]\n"
        f"ram_bytes: 1048576\nstorage_bytes: {int(size * 0.7)}\nthroughput_macs_per_s: {{fp32: 1.0e8}}\n"
        'throughput_source: "test"\nenergy_per_mac_j: 1.0e-9\nenergy_source: "test"\nexport:\n  format: onnx\n'
    )
    return "small-mcu"


class _Params(PluginParams):
    ratio: float = Field(0.3, ge=0.0, le=0.9)
    steps: int = Field(2, ge=1, le=10, json_schema_extra={"search": [1, 4]})
    lr: float = Field(1e-3, ge=1e-5, le=0.1)
    mode: Literal["a", "b", "c"] = "a"
    flag: bool = False
    fixed: Literal["only"] = "only"
    names: list[str] = Field(default_factory=list)
    quiet: bool = Field(True, json_schema_extra={"tune": False})


class _Plugin(Plugin):
    id = "test_plugin"
    title = "Test"
    kind = PluginKind.PRUNE
    formats = frozenset({"onnx"})
    Params = _Params

    def apply(self, model, params, task):  # pragma: no cover - never applied here
        return model


def test_the_search_space_is_read_from_a_plugins_declared_params():
    import optuna

    dims = {d.name: d for d in plugin_dimensions(_Plugin())}
    assert set(dims) == {"ratio", "steps", "lr", "mode", "flag"}  # lists, single choices and tune=False stay out
    assert (dims["ratio"].kind, dims["ratio"].low, dims["ratio"].high, dims["ratio"].log) == ("float", 0, 0.9, False)
    assert (dims["steps"].kind, dims["steps"].low, dims["steps"].high) == ("int", 1, 4)  # narrowed for the search
    assert dims["lr"].log and dims["mode"].choices == ("a", "b", "c") and dims["flag"].choices == (False, True)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=1))
    for _ in range(20):
        values = suggest_params(study.ask(), _Plugin())
        assert 0 <= values["ratio"] <= 0.9 and 1 <= values["steps"] <= 4 and values["quiet"] is True
    # the built-in plugins: pruning searches its narrowed range, never its per-layer overrides
    prune = {d.name: d for d in plugin_dimensions(discover_plugins().get("magnitude_prune"))}
    assert (prune["sparsity"].low, prune["sparsity"].high) == (0.5, 0.98) and "overrides" not in prune
    assert prune["scope"].choices == ("global", "per_layer", "sensitivity") and "fine_tune_batch" not in prune
    assert "pattern" not in prune  # N:M fixes sparsity at 50 %: a GPU speed pattern, narrowed out of the search


def test_a_trial_is_variants_in_the_project_and_identical_trials_reuse_them(project, small_device):
    goal = Goal(device=small_device, max_drop=1.0).model_dump(mode="json")
    chain = [{"plugin": "quantize_int8", "params": {"mode": "weight_only"}}]
    first = run_trial(str(project.folder), chain, goal)["outcome"]
    count = len(project.variants())
    second = run_trial(str(project.folder), chain, goal)["outcome"]
    assert second["variant_id"] == first["variant_id"] and len(project.variants()) == count == 2
    assert second["seconds"] < first["seconds"]
    assert first["download_ratio"] < 1 and first["constraints"]["storage"]["value"] <= 0
    failed = run_trial(str(project.folder), [{"plugin": "distill", "params": {}}], goal)
    assert "error" in failed and "\n" not in failed["error"]


def test_every_trial_is_held_against_the_goal_and_the_best_meets_it(project, small_device):
    settings = TuneSettings(
        goal=Goal(device=small_device, max_drop=2.0, plugins=["quantize_int8", "quantize_fp16", "low_bit_weights"]),
        trials=6,
        sampler="random",
        seed=3,
    )
    seen = []
    result = tune(project, settings, on_trial=seen.append)
    assert len(seen) == 6 and result.stopped == "the trial budget is spent"
    assert all(r.chain for r in result.records)  # never the baseline again: it is measured already
    limit = int(len(project.load_model(project.root.id).artifact_bytes()) * 0.7)
    root = project.root.metrics
    for record in (r for r in result.records if r.outcome is not None):
        variant = project.get(record.outcome.variant_id)
        fits = variant.metrics.artifact_bytes <= limit
        within = (root.accuracy - variant.metrics.accuracy) * 100 <= 2.0
        assert record.feasible == (fits and within), record.describe_chain()
    assert result.best is not None and result.best.feasible
    assert all(r.feasible for r in result.pareto) and result.hypervolume > 0
    # the report: one self-contained page with the variants, the study and the chosen variant's recipe
    from workbench.report import write_report

    page = write_report(project, project.folder.parent / "report.html").read_text()
    assert "<script src" not in page and "Plotly.newPlot" in page  # plotly inlined: no script is fetched
    assert all(v.name in page for v in project.variants())
    assert f"study {result.study_name}" in page and "Measured</b>" in page and "Estimated</b>" in page
    assert project.get(result.best.outcome.variant_id).name in page.split("Recipe: ")[1][:200]


def test_a_study_resumes_after_its_run_is_killed(project, small_device):
    from optuna.trial import TrialState

    settings = TuneSettings(
        goal=Goal(device=small_device, plugins=["quantize_fp16", "low_bit_weights"]), trials=2, sampler="random"
    )
    first = [(r.number, r.state) for r in tune(project, settings).records]
    assert len(first) == 2
    # a run killed mid-trial leaves that trial running in the study
    study = open_study(project.folder, settings)
    killed = study.ask()
    killed_chain = propose_chain(killed, settings.goal, discover_plugins())
    del study
    assert study_path(project.folder).is_file()
    settings.trials = 4
    result = tune(project, settings)
    assert [(r.number, r.state) for r in result.records][:2] == first  # the first run's trials are kept
    assert len(result.records) == 4 and result.records[2].state == "failed"
    assert "interrupted" in result.records[2].error
    resumed = open_study(project.folder, settings)
    asked_again = resumed.get_trials(states=(TrialState.COMPLETE, TrialState.FAIL))[3]
    assert asked_again.params == killed.params  # asked again first, every parameter as it was
    assert [s.plugin for s in result.records[3].chain] == [s.plugin for s in killed_chain]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_trials_run_on_a_local_ray_head(project, small_device):
    pytest.importorskip("ray")
    port = _free_port()
    ray = str(Path(sys.executable).parent / "ray")
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "RAY_ENABLE_UV_RUN_RUNTIME_ENV": "0"}
    start = [ray, "start", "--head", "--node-ip-address=127.0.0.1", f"--port={port}", "--num-cpus=1"]
    sockets = tempfile.mkdtemp(prefix="ray-", dir="/tmp")  # Ray's socket paths must stay short
    start += ["--include-dashboard=false", f"--temp-dir={sockets}", "--disable-usage-stats"]
    subprocess.run(start, env=env, check=True, capture_output=True, timeout=180)
    try:
        settings = TuneSettings(
            goal=Goal(device=small_device, plugins=["quantize_int8"]),
            trials=2,
            sampler="random",
            ray_address=f"127.0.0.1:{port}",
        )
        result = tune(project, settings)
        assert [r.state for r in result.records] == ["complete", "complete"]
        assert {r.outcome.variant_id for r in result.records} <= {v.id for v in project.variants()}
    finally:
        subprocess.run([ray, "stop", "--force"], env=env, capture_output=True, timeout=120)
        shutil.rmtree(sockets, ignore_errors=True)


def test_a_dead_worker_fails_only_its_trial_and_is_replaced(tmp_path):
    import time

    from workbench.tuning.workers import LocalWorkers

    workers = LocalWorkers(1)
    try:
        goal = Goal(device="phone").model_dump(mode="json")
        workers.submit(7, str(tmp_path / "no-project"), [], goal)
        workers._processes[0].kill()  # out of memory, a crash in native code
        returned, deadline = [], time.monotonic() + 120
        while workers.running() and time.monotonic() < deadline:
            returned += workers.finished(timeout=0.5)
        assert [key for key, _ in returned] == [7] and "error" in returned[0][1]
        # the replacement takes the next trial
        workers.submit(8, str(tmp_path / "no-project"), [], goal)
        while workers.running() and time.monotonic() < deadline:
            returned += workers.finished(timeout=0.5)
        assert [key for key, _ in returned] == [7, 8] and "no-project" in returned[1][1]["error"]
    finally:
        workers.stop()


def test_a_trial_for_a_converting_device_is_sized_on_the_file_its_bundle_ships(project):
    """The phone's bundle holds an .ort file: its bytes, not the variant's ONNX, are the trial's size."""
    from workbench.evaluate import download_size
    from workbench.exporters.ort import to_ort
    from workbench.runtime import settings_for

    goal = Goal(device="phone", max_drop=5.0).model_dump(mode="json")
    chain = [{"plugin": "quantize_int8", "params": {"mode": "weight_only", "per_channel": True}}]
    outcome = run_trial(str(project.folder), chain, goal)["outcome"]

    def ort_file(variant_id: str) -> bytes:
        onnx_bytes = project.load_model(variant_id).artifact_bytes()
        folder = Path(tempfile.mkdtemp())
        to_ort(onnx_bytes, folder, settings_for(onnx_bytes))
        return (folder / "model.ort").read_bytes()

    shipped, baseline = ort_file(outcome["variant_id"]), ort_file(project.root.id)
    assert outcome["shipped"].startswith("model.ort") and f"{len(shipped):,} B" in outcome["shipped"]
    # a reconversion may order the .ort's contents otherwise: the same bytes' count, an xz size a byte apart
    assert outcome["download_ratio"] == pytest.approx(download_size(shipped) / download_size(baseline), rel=0.01)
    storage = outcome["constraints"]["storage"]
    assert storage["source"] == "measured" and f"model.ort {len(shipped):,} B" in storage["detail"]
    assert outcome["constraints"]["exportable"]["source"] == "measured"
    variant = project.get(outcome["variant_id"]).metrics
    assert variant.artifact_bytes != len(shipped)  # the ONNX file is not what the phone gets


def test_the_sampler_counts_quality_only_up_to_the_goals_floor():
    from workbench.tuning.trial import Outcome

    def outcome(drop: float, quality_name: str = "accuracy (top1)") -> Outcome:
        return Outcome(
            variant_id="v",
            chain=[],
            download_ratio=1 / 32,
            latency_ratio=1.02,
            quality=(1.0 if quality_name == "agreement" else 0.95) - drop / 100,
            quality_name=quality_name,
            drop_points=drop,
            constraints={},
            seconds=1.0,
        )

    goal = Goal(device="phone", max_drop=0.3)
    size, latency, kept = outcome(0.0).objectives(goal)
    assert size == pytest.approx(-5.0) and latency == pytest.approx(1.0)  # 32x is five halvings; noise rounds away
    assert outcome(-0.5).objectives(goal)[2] == kept == outcome(0.2).objectives(goal)[2] == pytest.approx(0.947)
    assert outcome(0.6).objectives(goal)[2] == pytest.approx(0.944)  # beyond the budget: lower
    agreement = Goal(device="phone", max_drop=None, min_agreement=0.99)
    assert outcome(0.5, "agreement").objectives(agreement)[2] == pytest.approx(0.99)  # within: the floor
    assert outcome(2.0, "agreement").objectives(agreement)[2] == pytest.approx(0.98)
    assert outcome(0.5).objectives(agreement)[2] == pytest.approx(0.945)  # accuracy: capped at the baseline
    assert outcome(-0.5).objectives(agreement)[2] == pytest.approx(0.95)


def test_a_new_best_is_pushed_further_and_tried_with_every_other_coding_step(project):
    from workbench.tuning.study import refinements

    def search(first: dict, trials: int, max_drop: float) -> list:
        plugins = ["magnitude_prune", "quantize_fp16", "low_bit_weights"]  # codings that take any model
        settings = TuneSettings(
            goal=Goal(device="phone", max_drop=max_drop, plugins=plugins), trials=trials, sampler="random"
        )
        study = open_study(project.folder, settings)
        study.enqueue_trial({"structure": "magnitude_prune", "coding": "none"} | first)
        del study
        return tune(project, settings).records

    first, pushed = search({"magnitude_prune.sparsity": 0.6}, trials=2, max_drop=100.0)
    assert [s.plugin for s in first.chain] == ["magnitude_prune"] and first.feasible
    # the new best's sparsity, halfway on to the search range's end; every other parameter as it was
    assert pushed.chain[0].params == first.chain[0].params | {"sparsity": pytest.approx(0.6 + (0.98 - 0.6) / 2)}
    assert len(pushed.chain) == 1 and pushed.outcome.download_ratio < first.outcome.download_ratio

    # at the range's end already: nothing to push, so the same pruning under each other coding step, taking
    # turns with the sampler (records come in the order the trials were asked)
    first, coded, sampled, coded_again = sorted(
        search({"magnitude_prune.sparsity": 0.98}, trials=4, max_drop=99.0), key=lambda r: r.number
    )
    assert {coded.chain[-1].plugin, coded_again.chain[-1].plugin} == {"quantize_fp16", "low_bit_weights"}
    assert coded.chain[0] == coded_again.chain[0] == first.chain[0]
    assert not (len(sampled.chain) == 2 and sampled.chain[0] == first.chain[0])  # the sampler's own turn
    for record in (coded, coded_again):  # the same pruning: the stored variant, reused
        assert record.outcome is not None, record.error
        assert project.get(record.outcome.variant_id).parent_id == first.outcome.variant_id
    assert refinements({"coding alone": "quantize_int8"}, {"coding": ["none", "quantize_fp16"]}) == []
    bits = refinements({"coding alone": "low_bit_weights", "low_bit_weights.bits": 4}, {"coding": []})
    assert bits == [{"coding alone": "low_bit_weights", "low_bit_weights.bits": 2}]


def test_a_second_search_on_the_same_project_is_refused_while_one_runs(project, small_device):
    from workbench.errors import WorkbenchError
    from workbench.fileio import held_alone

    settings = TuneSettings(goal=Goal(device=small_device, plugins=["quantize_fp16"]), trials=1, sampler="random")
    lock = project.folder / "tuning" / "search.lock"
    with held_alone(lock) as alone:  # what a running search holds (flock: another open file conflicts)
        assert alone
        with pytest.raises(WorkbenchError, match="another search is running on this project"):
            tune(project, settings)
        assert not study_path(project.folder).exists()  # refused before the study was opened
    assert [r.state for r in tune(project, settings).records] == ["complete"]  # free again once it ends
    with held_alone(lock) as alone:
        assert alone  # and tune let go of it


def test_a_push_that_breaks_the_goal_is_asked_again_halfway_back():
    from workbench.tuning.study import MAX_STEP_BACKS, _pushed, step_back

    best = {"structure": "magnitude_prune", "magnitude_prune.sparsity": 0.909, "coding": "weight_sharing"}
    best["weight_sharing.clusters"] = 14
    pushed = best | {"magnitude_prune.sparsity": 0.9445}
    attrs = _pushed(best, pushed)
    assert attrs == {"pushed": {"key": "magnitude_prune.sparsity", "from": 0.909, "backs": 0}}
    assert _pushed(best, best | {"coding": "quantize_int8"}) is None  # another coding step is not a push
    params, again = step_back(pushed, attrs)
    assert params == best | {"magnitude_prune.sparsity": pytest.approx((0.909 + 0.9445) / 2)}
    assert again["pushed"]["backs"] == 1 and again["pushed"]["from"] == 0.909
    while again["pushed"]["backs"] < MAX_STEP_BACKS:
        params, again = step_back(params, again)
    assert step_back(params, again) is None  # halved twice: the sampler takes it from there
    clusters = best | {"weight_sharing.clusters": 9}
    back = step_back(clusters, _pushed(best, clusters))
    assert back is not None and back[0]["weight_sharing.clusters"] == 12  # integers: rounded halfway
    bits = {"coding alone": "low_bit_weights", "low_bit_weights.bits": 2}
    assert step_back(bits, _pushed(bits | {"low_bit_weights.bits": 4}, bits)) is None  # no choice between
    assert step_back(best, {}) is None  # a trial that was not pushed is left to the sampler


def test_a_push_that_loses_too_much_accuracy_is_asked_again_with_more_fine_tuning():
    from workbench.tuning.study import MAX_RECOVERIES, _pushed, recover, step_back
    from workbench.tuning.trial import Constraint, Outcome

    def broke(*names: str, short: float = 0.2) -> Outcome:
        limits = {
            n: Constraint(value=short if n in names else -0.1, detail=n, source="measured")
            for n in ("accuracy", "storage", "latency")
        }
        return Outcome(
            variant_id="v",
            chain=[],
            download_ratio=1 / 32,
            latency_ratio=1.0,
            quality=0.95,
            quality_name="accuracy (top1)",
            drop_points=0.5,
            constraints=limits,
            seconds=1.0,
        )

    best = {
        "structure": "magnitude_prune",
        "magnitude_prune.sparsity": 0.909,
        "magnitude_prune.iterations": 8,
        "magnitude_prune.fine_tune_epochs": 1,
        "magnitude_prune.final_fine_tune_epochs": 4,
        "magnitude_prune.fine_tune_lr": 0.002,
        "magnitude_prune.distill": False,
        "coding": "weight_sharing",
        "weight_sharing.clusters": 14,
        "weight_sharing.fine_tune_epochs": 0,
    }
    pushed = best | {"magnitude_prune.sparsity": 0.9445}
    attrs = _pushed(best, pushed)
    params, again = recover(pushed, attrs, broke("accuracy"))
    # every training budget of the chain halfway on to its search end, and nothing that shapes the model
    assert params == pushed | {
        "magnitude_prune.fine_tune_epochs": 2,
        "magnitude_prune.final_fine_tune_epochs": 8,
        "magnitude_prune.distill": True,
        "weight_sharing.fine_tune_epochs": 2,
    }
    assert again == attrs | {"recoveries": 1}
    back, back_attrs = step_back(params, again)  # still too costly: a smaller push keeps the extra training
    assert back["magnitude_prune.final_fine_tune_epochs"] == 8 and back_attrs["recoveries"] == 1
    while again["recoveries"] < MAX_RECOVERIES:
        params, again = recover(params, again, broke("accuracy"))
    assert params["magnitude_prune.final_fine_tune_epochs"] == 10  # 4 -> 8 -> 10 of [0, 12]
    assert recover(params, again, broke("accuracy")) is None  # recovered twice: the sampler takes it from there
    assert recover(pushed, attrs, broke("accuracy", "latency")) is None  # training does not buy latency back
    assert recover(pushed, attrs, broke()) is None  # nothing broken
    assert recover(pushed, attrs, broke("accuracy", short=5.0)) is None  # training buys back a point or two
    sampled, sampled_attrs = recover(best, {}, broke("accuracy"))  # not a push: recovered too, never stepped back
    assert sampled_attrs == {"recoveries": 1} and step_back(sampled, sampled_attrs) is None
    at_ends = {k: v for k, v in pushed.items() if not k.startswith("weight_sharing")} | {"coding": "none"}
    at_ends |= {
        "magnitude_prune.iterations": 8,
        "magnitude_prune.fine_tune_epochs": 3,
        "magnitude_prune.final_fine_tune_epochs": 12,
        "magnitude_prune.distill": True,
    }
    assert recover(at_ends, attrs, broke("accuracy")) is None  # nothing left to spend


def test_the_tuners_own_trials_take_turns_with_the_sampler_newest_first():
    import optuna

    from workbench.tuning.study import Ahead

    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))

    def asked(ahead: Ahead) -> float:
        trial = ahead.ask(study)
        x = trial.suggest_float("x", 0.0, 1.0)
        ahead.proposed(trial.params)
        study.tell(trial, x)
        return x

    ahead = Ahead(study)
    ahead.add([({"x": 0.1}, {}), ({"x": 0.2}, {})])
    assert asked(ahead) == 0.1  # queued in order: the first on top
    assert asked(ahead) not in (0.1, 0.2)  # the sampler's turn
    ahead.add([({"x": 0.3}, {}), ({"x": 0.1}, {})])  # 0.1 was asked already: not again
    assert asked(ahead) == 0.3  # what followed last comes first
    asked(ahead)
    assert asked(ahead) == 0.2
    asked(ahead)
    assert 0.1 not in {asked(ahead) for _ in range(3)}  # nothing left: the sampler every time
    assert Ahead(study).waiting == []  # a new run starts from the sampler
