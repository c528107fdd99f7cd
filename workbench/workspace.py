"""The GUI's Qt-free state: the open project, the current variant and the pending preview.

Every decision and computation the window needs lives here, so it is tested without Qt. Methods that
take a ``task`` are long and meant for a worker thread; the rest are quick enough for the UI thread.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from workbench.analysis import Analysis, analyze
from workbench.datasets import Dataset, DatasetRef, evaluation_ref, load_dataset, step_data
from workbench.errors import WorkbenchError, with_path
from workbench.evaluate import Metrics, check_dataset_fits, measure
from workbench.feeds import InputSpec, random_inputs_for, suggest_input_spec, with_stream_frame
from workbench.fileio import sha256_file
from workbench.loading import load_model
from workbench.metrics import MetricSettings
from workbench.model import Model
from workbench.pareto import pareto_front
from workbench.plugin import Plugin, PluginRegistry, Task, discover_plugins, run_plugin
from workbench.project import Project, Variant
from workbench.settings import RecentFiles

if TYPE_CHECKING:
    from workbench.litert_document import LiteRtDocument

GUI_LATENCY_RUNS = 30
T = TypeVar("T")


def projects_root() -> Path:
    """Where new projects go: ``$WORKBENCH_PROJECTS_DIR`` (tests), else the OS data folder."""
    import os

    if override := os.environ.get("WORKBENCH_PROJECTS_DIR"):  # tests and screenshots use a scratch folder
        return Path(override)
    import platformdirs

    return Path(platformdirs.user_data_dir("model-workbench")) / "projects"


def _names_the_project(method: Callable[..., T]) -> Callable[..., T]:
    """A failure that names no file names the open project, so the notice bar says where it happened."""

    @functools.wraps(method)
    def wrapper(self: Workspace, *args: Any, **kwargs: Any) -> T:
        try:
            return method(self, *args, **kwargs)
        except WorkbenchError as exc:
            folder = self.project.folder if self.project is not None else None
            # An artifact's hash-named file means nothing to the user; the project does.
            inside = folder is not None and exc.path is not None and folder in exc.path.parents
            raise with_path(exc, folder, replace=inside) from exc.__cause__

    return wrapper


@dataclass(frozen=True)
class Readout:
    """What a slider position does to the model, from analysis alone (no evaluation)."""

    params: int
    nonzero_params: int
    sparsity: float
    weight_bytes: int
    nonzero_weight_bytes: int
    macs: int
    compute_ms: float


@dataclass
class Preview:
    plugin_id: str
    params: dict[str, Any]
    model: Model
    metrics: Metrics | None = None
    notes: tuple[str, ...] = ()


class Workspace:
    def __init__(self, registry: PluginRegistry | None = None) -> None:
        self.registry = registry or discover_plugins()
        self.project: Project | None = None
        self.litert: LiteRtDocument | None = None  # a .tflite opened as it is, instead of a project
        self.current_id: str | None = None
        self.preview: Preview | None = None
        self._models: dict[str, Model] = {}
        self._analyses: dict[str, Analysis] = {}
        self._dataset: Dataset | None = None
        self._splits: dict[DatasetRef, Dataset] = {}  # train / calibration data, loaded when a step asks
        self.recent = RecentFiles()

    # --- opening ----------------------------------------------------------------------------------
    def open_model(
        self,
        path: str | Path,
        *,
        input_shapes: Any = None,
        dataset: DatasetRef | None = None,
        task: Task | None = None,
        folder: Path | None = None,
    ) -> Project:
        """Load a model file into a new project (the user's file is only read) and measure the baseline.

        The project appears only once the baseline is measured: a model that cannot be measured leaves
        no folder behind, and the project that was open stays open.
        """
        task = task or Task()
        path = Path(path)
        task.report(0.05, f"loading {path.name}")
        model = load_model(path, input_shapes=input_shapes)
        suggested = suggest_input_spec(model.inputs, model.outputs)
        if suggested.constants or suggested.state:  # a sample rate, a zero state: shown, and editable later
            model = model.with_input_spec(with_stream_frame(suggested, model))
        source_sha = sha256_file(path)
        folder = folder or projects_root() / f"{model.name}-{time.strftime('%Y%m%d-%H%M%S')}"
        if dataset is None:
            dataset = random_inputs_for(model)
        try:
            data = load_dataset(dataset) if dataset is not None else None
            metrics = measure(
                model,
                baseline=model,
                dataset=data,
                runs=GUI_LATENCY_RUNS,
                profile_layers=True,
                task=task.sub(0.3, 0.95),
            )
        except WorkbenchError as exc:
            raise with_path(exc, path) from None
        project = Project.create(folder, model, dataset=dataset, source_sha256=source_sha, metrics=metrics)
        self._adopt(project)
        self._dataset = data
        self.recent.add("models", path)
        return project

    def open_project(self, folder: str | Path, task: Task | None = None) -> Project:
        """Open a project; variants stored without metrics (an older version, a CLI step) are measured now."""
        project = Project.open(folder)
        try:
            missing = project.unmeasured()
            for index, variant_id in enumerate(missing):
                part = (task or Task()).sub(index / len(missing), (index + 1) / len(missing))
                project.set_metrics(variant_id, self._measure(project, variant_id, part))
        except BaseException:
            project.close()
            raise
        self._adopt(project)
        return project

    @_names_the_project
    def attach_data(
        self,
        ref: DatasetRef,
        scoring: MetricSettings | None = None,
        input_spec: InputSpec | None = None,
        task: Task | None = None,
    ) -> list[Metrics]:
        """Make ``ref`` the project's data (with how outputs are scored and what the other inputs hold),
        then re-measure every variant on its evaluation split, the baseline first. The data is checked
        against the model before anything is stored; a cancel keeps the figures measured so far."""
        task = task or Task()
        project = self.require_project()
        root = project.load_model(project.root.id).with_input_spec(input_spec)
        task.report(0.0, "reading the data")
        evaluation = load_dataset(evaluation_ref(ref))
        check_dataset_fits(evaluation, root.concrete_shapes(), input_spec)
        project.set_dataset(ref)
        project.set_scoring(scoring)
        project.set_input_spec(input_spec)
        self._models.clear()  # models carry the input spec they were loaded with
        self._analyses.clear()
        self._dataset = evaluation
        ids = [project.root.id] + [v.id for v in project.variants() if v.id != project.root.id]
        measured = []
        for index, variant_id in enumerate(ids):
            part = task.sub(index / len(ids), (index + 1) / len(ids))
            part.report(0.0, f"re-measuring {project.get(variant_id).name} ({index + 1} of {len(ids)})")
            measured.append(self.measure_variant(variant_id, part))
        return measured

    def save_copy(self, target: str | Path) -> Path:
        """Save the open project as a new folder (the open one stays open)."""
        return self.require_project().save_copy(target)

    def _adopt(self, project: Project) -> None:
        if self.project is not None:
            self.project.close()
        self.project = project
        self.litert = None
        self.current_id = project.root.id
        self.preview = None
        self._models.clear()
        self._analyses.clear()
        self._dataset = None
        self.recent.add("projects", project.folder)

    def open_litert(self, path: str | Path, task: Task | None = None) -> LiteRtDocument:
        """A LiteRT file opened as it is (read, measured in LiteRT); the open project closes once it is."""
        from workbench.litert_document import LiteRtDocument

        try:
            document = LiteRtDocument.open(path, task)
        except WorkbenchError as exc:
            raise with_path(exc, Path(path)) from None
        self.close()
        self.current_id, self.preview = None, None
        self._models.clear()
        self._analyses.clear()
        self._dataset = None
        self.litert = document
        self.recent.add("models", Path(path))
        return document

    def close(self) -> None:
        if self.project is not None:
            self.project.close()
            self.project = None

    # --- reading ----------------------------------------------------------------------------------
    def require_project(self) -> Project:
        if self.project is None:
            from workbench.errors import ProjectError

            raise ProjectError("no model is open")
        return self.project

    def variants(self) -> list[Variant]:
        return self.project.variants() if self.project else []

    def model(self, variant_id: str | None = None) -> Model:
        variant_id = variant_id or self.current_id
        assert variant_id is not None
        if variant_id not in self._models:
            self._models[variant_id] = self.require_project().load_model(variant_id)
        return self._models[variant_id]

    def analysis(self, variant_id: str | None = None) -> Analysis:
        variant_id = variant_id or self.current_id
        assert variant_id is not None
        if variant_id not in self._analyses:
            self._analyses[variant_id] = analyze(self.model(variant_id))
        return self._analyses[variant_id]

    def dataset(self) -> Dataset | None:
        ref = self.require_project().dataset
        if ref is None:
            return None
        if self._dataset is None or self._dataset.ref != ref:
            self._dataset = load_dataset(ref)
        return self._dataset

    def step_task(self, task: Task | None = None) -> Task:
        """``task`` with the project's train and calibration splits attached (never its evaluation data)."""
        task = task or Task()
        data = step_data(self.require_project().dataset)
        for split in ("train", "calibration"):
            if split in data:
                ref = self.require_project().dataset.with_split(split)  # type: ignore[union-attr]
                data[split] = functools.partial(self._split, ref)
        task.provide(**data)
        return task

    def _split(self, ref: DatasetRef) -> Dataset:
        if ref not in self._splits:
            self._splits[ref] = load_dataset(ref)
        return self._splits[ref]

    def select(self, variant_id: str) -> Variant:
        variant = self.require_project().get(variant_id)
        self.current_id = variant.id
        self.preview = None
        return variant

    def pareto_ids(self, axis: str = "size") -> list[str]:
        points = []
        for v in self.variants():
            m = v.metrics
            quality = None if m is None else (m.accuracy if m.accuracy is not None else m.agreement)
            cost = None if m is None else (m.zip_bytes if axis == "size" else m.latency_ms_median)
            if quality is not None and cost is not None:
                points.append((v.id, float(cost), float(quality)))
        return pareto_front(points)

    # --- compressing ------------------------------------------------------------------------------
    def plugin(self, plugin_id: str) -> Plugin:
        return self.registry.get(plugin_id)

    def readout(self, plugin_id: str, params: dict[str, Any]) -> Readout:
        """Apply and analyze only: fast enough to follow a slider on small and mid-size models."""
        start = time.perf_counter()
        plugin = self.plugin(plugin_id)
        task = self.step_task()
        result = run_plugin(plugin, self.model(), params, task)
        self.preview = Preview(plugin_id, dict(params), result, notes=tuple(task.notes))
        analysis = analyze(result)
        weight_bytes = analysis.weight_bytes
        dense_fraction = 1.0 - analysis.sparsity
        return Readout(
            params=analysis.params,
            nonzero_params=analysis.nonzero_params,
            sparsity=analysis.sparsity,
            weight_bytes=weight_bytes,
            nonzero_weight_bytes=int(weight_bytes * dense_fraction),
            macs=analysis.macs,
            compute_ms=(time.perf_counter() - start) * 1000,
        )

    @_names_the_project
    def evaluate_preview(self, plugin_id: str, params: dict[str, Any], task: Task | None = None) -> Preview:
        """Accuracy/fidelity, latency and size of the previewed step, against the baseline."""
        task = self.step_task(task)
        if self.preview is None or self.preview.plugin_id != plugin_id or self.preview.params != params:
            result = run_plugin(self.plugin(plugin_id), self.model(), params, task.sub(0.0, 0.2))
            self.preview = Preview(plugin_id, dict(params), result, notes=tuple(task.notes))
        preview = self.preview
        preview.metrics = measure(
            preview.model,
            baseline=self.model(self.require_project().root.id),
            dataset=self.dataset(),
            runs=GUI_LATENCY_RUNS,
            profile_layers=True,
            task=task.sub(0.2, 1.0),
            scoring=self.require_project().scoring,
        )
        return preview

    def discard_preview(self) -> None:
        self.preview = None

    @_names_the_project
    def apply(self, plugin_id: str, params: dict[str, Any], task: Task | None = None) -> Variant:
        """Commit the step as a variant of the current one (stored, measured), and make it current."""
        task = self.step_task(task)
        project = self.require_project()
        assert self.current_id is not None
        same_step = self.preview is not None and (self.preview.plugin_id, self.preview.params) == (plugin_id, params)
        preview = self.preview if same_step else None
        known = {v.id for v in project.variants()}
        baseline = self.model(project.root.id)
        dataset = self.dataset()

        def measured(model: Model, part: Task) -> Metrics:
            if preview is not None and preview.metrics is not None:
                return preview.metrics  # the same step on the same parent: the preview measured this model
            return measure(
                model,
                baseline=baseline,
                dataset=dataset,
                runs=GUI_LATENCY_RUNS,
                profile_layers=True,
                task=part,
                scoring=project.scoring,
            )

        # The variant is stored with its metrics in one step: a crash or cancel leaves nothing half-made.
        variant = project.apply(self.current_id, self.plugin(plugin_id), params, task, measure=measured)
        if variant.metrics is None and variant.id in known:
            self.measure_variant(variant.id, task)  # reused from an older project that stored none
        self.current_id = variant.id
        self.preview = None
        return project.get(variant.id)

    @_names_the_project
    def measure_variant(self, variant_id: str, task: Task | None = None) -> Metrics:
        project = self.require_project()
        metrics = self._measure(project, variant_id, task)
        project.set_metrics(variant_id, metrics)
        return metrics

    def _measure(self, project: Project, variant_id: str, task: Task | None) -> Metrics:
        ref = project.dataset
        baseline = project.load_model(project.root.id)
        return measure(
            project.load_model(variant_id),
            baseline=baseline,
            dataset=load_dataset(ref) if ref is not None else None,
            runs=GUI_LATENCY_RUNS,
            profile_layers=True,
            task=task,
            scoring=project.scoring,
        )

    @_names_the_project
    def run_sensitivity(self, task: Task | None = None):
        """Sweep the current variant (on the project's data) and keep the report with the project."""
        from workbench.sensitivity import sweep

        project = self.require_project()
        dataset = self.dataset()
        if dataset is None:
            from workbench.errors import DatasetError

            raise DatasetError("the project has no evaluation data to sweep with")
        variant_id = self.current_id
        assert variant_id is not None
        report = sweep(self.model(variant_id), dataset, self.registry, task=task, scoring=project.scoring)
        project.save_sensitivity(variant_id, report)
        return report

    def rename(self, variant_id: str, name: str) -> None:
        self.require_project().rename(variant_id, name)

    def delete(self, variant_id: str) -> None:
        project = self.require_project()
        doomed = project.descendants(variant_id)
        project.delete(variant_id)
        for vid in doomed:
            self._models.pop(vid, None)
            self._analyses.pop(vid, None)
        if self.current_id in doomed:
            self.current_id = project.root.id

    def layer_weights(self, layer_index: int) -> Any:
        """The first weight tensor of a layer in the current analysis, as a numpy array (or None)."""
        from workbench.analysis import weights_as_computed

        layer = self.analysis().layers[layer_index]
        if not layer.weight_names:
            return None
        model = self.model()
        if self.analysis().source_format == "torch" and model.torch_module is not None:
            state = model.torch_module.state_dict()
            tensor = state.get(layer.weight_names[0])
            return None if tensor is None else tensor.detach().numpy()
        return weights_as_computed(model.to_onnx())[0].get(layer.weight_names[0])

    def open_demo(self, task: Task | None = None, folder: Path | None = None) -> Project:
        """The first-start experience: the trained LeNet-5 demo on the MNIST sample's test split."""
        from workbench.datasets import mnist_sample_ref
        from workbench.demo import ensure_demo_model

        task = task or Task()
        checkpoint = ensure_demo_model(task.sub(0.0, 0.5))
        return self.open_model(
            checkpoint, dataset=mnist_sample_ref("evaluation"), task=task.sub(0.5, 1.0), folder=folder
        )
