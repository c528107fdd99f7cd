"""The Auto-tune tab: name the device, the accuracy you can lose, a time or trial budget and the plugins
allowed; watch the trials arrive, stop at any time, select the best variant that meets the goal."""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from workbench.devices import load_devices
from workbench.tuning.study import TrialRecord, TuneResult, TuneSettings
from workbench.tuning.trial import STAGES, Goal

COLUMNS = ["trial", "steps", "shipped smaller", "latency", "quality", "goal"]


class TunePanel(QWidget):
    startRequested = Signal(object)  # TuneSettings
    stopRequested = Signal()
    variantChosen = Signal(str)

    def __init__(self, plugins: list[str], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.device = QComboBox()
        for profile in load_devices()[0].values():
            self.device.addItem(profile.name, profile.id)
        self.max_drop = _spin(0.0, 20.0, 0.5, 0.1, " pt")
        self.use_agreement, self.min_agreement = QCheckBox("at least"), _spin(50.0, 100.0, 99.0, 0.1, " % agreement")
        self.use_latency, self.max_latency = QCheckBox("at most"), _spin(0.1, 10.0, 1.0, 0.05, " x the baseline")
        self.minutes = QSpinBox()
        self.minutes.setRange(0, 24 * 60)
        self.minutes.setValue(5)
        self.minutes.setSuffix(" min (0: no limit)")
        self.trials = QSpinBox()
        self.trials.setRange(0, 10_000)
        self.trials.setValue(0)
        self.trials.setSuffix(" trials (0: no limit)")
        self.workers = QSpinBox()
        self.workers.setRange(1, 64)
        self.workers.setValue(1)
        self.ray = QLineEdit()
        self.ray.setPlaceholderText("empty: worker processes on this machine; or a Ray head, e.g. 10.0.0.5:6379")
        self.plugins = QListWidget()
        self.plugins.setMaximumHeight(120)
        for stage, ids in STAGES.items():
            for plugin in ids:
                if plugin in plugins:
                    item = QListWidgetItem(f"{plugin}  ({stage})")
                    item.setData(Qt.ItemDataRole.UserRole, plugin)
                    item.setCheckState(Qt.CheckState.Checked)
                    self.plugins.addItem(item)
        self.start_button = QPushButton("Start")
        self.start_button.clicked.connect(self._start)
        self.stop_button = QPushButton("Stop")
        self.stop_button.setEnabled(False)
        self.stop_button.clicked.connect(self.stopRequested)
        self.progress = QProgressBar()
        self.progress.setRange(0, 1000)
        self.status = QLabel("Set the goal and press Start: trials appear here and on the plot as they finish.")
        self.status.setWordWrap(True)
        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels(COLUMNS)
        self.table.horizontalHeader().setSectionResizeMode(1, QHeaderView.ResizeMode.Stretch)
        self.table.verticalHeader().hide()
        self.table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.table.setSelectionBehavior(QTableWidget.SelectionBehavior.SelectRows)
        self.table.cellDoubleClicked.connect(self._row_chosen)
        self.best = QLabel("")
        self.best.setWordWrap(True)
        self.best.setTextFormat(Qt.TextFormat.RichText)
        self.select_best = QPushButton("Select the best")
        self.select_best.setEnabled(False)
        self.select_best.clicked.connect(lambda: self._best_id and self.variantChosen.emit(self._best_id))
        self._best_id: str | None = None
        self._variant_of_row: list[str | None] = []

        form = QFormLayout()
        form.addRow("Device", self.device)
        form.addRow("Accuracy you can lose", self.max_drop)
        form.addRow(_row(self.use_agreement, self.min_agreement), None)
        form.addRow(_row(self.use_latency, self.max_latency), None)
        form.addRow("Time", self.minutes)
        form.addRow("Trials", self.trials)
        form.addRow("Trials at once", self.workers)
        form.addRow("Ray cluster", self.ray)
        form.addRow("Plugins allowed", self.plugins)
        buttons = QHBoxLayout()
        buttons.addWidget(self.start_button)
        buttons.addWidget(self.stop_button)
        buttons.addWidget(self.progress, 1)
        best = QHBoxLayout()
        best.addWidget(self.best, 1)
        best.addWidget(self.select_best)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addLayout(buttons)
        layout.addWidget(self.status)
        layout.addWidget(self.table, 1)
        layout.addLayout(best)

    # --- settings -----------------------------------------------------------------------------------
    def set_device(self, device_id: str) -> None:
        index = self.device.findData(device_id)
        if index >= 0:
            self.device.setCurrentIndex(index)

    def settings(self) -> TuneSettings:
        allowed = [
            self.plugins.item(i).data(Qt.ItemDataRole.UserRole)
            for i in range(self.plugins.count())
            if self.plugins.item(i).checkState() == Qt.CheckState.Checked
        ]
        goal = Goal(
            device=self.device.currentData(),
            max_drop=self.max_drop.value(),
            min_agreement=self.min_agreement.value() / 100 if self.use_agreement.isChecked() else None,
            max_latency_ratio=self.max_latency.value() if self.use_latency.isChecked() else None,
            plugins=allowed,
        )
        return TuneSettings(
            goal=goal,
            trials=self.trials.value() or None,
            seconds=self.minutes.value() * 60 or None,
            workers=self.workers.value(),
            ray_address=self.ray.text().strip() or None,
        )

    def _start(self) -> None:
        settings = self.settings()
        if not settings.goal.plugins:
            self.status.setText("<span style='color:#b3261e'>Allow at least one plugin.</span>")
            return
        if settings.trials is None and settings.seconds is None:
            settings.seconds = 300.0  # never an unbounded search by accident: five minutes
        self.startRequested.emit(settings)

    # --- a running search -----------------------------------------------------------------------------
    def set_running(self, running: bool) -> None:
        self.start_button.setEnabled(not running)
        self.stop_button.setEnabled(running)
        if running:
            self.progress.setValue(0)

    def show_progress(self, fraction: float, message: str) -> None:
        self.progress.setValue(int(fraction * 1000))
        self.status.setText(message)

    def clear(self) -> None:
        self.table.setRowCount(0)
        self._variant_of_row = []
        self.show_best(None)

    def add_trial(self, record: TrialRecord) -> None:
        row = self.table.rowCount()
        self.table.insertRow(row)
        o = record.outcome
        if o is None:
            cells = [str(record.number), record.describe_chain(), "-", "-", "-", f"failed: {record.error or '?'}"]
        else:
            broken = [k for k, c in o.constraints.items() if c.value > 0]
            cells = [
                str(record.number),
                record.describe_chain(),
                f"{1 / o.download_ratio:.1f}x",
                f"{o.latency_ratio:.2f}x",
                f"{o.quality:.2%} ({-o.drop_points:+.2f} pt)",
                "meets it" if not broken else "breaks " + ", ".join(broken),
            ]
        for column, text in enumerate(cells):
            item = QTableWidgetItem(text)
            if o is not None:  # sizes are of the file the device's bundle ships; the plot shows variants' own ONNX
                shipped = f"size and latency measured on {o.shipped}\n" if o.shipped else ""
                constraints = "\n".join(f"{k}: {c.detail} ({c.source})" for k, c in o.constraints.items())
                item.setToolTip(shipped + constraints)
            if o is None or not o.feasible:
                item.setForeground(Qt.GlobalColor.gray)
            self.table.setItem(row, column, item)
        self._variant_of_row.append(o.variant_id if o is not None else None)
        self.table.scrollToBottom()

    def show_result(self, result: TuneResult) -> None:
        """A finished (or stopped, or resumed) study: every trial, and its best feasible variant."""
        self.clear()
        for record in result.records:
            if record.state != "running":
                self.add_trial(record)
        self.show_best(result.best)
        self.status.setText(
            f"Study {result.study_name}: {len(result.records)} trials"
            + (f"; {result.stopped} after {result.seconds:.0f} s" if result.stopped else "")
            + f"; hypervolume {result.hypervolume:.4f}"
        )

    def show_best(self, best: TrialRecord | None) -> None:
        self._best_id = best.outcome.variant_id if best is not None and best.outcome is not None else None
        self.select_best.setEnabled(self._best_id is not None)
        if best is None or best.outcome is None:
            self.best.setText("No trial meets every constraint yet.")
            return
        o = best.outcome
        self.best.setText(
            f"<b>Best meeting the goal</b>: trial {best.number}, {1 / o.download_ratio:.1f}x smaller download, latency "
            f"{o.latency_ratio:.2f}x, {o.quality_name} {o.quality:.2%} ({-o.drop_points:+.2f} pt)"
            + (f"; measured on {o.shipped}" if o.shipped else "")
        )

    def _row_chosen(self, row: int, _column: int) -> None:
        if 0 <= row < len(self._variant_of_row) and self._variant_of_row[row]:
            self.variantChosen.emit(self._variant_of_row[row])


def _spin(low: float, high: float, value: float, step: float, suffix: str) -> QDoubleSpinBox:
    spin = QDoubleSpinBox()
    spin.setRange(low, high)
    spin.setDecimals(2)
    spin.setSingleStep(step)
    spin.setValue(value)
    spin.setSuffix(suffix)
    return spin


def _row(check: QCheckBox, spin: QDoubleSpinBox) -> QWidget:
    holder = QWidget()
    layout = QHBoxLayout(holder)
    layout.setContentsMargins(0, 0, 0, 0)
    layout.addWidget(check)
    layout.addWidget(spin, 1)
    return holder
