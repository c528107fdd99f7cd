"""The workbench window. Widgets only: every decision and computation is the core's Workspace."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pyqtgraph as pg
from PySide6.QtCore import QSettings, Qt, QTimer
from PySide6.QtGui import QAction, QDragEnterEvent, QDropEvent, QKeySequence
from PySide6.QtWidgets import (
    QComboBox,
    QFileDialog,
    QGroupBox,
    QHBoxLayout,
    QInputDialog,
    QLabel,
    QMainWindow,
    QProgressBar,
    QPushButton,
    QSplitter,
    QStackedWidget,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)
from workbench.ui.confusion_view import ConfusionView
from workbench.ui.data_dialog import DataDialog
from workbench.ui.details_panel import DetailsPanel
from workbench.ui.device_panel import DevicePanel
from workbench.ui.graph_view import GraphView
from workbench.ui.jobs import JobRunner
from workbench.ui.layer_table import LayerTableView
from workbench.ui.memory_view import MemoryView
from workbench.ui.notice import NoticeBar
from workbench.ui.params_form import ParamsForm
from workbench.ui.sensitivity_panel import SensitivityPanel
from workbench.ui.tradeoff_plot import SCORE_LABELS, TradeoffPlot, quality_of
from workbench.ui.tune_panel import TunePanel
from workbench.ui.variants_tree import VariantsTree

from workbench.device_export import export_for_device, plan_export
from workbench.loading import MODEL_SUFFIXES, load_model
from workbench.plugin import PluginKind, Task
from workbench.project import Variant
from workbench.settings import config_dir
from workbench.tflite_file import is_tflite
from workbench.workspace import Workspace

PREVIEW_DEBOUNCE_MS = 350


def gui_settings() -> QSettings:
    return QSettings(str(config_dir() / "gui.ini"), QSettings.Format.IniFormat)


class MainWindow(QMainWindow):
    def __init__(self, workspace: Workspace | None = None, *, use_webengine: bool = True) -> None:
        super().__init__()
        self.setWindowTitle("Model Workbench")
        self.setAcceptDrops(True)
        self.ws = workspace or Workspace()
        self.jobs = JobRunner(self)
        self.form: ParamsForm | None = None
        self._graph_variant: str | None = None

        self.notice = NoticeBar()
        self.tree = VariantsTree()
        self.layers = LayerTableView()
        self.details = DetailsPanel()
        self.graph = GraphView(use_webengine=use_webengine)
        self._placements: list = []  # where each layer runs on the export panel's device
        self.last_bundle: Path | None = None
        self.plot = TradeoffPlot()
        self.sensitivity = SensitivityPanel()
        self.tune_panel = TunePanel(list(self.ws.registry.plugins))
        self._tuning = False
        self._trials: list = []  # the running search's finished trials
        self._build_plugin_panel()
        self._build_layout()
        self._build_menus()
        self._build_status_bar()
        self._connect()
        self._restore_state()
        self.refresh()

    # --- construction -----------------------------------------------------------------------------
    def _build_plugin_panel(self) -> None:
        self.plugin_box = QGroupBox("Compress")
        self.plugin_combo = QComboBox()
        order = list(PluginKind)  # prune first: the most common first step
        for kind in sorted({p.kind for p in self.ws.registry.plugins.values()}, key=order.index):
            for plugin in sorted(
                (p for p in self.ws.registry.plugins.values() if p.kind == kind), key=lambda p: p.title
            ):
                self.plugin_combo.addItem(f"{kind.value.capitalize()} · {plugin.title}", plugin.id)
        self.form_holder = QVBoxLayout()
        self.readout = QLabel("Move a slider to preview its effect.")
        self.readout.setWordWrap(True)
        self.readout.setTextFormat(Qt.TextFormat.RichText)
        self.loss_plot = pg.PlotWidget(background=None)
        self.loss_plot.setMaximumHeight(130)
        self.loss_plot.setLabel("bottom", "epoch")
        self.loss_plot.setLabel("left", "loss")
        self.loss_plot.setMenuEnabled(False)
        self.loss_curve = self.loss_plot.plot([], [], pen=pg.mkPen("#e53935", width=2), symbol="o", symbolSize=5)
        self.loss_plot.hide()
        self.loss_values: list[float] = []
        self.apply_button = QPushButton("Apply")
        self.apply_button.setToolTip("Commit this step as a new variant (Ctrl+Return)")
        self.discard_button = QPushButton("Discard")
        self.discard_button.setToolTip("Drop the preview")
        buttons = QHBoxLayout()
        buttons.addWidget(self.apply_button)
        buttons.addWidget(self.discard_button)
        layout = QVBoxLayout(self.plugin_box)
        layout.addWidget(self.plugin_combo)
        layout.addLayout(self.form_holder)
        layout.addWidget(self.readout)
        layout.addWidget(self.loss_plot)
        layout.addLayout(buttons)
        layout.addStretch(1)

    def _build_layout(self) -> None:
        left = QSplitter(Qt.Orientation.Vertical)
        left.addWidget(self.tree)
        left.addWidget(self.plugin_box)
        left.setSizes([300, 400])

        self.empty = QWidget()
        empty_layout = QVBoxLayout(self.empty)
        message = QLabel(
            "<h2>Drop a model here</h2><p>ONNX, TorchScript, torch.export (.pt2) or a state-dict checkpoint.</p>"
        )
        message.setAlignment(Qt.AlignmentFlag.AlignCenter)
        open_button = QPushButton("Open model…")
        open_button.clicked.connect(self.choose_model)
        demo_button = QPushButton("Load the demo (LeNet-5 on MNIST)")
        demo_button.clicked.connect(self.open_demo)
        empty_layout.addStretch(1)
        empty_layout.addWidget(message)
        for button in (open_button, demo_button):
            row = QHBoxLayout()
            row.addStretch(1)
            row.addWidget(button)
            row.addStretch(1)
            empty_layout.addLayout(row)
        empty_layout.addStretch(2)

        layers_page = QSplitter(Qt.Orientation.Vertical)
        layers_page.addWidget(self.layers)
        layers_page.addWidget(self.details)
        layers_page.setSizes([500, 220])
        self.tabs = QTabWidget()
        self.tabs.addTab(layers_page, "Layers")
        self.tabs.addTab(self.graph, "Graph")
        self.tabs.addTab(self.sensitivity, "Sensitivity")
        self.confusion = ConfusionView()
        self.tabs.addTab(self.confusion, "Confusion")
        self.memory = MemoryView()
        self.tabs.addTab(self.memory, "Memory")
        self.tabs.addTab(self.tune_panel, "Auto-tune")
        self.center = QStackedWidget()
        self.center.addWidget(self.empty)
        self.center.addWidget(self.tabs)

        right = QWidget()
        right_layout = QVBoxLayout(right)
        right_layout.setContentsMargins(0, 0, 0, 0)
        self.data_banner = QLabel()
        self.data_banner.setWordWrap(True)
        self.data_banner.setTextFormat(Qt.TextFormat.RichText)
        self.data_banner.setStyleSheet("background: #fff3cd; color: #5c4400; padding: 6px; border-radius: 4px")
        self.data_banner.linkActivated.connect(lambda _link: self.attach_data())
        self.data_banner.hide()
        self.metrics_label = QLabel()
        self.metrics_label.setWordWrap(True)
        self.metrics_label.setTextFormat(Qt.TextFormat.RichText)
        self.device_panel = DevicePanel()
        self.export_button = self.device_panel.export_button
        right_layout.addWidget(self.data_banner)
        right_layout.addWidget(self.plot, 1)
        right_layout.addWidget(self.metrics_label)
        right_layout.addWidget(self.device_panel)

        self.splitter = QSplitter(Qt.Orientation.Horizontal)
        self.splitter.addWidget(left)
        self.splitter.addWidget(self.center)
        self.splitter.addWidget(right)
        self.splitter.setSizes([320, 760, 420])
        body = QWidget()
        body_layout = QVBoxLayout(body)
        body_layout.setContentsMargins(6, 6, 6, 0)
        body_layout.addWidget(self.notice)
        body_layout.addWidget(self.splitter, 1)
        self.setCentralWidget(body)
        self.resize(1500, 900)

    def _build_menus(self) -> None:
        file_menu = self.menuBar().addMenu("&File")
        self.open_action = self._action(file_menu, "&Open model…", QKeySequence.StandardKey.Open, self.choose_model)
        self._action(file_menu, "Open &project…", "Ctrl+Shift+O", self.choose_project)
        self.recent_menu = file_menu.addMenu("Open &recent")
        self.recent_menu.aboutToShow.connect(self._fill_recent)
        self._action(file_menu, "&New project from model…", QKeySequence.StandardKey.New, self.choose_model)
        self._action(file_menu, "&Save project as…", QKeySequence.StandardKey.SaveAs, self.save_project_as)
        file_menu.addSeparator()
        self.export_action = self._action(file_menu, "&Export selected variant…", "Ctrl+E", self.choose_export)
        self.report_action = self._action(file_menu, "Export &report…", "Ctrl+Shift+R", self.choose_report)
        file_menu.addSeparator()
        self._action(file_menu, "&Quit", QKeySequence.StandardKey.Quit, self.close)
        data = self.menuBar().addMenu("&Data")
        self.attach_action = self._action(data, "&Attach evaluation data…", "Ctrl+D", self.attach_data)
        edit = self.menuBar().addMenu("&Edit")
        self.apply_action = self._action(edit, "&Apply step", "Ctrl+Return", self.apply_step)
        self.undo_action = self._action(edit, "&Undo (select parent variant)", QKeySequence.StandardKey.Undo, self.undo)
        self._action(edit, "&Cancel running job", "Esc", self.jobs.cancel)

    def _action(self, menu, text: str, shortcut, slot) -> QAction:
        action = QAction(text, self)
        action.setShortcut(QKeySequence(shortcut))
        action.triggered.connect(slot)
        menu.addAction(action)
        return action

    def _build_status_bar(self) -> None:
        self.progress = QProgressBar()
        self.progress.setRange(0, 1000)
        self.progress.setMaximumWidth(260)
        self.progress.hide()
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.hide()
        self.cancel_button.clicked.connect(self.jobs.cancel)
        self.status_text = QLabel("Ready")
        bar = self.statusBar()
        bar.addWidget(self.status_text, 1)
        bar.addPermanentWidget(self.progress)
        bar.addPermanentWidget(self.cancel_button)

    def _connect(self) -> None:
        self.jobs.started.connect(self._job_started)
        self.jobs.progressed.connect(self._job_progress)
        self.jobs.metric.connect(self._job_metric)
        self.jobs.idle.connect(self._job_idle)
        self.jobs.failed.connect(self._job_failed)
        self.jobs.cancelled.connect(self._job_cancelled)
        self.tree.variantSelected.connect(self.select_variant)
        self.tree.renameRequested.connect(self._rename)
        self.tree.deleteRequested.connect(self._delete)
        self.plot.variantClicked.connect(self.select_variant)
        self.layers.layerSelected.connect(self._layer_selected)
        self.layers.overrideRequested.connect(self._set_override)
        self.plugin_combo.currentIndexChanged.connect(lambda _i: self._build_form())
        self.apply_button.clicked.connect(self.apply_step)
        self.discard_button.clicked.connect(self.discard_preview)
        self.export_button.clicked.connect(self.choose_export)
        self.device_panel.deviceChanged.connect(self._update_device_plan)
        self.graph.colorModeChanged.connect(self._update_graph_colors)
        self.tabs.currentChanged.connect(lambda _i: self._sync_graph())
        self.sensitivity.runRequested.connect(self.run_sensitivity)
        self.sensitivity.overridesProposed.connect(self._use_overrides)
        self.sensitivity.mixedPrecisionRequested.connect(self._apply_mixed_precision)
        self.tune_panel.startRequested.connect(self.start_tuning)
        self.tune_panel.stopRequested.connect(self.jobs.cancel)
        self.tune_panel.variantChosen.connect(self.select_variant)
        self.jobs.partial.connect(self._trial_finished)
        self.preview_timer = QTimer(self)
        self.preview_timer.setSingleShot(True)
        self.preview_timer.setInterval(PREVIEW_DEBOUNCE_MS)
        self.preview_timer.timeout.connect(self._evaluate_preview)
        self._build_form()

    # --- state ------------------------------------------------------------------------------------
    def _restore_state(self) -> None:
        settings = gui_settings()
        if geometry := settings.value("geometry"):
            self.restoreGeometry(geometry)
        if size := settings.value("size"):
            self.resize(size)  # restoreGeometry clamps to small virtual screens (offscreen, VNC)
        if state := settings.value("windowState"):
            self.restoreState(state)
        if splitter := settings.value("splitter"):
            self.splitter.restoreState(splitter)

    def closeEvent(self, event) -> None:
        settings = gui_settings()
        settings.setValue("geometry", self.saveGeometry())
        settings.setValue("size", self.size())
        settings.setValue("windowState", self.saveState())
        settings.setValue("splitter", self.splitter.saveState())
        self.preview_timer.stop()
        self.jobs.shutdown()
        self.graph.stop()
        self.ws.close()
        super().closeEvent(event)

    # --- opening ----------------------------------------------------------------------------------
    def dragEnterEvent(self, event: QDragEnterEvent) -> None:
        if event.mimeData().hasUrls() and any(u.isLocalFile() for u in event.mimeData().urls()):
            event.acceptProposedAction()

    def dropEvent(self, event: QDropEvent) -> None:
        paths = [Path(u.toLocalFile()) for u in event.mimeData().urls() if u.isLocalFile()]
        if paths:
            event.acceptProposedAction()
            if self.ws.project is not None and _is_data(paths[0]):
                self.attach_data(paths[0])  # a model is opened; data dropped on it is attached to it
            else:
                self.open_path(paths[0])

    def choose_model(self) -> None:
        patterns = " ".join(f"*{s}" for s in sorted({*MODEL_SUFFIXES, ".tflite"}))
        path, _ = QFileDialog.getOpenFileName(self, "Open model", "", f"Models ({patterns});;All files (*)")
        if path:
            self.open_path(Path(path))

    def choose_project(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Open project folder")
        if folder:
            self.open_project(Path(folder))

    def _fill_recent(self) -> None:
        self.recent_menu.clear()
        for kind, opener in (("projects", self.open_project), ("models", self.open_path)):
            for path in self.ws.recent.get(kind)[:8]:
                self.recent_menu.addAction(f"{kind[:-1].capitalize()}: {path}", lambda p=Path(path), o=opener: o(p))
        if self.recent_menu.isEmpty():
            self.recent_menu.addAction("(nothing yet)").setEnabled(False)

    def open_path(self, path: Path) -> None:
        """Open a model file (or a project folder): probe for a needed input shape first, off the UI thread."""
        if path.is_dir() and (path / "project.db").is_file():
            self.open_project(path)
            return
        if is_tflite(path):  # read and measured as it is, in LiteRT
            self.jobs.run(f"Opening {path.name}", lambda task: self.ws.open_litert(path, task), self._litert_opened)
            return

        def probe(_task: Task) -> Any:
            model = load_model(path, remember_shapes=False)
            source = model.input_shapes.source if model.input_shapes else "default"
            return model if source == "default" else None

        self.jobs.run(f"Opening {path.name}", probe, lambda model: self._open_after_probe(path, model))

    def _litert_opened(self, document) -> None:
        self.notice.hide()
        self._graph_variant = None
        self.refresh()
        self.status_text.setText(
            f"{document.path.name}: a LiteRT file, measured as it is in LiteRT; compress the model it came from"
        )

    def _open_after_probe(self, path: Path, probed: Any) -> None:
        shapes = None
        if probed is not None:
            shapes = self.ask_input_shape(path, probed)
            if shapes is None:
                self.status_text.setText("Open cancelled")
                return
        self.jobs.run(
            f"Opening {path.name}",
            lambda task: self.ws.open_model(path, input_shapes=shapes, task=task),
            lambda _project: self._project_opened(),
        )

    def ask_input_shape(self, path: Path, model) -> str | None:
        """Dynamic dimensions: ask once, prefilled with the default; the core remembers the answer."""
        default = "; ".join(f"{n}={','.join(map(str, s))}" for n, s in model.input_shapes.shapes.items())
        dims = ", ".join(spec.describe() for spec in model.dynamic_inputs)
        text, ok = QInputDialog.getText(
            self,
            "Input shape",
            f"{path.name} has dynamic dimensions ({dims}).\nConcrete input shape to analyze and measure with:",
            text=default,
        )
        return text.strip() if ok and text.strip() else None

    def attach_data(self, path: Path | None = None) -> None:
        """Data ▸ Attach evaluation data…: the dialog, then a job that re-measures every variant."""
        if self.ws.litert is not None:
            self._attach_litert_data(path)
            return
        if self.ws.project is None:
            self.notice.show_message("Open a model first: data is attached to a project.", level="info")
            return
        project = self.ws.project
        dialog = DataDialog(
            self.ws.model(project.root.id),
            path=path,
            current=project.dataset,
            scoring=project.scoring,
            input_spec=project.input_spec,
            parent=self,
        )
        self.data_dialog = dialog  # tests drive the open dialog
        if not dialog.exec():
            return
        ref, scoring, spec = dialog.settings()
        self.jobs.run(
            "Attaching data and re-measuring every variant",
            lambda task: self.ws.attach_data(ref, scoring, spec, task),
            lambda _metrics: self.refresh(),
        )

    def _attach_litert_data(self, path: Path | None) -> None:
        document = self.ws.litert
        dialog = DataDialog(document.model, path=path, current=document.dataset, scoring=document.scoring, parent=self)
        self.data_dialog = dialog
        if not dialog.exec():
            return
        ref, scoring, _spec = dialog.settings()
        self.jobs.run(
            f"Measuring {document.path.name} in LiteRT on the evaluation split",
            lambda task: document.attach_data(ref, scoring, task),
            lambda _metrics: self.refresh(),
        )

    def open_project(self, folder: Path) -> None:
        self.jobs.run(
            f"Opening project {folder.name}",
            lambda task: self.ws.open_project(folder, task),
            lambda _p: self._project_opened(),
        )

    def open_demo(self) -> None:
        self.jobs.run(
            "Preparing the demo model", lambda task: self.ws.open_demo(task), lambda _p: self._project_opened()
        )

    def offer_reopen(self, folder: Path) -> None:
        self.notice.show_message(
            f"Reopen your last project, {folder.name}?",
            level="info",
            action=("Reopen", lambda: self.open_project(folder)),
        )

    def save_project_as(self) -> None:
        if self.ws.project is None:
            return
        target, _ = QFileDialog.getSaveFileName(self, "Save project as (a new folder)")
        if not target:
            return
        self.jobs.run(
            "Saving a copy of the project",
            lambda _task: self.ws.save_copy(Path(target)),
            lambda folder: self.open_project(folder),
        )

    def _project_opened(self) -> None:
        self.notice.hide()
        self.readout.setText("Move a slider to preview its effect.")
        self._graph_variant = None
        self.refresh()
        self._show_studies()
        problems = self.ws.project.problems if self.ws.project is not None else []
        if problems:
            more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
            self.notice.show_message(problems[0] + more, level="info", details="\n".join(problems))
        project = self.ws.project
        if project is not None:
            self.status_text.setText(f"Project {project.folder} (saved automatically after every step)")

    # --- compressing ------------------------------------------------------------------------------
    def _build_form(self) -> None:
        if self.form is not None:
            self.form.setParent(None)
            self.form.deleteLater()
        plugin_id = self.plugin_combo.currentData()
        if plugin_id is None:
            self.form = None
            return
        self.form = ParamsForm(self.ws.plugin(plugin_id).schema())
        self.form.changed.connect(self._params_changed)
        self.form.committed.connect(lambda _v: self.preview_timer.start())
        self.form_holder.addWidget(self.form)

    def _params_changed(self, params: dict) -> None:
        if self.ws.project is None:
            return
        try:
            readout = self.ws.readout(self.plugin_combo.currentData(), params)
        except Exception as exc:
            self.readout.setText(f"<span style='color:#b3261e'>{exc}</span>")
            return
        self.readout.setText(
            f"Preview (analysis only): sparsity <b>{readout.sparsity:.1%}</b> · non-zero "
            f"<b>{readout.nonzero_params:,}</b> / {readout.params:,} · non-zero weights "
            f"<b>{readout.nonzero_weight_bytes / 1024:,.1f} KiB</b> of {readout.weight_bytes / 1024:,.1f} KiB"
        )

    def _evaluate_preview(self) -> None:
        if self.ws.project is None or self.form is None:
            return
        plugin_id, params = self.plugin_combo.currentData(), self.form.values()
        self.jobs.run(
            "Measuring the preview",
            lambda task: self.ws.evaluate_preview(plugin_id, params, task),
            self._show_preview,
        )

    def _show_preview(self, preview) -> None:
        self.plot.set_preview(preview.metrics)
        if preview.notes:  # what the step wants known before it is applied (a simulated size, calibration data)
            self.status_text.setText("Preview note: " + " · ".join(preview.notes))

    def discard_preview(self) -> None:
        self.preview_timer.stop()
        self.ws.discard_preview()
        self.plot.set_preview(None)
        self.readout.setText("Preview discarded.")

    def apply_step(self) -> None:
        if self.ws.project is None or self.form is None:
            return
        self.preview_timer.stop()
        plugin_id, params = self.plugin_combo.currentData(), self.form.values()
        self.jobs.run(
            "Applying " + self.ws.plugin(plugin_id).title,
            lambda task: self.ws.apply(plugin_id, params, task),
            self._applied,
        )

    def _applied(self, variant: Variant) -> None:
        self.plot.set_preview(None)
        self.refresh()
        self.status_text.setText(f"Applied: {variant.name} (project saved)")

    def _set_override(self, weight: str, ratio: float) -> None:
        if self.form is None or "overrides" not in self.form.schema.get("properties", {}):
            self.notice.show_message("The selected plugin has no per-layer settings.", level="info")
            return
        overrides = dict(self.form.extra.get("overrides") or {})
        if ratio < 0:
            overrides.pop(weight, None)
        else:
            overrides[weight] = ratio
        self.form.set_extra("overrides", overrides)
        summary = ", ".join(f"{k}: {'excluded' if v == 0 else f'{v:.0%}'}" for k, v in overrides.items()) or "none"
        self.status_text.setText(f"Per-layer overrides: {summary}")

    def run_sensitivity(self) -> None:
        if self.ws.project is None:
            return
        self.jobs.run(
            "Sensitivity sweep",
            lambda task: self.ws.run_sensitivity(task),
            lambda report: self.sensitivity.set_report(report),
        )

    def _use_overrides(self, overrides: dict) -> None:
        index = self.plugin_combo.findData("magnitude_prune")
        if index < 0:
            return
        self.plugin_combo.setCurrentIndex(index)
        if self.form is not None:
            self.form.set_extra("overrides", overrides)
            self.status_text.setText(f"Per-layer overrides from the sweep: {len(overrides)} layers")

    def _apply_mixed_precision(self, budget: float) -> None:
        """One click: a mixed-precision step for the sensitivity tab's budget (the plugin proposes the
        layers on the calibration split and checks them together)."""
        index = self.plugin_combo.findData("mixed_precision")
        if index < 0:
            return
        self.plugin_combo.setCurrentIndex(index)
        if self.form is not None:
            self.form.set_extra("budget", budget)
            self.apply_step()

    # --- selection --------------------------------------------------------------------------------
    def select_variant(self, variant_id: str) -> None:
        if self.ws.project is None or variant_id == self.ws.current_id:
            return
        self.ws.select(variant_id)
        self.plot.set_preview(None)
        self.refresh()

    def undo(self) -> None:
        if self.ws.project is None or self.ws.current_id is None:
            return
        parent = self.ws.project.get(self.ws.current_id).parent_id
        if parent:
            self.select_variant(parent)

    def _rename(self, variant_id: str, name: str) -> None:
        self.ws.rename(variant_id, name)
        self.refresh()

    def _delete(self, variant_id: str) -> None:
        self.ws.delete(variant_id)
        self.refresh()

    def _layer_selected(self, row: int) -> None:
        if self.ws.litert is not None:
            document = self.ws.litert
            layer = document.analysis.layers[row]
            self.details.show_layer(layer, document.layer_weights(row), None, document.quantization(row))
            return
        analysis = self.ws.analysis()
        layer = analysis.layers[row]
        metrics = self.ws.require_project().get(self.ws.current_id).metrics if self.ws.current_id else None
        shares = metrics.layer_latency_share if metrics else None
        share = None if shares is None else shares.get(layer.name, 0.0 if analysis.source_format == "onnx" else None)
        snr_text = ""
        if metrics is not None and metrics.layer_snr_db is not None and layer.name in metrics.layer_snr_db:
            value = metrics.layer_snr_db[layer.name]
            snr_text = (
                "output identical to the baseline" if value is None else f"output SNR vs baseline <b>{value:.1f} dB</b>"
            )
        self.details.show_layer(layer, self.ws.layer_weights(row), share, snr_text)
        self.graph.find_layer(layer.name)

    # --- export -----------------------------------------------------------------------------------
    def choose_export(self) -> None:
        if self.ws.litert is None and (self.ws.project is None or self.ws.current_id is None):
            return
        folder = QFileDialog.getExistingDirectory(self, "Export to folder")
        if folder:
            self.export_to(Path(folder))

    def export_to(self, folder: Path) -> None:
        device = self.device_panel.device()
        document = self.ws.litert
        if document is not None and device is not None:
            self.jobs.run(
                f"Bundling {document.path.name} for {device.name}",
                lambda task: document.export(device, folder, task),
                self._exported,
            )
            return
        project, variant_id = self.ws.require_project(), self.ws.current_id
        assert variant_id is not None and device is not None
        self.jobs.run(
            f"Exporting for {device.name}",
            lambda task: export_for_device(project, variant_id, device, folder, task=task),
            self._exported,
        )

    def _exported(self, bundle: Path) -> None:
        from PySide6.QtCore import QUrl
        from PySide6.QtGui import QDesktopServices

        self.last_bundle = bundle
        report = json.loads((bundle / "manifest.json").read_text(encoding="utf-8")).get("format_report", {})
        if "tflm" in report:
            self.memory.show_report(report["tflm"], self.device_panel.device().name)
            self.tabs.setCurrentWidget(self.memory)
        self.notice.show_message(
            f"Exported and verified: {bundle}",
            level="success",
            action=("Open folder", lambda: QDesktopServices.openUrl(QUrl.fromLocalFile(str(bundle)))),
        )

    def _update_device_plan(self) -> None:
        device = self.device_panel.device()
        if self.ws.litert is not None and device is not None:
            plan = self.ws.litert.plan(device)
            self.device_panel.show_plan(plan)  # type: ignore[arg-type]  # a TflitePlan states the same fields
            self._placements = self.ws.litert.placements(plan)
            self.layers.model.set_placements(self._placements, device.name)
            self.layers.table.viewport().update()
            self._update_graph_colors()
            return
        if self.ws.project is None or self.ws.current_id is None or device is None:
            self.device_panel.show_plan(None)
            return
        try:
            plan = plan_export(self.ws.project, self.ws.current_id, device)
        except Exception as exc:
            self.device_panel.show_error(str(exc))
            return
        self.device_panel.show_plan(plan)
        self._placements = plan.placements
        self.layers.model.set_placements(plan.placements, device.name)
        self.layers.table.viewport().update()
        self._update_graph_colors()

    def _update_graph_colors(self) -> None:
        from workbench.layer_colors import COLOR_MODES, layer_values

        mode = self.graph.color_mode.currentData()
        if mode is None or self.ws.project is None or self.ws.current_id is None:  # (a LiteRT file: not yet)
            self.graph.color_nodes([])
            return
        metrics = self.ws.require_project().get(self.ws.current_id).metrics
        values = layer_values(mode, self.ws.analysis(), self.ws.model(), self._placements, metrics)
        scale = {
            "placement": "green runs on the target · amber falls back · red unsupported",
            "sparsity": "green sparse · red dense",
            "quant-snr": "green ≥ 40 dB · red ≤ 20 dB (hover a node for its figure and source)",
            "latency-share": "green small · red ≥ 25 % (hover a node: measured profile or MAC estimate)",
        }[mode]
        device = self.device_panel.device()
        where = f" on {device.name}" if mode == "placement" and device is not None else ""
        self.graph.color_nodes(values, f"{COLOR_MODES[mode]}{where}: {scale}")

    # --- auto-tune and report ------------------------------------------------------------------------
    def start_tuning(self, settings) -> None:
        """Auto-tune ▸ Start: the search runs as a job; each trial lands in the panel and on the plot."""
        from workbench.tuning.study import tune

        if self.ws.project is None:
            self.notice.show_message("Open a model first: a search makes variants of a project.", level="info")
            return
        project = self.ws.project
        self._tuning, self._trials = True, []
        self.tune_panel.set_running(True)
        self.tune_panel.clear()
        self.jobs.run(
            "Auto-tuning",
            lambda task: tune(project, settings, task=task, on_trial=task.partial),
            self._tuned,
        )

    def _trial_finished(self, record) -> None:
        from workbench.tuning.study import best_key

        if not self._tuning:
            return
        self._trials.append(record)
        self.tune_panel.add_trial(record)
        feasible = [r for r in self._trials if r.feasible]
        best = min(feasible, key=best_key, default=None)  # as the study chooses it
        self.tune_panel.show_best(best)
        self._show_feasibility(self._trials, best)
        self.tree.set_variants(self.ws.variants(), self.ws.current_id)
        self.plot.set_variants(self.ws.variants(), self.ws.current_id)

    def _show_feasibility(self, records, best) -> None:
        feasible: dict[str, bool] = {}
        for record in records:
            if record.outcome is not None:
                vid = record.outcome.variant_id
                feasible[vid] = feasible.get(vid, False) or record.feasible
        best_id = best.outcome.variant_id if best is not None and best.outcome is not None else None
        self.plot.set_feasibility(feasible, best_id)

    def _tuned(self, result) -> None:
        self._tuning = False
        self.tune_panel.set_running(False)
        self.tune_panel.show_result(result)
        self._show_feasibility(result.records, result.best)
        self.refresh()

    def _show_studies(self) -> None:
        """A reopened project shows its latest study: the search resumes from there."""
        from workbench.tuning.study import project_studies

        studies = project_studies(self.ws.project.folder) if self.ws.project is not None else []
        if studies:
            latest = studies[-1]
            self.tune_panel.show_result(latest)
            if latest.goal.get("device"):
                self.tune_panel.set_device(latest.goal["device"])
            self._show_feasibility(latest.records, latest.best)
        else:
            self.tune_panel.clear()
            self.plot.set_feasibility({}, None)

    def choose_report(self) -> None:
        if self.ws.project is None:
            return
        path, _ = QFileDialog.getSaveFileName(self, "Export report", "report.html", "HTML (*.html)")
        if path:
            self.export_report(Path(path))

    def export_report(self, path: Path) -> None:
        from workbench.report import write_report
        from workbench.tuning.study import study_path

        project = self.ws.project
        variant_id = self.ws.current_id
        # a searched project's budgets are its study's device's; otherwise the export panel's
        device = None if study_path(project.folder).is_file() else self.device_panel.device()
        self.jobs.run(
            "Writing the report",
            lambda _task: write_report(project, path, variant_id=variant_id, device_id=device.id if device else None),
            self._report_written,
        )

    def _report_written(self, path: Path) -> None:
        from PySide6.QtCore import QUrl
        from PySide6.QtGui import QDesktopServices

        self.last_report = path
        self.notice.show_message(
            f"Report written: {path}",
            level="success",
            action=("Open", lambda: QDesktopServices.openUrl(QUrl.fromLocalFile(str(path)))),
        )

    # --- refresh ----------------------------------------------------------------------------------
    def refresh(self) -> None:
        if self.ws.litert is not None:
            self._refresh_litert()
            return
        has_project = self.ws.project is not None
        self.plot.show()
        self.graph.color_mode.setEnabled(True)
        self.center.setCurrentWidget(self.tabs if has_project else self.empty)
        for widget in (
            self.plugin_box,
            self.device_panel,
            self.export_action,
            self.report_action,
            self.tune_panel,
            self.apply_action,
            self.undo_action,
            self.attach_action,
        ):
            widget.setEnabled(has_project)
        if not has_project:
            self.tree.set_variants([], None)
            self.plot.set_variants([], None)
            self.layers.set_analysis(None)
            self.metrics_label.setText("")
            self.data_banner.hide()
            return
        variants = self.ws.variants()
        self.tree.set_variants(variants, self.ws.current_id)
        self.plot.set_variants(variants, self.ws.current_id)
        self.layers.set_analysis(self.ws.analysis())
        self.details.show_layer(None, None)
        self.sensitivity.set_report(self.ws.project.sensitivity(self.ws.current_id))
        self._update_device_plan()
        current = next(v for v in variants if v.id == self.ws.current_id)
        self.metrics_label.setText(_metrics_html(current))
        self._show_data_state(current)
        self.setWindowTitle(f"Model Workbench — {self.ws.project.meta('name')} — {current.name}")
        self._sync_graph()

    def _refresh_litert(self) -> None:
        """A LiteRT file as it is: its operators, graph, LiteRT figures and devices; nothing to compress."""
        document = self.ws.litert
        self.center.setCurrentWidget(self.tabs)
        for widget in (self.plugin_box, self.apply_action, self.undo_action, self.report_action, self.tune_panel):
            widget.setEnabled(False)
        for widget in (self.device_panel, self.export_action, self.attach_action):
            widget.setEnabled(True)
        self.readout.setText("A LiteRT file is measured and bundled as it is: compress the model it came from.")
        self.plot.hide()  # one file, no variants: the room goes to its figures
        self.graph.color_mode.setEnabled(False)
        self.tree.set_variants([], None)
        self.layers.set_analysis(document.analysis)
        self.details.show_layer(None, None)
        self.sensitivity.set_report(None)
        self.confusion.show_matrix(None, (), "")
        self.metrics_label.setText(_litert_html(document))
        if document.dataset is None:
            self.data_banner.setText(
                "<b>These figures are on random inputs</b>: size and latency in LiteRT, no accuracy. "
                "<a href='attach'>Attach evaluation data…</a>"
            )
            self.data_banner.show()
        else:
            self.data_banner.hide()
        self._update_device_plan()
        self.setWindowTitle(f"Model Workbench — {document.path.name} (LiteRT, as it is)")
        self._sync_graph()

    def _show_data_state(self, current: Variant) -> None:
        ref = self.ws.project.dataset if self.ws.project is not None else None
        if ref is None or not ref.has_splits:
            self.data_banner.setText(
                "<b>These figures are fidelity on random inputs</b> (agreement with the original model), not "
                "accuracy: the project has no data. <a href='attach'>Attach evaluation data…</a>"
            )
            self.data_banner.show()
        else:
            self.data_banner.hide()
        m = current.metrics
        scoring = self.ws.project.scoring if self.ws.project is not None else None
        names = tuple(scoring.class_names) if scoring is not None and scoring.class_names else ()
        if not names and m is not None and m.confusion:
            dataset = self.ws.dataset()
            names = dataset.class_names if dataset is not None else ()
        self.confusion.show_matrix(m.confusion if m else None, names, f"{current.name}: ")

    def _sync_graph(self) -> None:
        if self.tabs.currentWidget() is not self.graph:
            return
        document = self.ws.litert
        if document is not None:
            if self._graph_variant != str(document.path):
                self._graph_variant = str(document.path)
                self.graph.show_model(document.content, document.path.name)  # netron reads .tflite itself
            return
        if self.ws.project is None:
            return
        if self._graph_variant != self.ws.current_id and self.ws.current_id is not None:
            self._graph_variant = self.ws.current_id
            # the graph with its original names: the stored artifact is compacted to short ones
            model = self.ws.project.load_model(self.ws.current_id)
            self.graph.show_model(model.onnx_bytes(), f"{self.ws.project.get(self.ws.current_id).name}.onnx")

    # --- job feedback -----------------------------------------------------------------------------
    def _job_started(self, label: str) -> None:
        if self._tuning and label != "Auto-tuning":  # another job took over: the search stopped (it resumes)
            self._stop_tuning_view()
        self.loss_values = []
        self.loss_curve.setData([], [])
        self.status_text.setText(label + "…")
        self.progress.setValue(0)
        self.progress.show()
        self.cancel_button.show()

    def _job_metric(self, name: str, value: float) -> None:
        if name != "loss":
            return
        self.loss_values.append(value)
        self.loss_curve.setData(list(range(1, len(self.loss_values) + 1)), self.loss_values)
        self.loss_plot.show()

    def _job_progress(self, fraction: float, message: str) -> None:
        if self._tuning:
            self.tune_panel.show_progress(fraction, message)
        self.progress.setValue(int(fraction * 1000))
        if message:
            self.status_text.setText(f"{self.jobs.label}: {message}")

    def _stop_tuning_view(self) -> None:
        if self._tuning:
            self._tuning = False
            self.tune_panel.set_running(False)
            self._show_studies()

    def _job_idle(self) -> None:
        self.progress.hide()
        self.cancel_button.hide()

    def _job_failed(self, message: str, details: str) -> None:
        self._job_idle()
        self._stop_tuning_view()
        self.status_text.setText("Failed")
        self.notice.show_message(message, level="error", details=details)

    def _job_cancelled(self, label: str) -> None:
        self._job_idle()
        self._stop_tuning_view()
        self.status_text.setText(f"Cancelled: {label}")


def _is_data(path: Path) -> bool:
    """A dropped path that is not a model file or a project folder is taken as data."""
    if path.is_dir():
        return not (path / "project.db").is_file()
    return path.suffix.lower() not in {*MODEL_SUFFIXES, ".tflite"}  # a .tflite is a model, opened as it is


def _litert_html(document) -> str:
    """The file's own figures: what it holds, and what LiteRT measured on which data."""
    from html import escape

    lines = document.describe()
    rows = [f"<b>{escape(lines[0])}</b>", *(f"<small>{escape(line)}</small>" for line in lines[1:])]
    if document.metrics is not None:
        rows += [escape(line) for line in document.metrics.describe_lines()[1:]]
        rows.append(f"<small>measured: {escape(document.metrics.describe_lines()[0])}</small>")
    return "<br>".join(rows)


def _metrics_html(variant: Variant) -> str:
    """The variant's figures, what they were measured on (which split, which runtime settings) and the
    notes its step left."""
    from html import escape

    from workbench.datasets import split_rule

    m = variant.metrics
    notes = [f"<br><small>note: {escape(note)}</small>" for note in variant.notes]
    if m is None:
        return f"<b>{escape(variant.name)}</b>: not measured yet." + "".join(notes)
    quality, label = quality_of(m)
    scores = " · ".join(f"{SCORE_LABELS.get(k, k).removesuffix(' %')} {v:.2%}" for k, v in (m.scores or {}).items())
    fidelity = " · ".join(f"{escape(name)}: {f.describe()}" for name, f in (m.output_fidelity or {}).items())
    rows = [
        f"<b>{escape(variant.name)}</b>",
        f"{label}: <b>{quality:.2f}</b>" if quality is not None else "quality: -",
        f"size: <b>{m.artifact_bytes:,} B</b> file · <b>{m.download:,} B</b> over-the-air download (xz) · "
        f"{m.zip_bytes:,} B zipped",
        f"params: {m.nonzero_params:,} non-zero of {m.params:,} ({m.sparsity:.1%} sparse) · MACs {m.macs:,}",
    ]
    if scores:
        rows.insert(2, f"scores: {scores}")
    if fidelity and not variant.is_root:
        rows.insert(2, f"<small>vs baseline: {fidelity}</small>")
    if m.latency_ms_median is not None:
        ratio = (
            ""
            if variant.is_root or m.latency_ratio is None
            else f" · {m.latency_ratio:.2f}× the baseline's {m.baseline_latency_ms_median:.3f} ms (same run)"
        )
        rows.append(f"latency: {m.latency_ms_median:.3f} ms median, p90 {m.latency_ms_p90:.3f} ms{ratio}")
    shapes = ", ".join(f"{name} {'×'.join(map(str, shape))}" for name, shape in m.input_shapes.items())
    if m.dataset is None:
        data = "no data: size and latency only"
    elif not m.dataset.has_splits:
        data = "random inputs: agreement with the baseline only, no accuracy (attach data for accuracy)"
    else:
        data = f"{m.samples} samples, {escape(m.dataset.describe())} ({escape(split_rule(m.dataset))})"
    runtime = f"; {escape(m.runtime.describe())}" if m.runtime is not None else ""
    feeding = f"; other inputs: {escape(m.input_spec.describe())}" if m.input_spec is not None else ""
    rows.append(f"<small>measured on {escape(m.host)}{runtime}; data: {data}; input {shapes}{feeding}</small>")
    return "<br>".join(rows) + "".join(notes)
