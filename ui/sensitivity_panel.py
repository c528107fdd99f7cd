"""Sensitivity tab: one curve per layer (quality against that layer's sparsity), and proposals for an
accuracy budget: the pruning plugin's per-layer overrides, and a precision per layer (int4 / int8 /
float) that one click applies as a mixed-precision step."""

from __future__ import annotations

import pyqtgraph as pg
from PySide6.QtCore import Signal
from PySide6.QtWidgets import QDoubleSpinBox, QHBoxLayout, QLabel, QPushButton, QVBoxLayout, QWidget

from workbench.sensitivity import SensitivityReport


class SensitivityPanel(QWidget):
    runRequested = Signal()
    overridesProposed = Signal(dict)
    mixedPrecisionRequested = Signal(float)  # the budget in points

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.report: SensitivityReport | None = None
        self.run_button = QPushButton("Run sensitivity sweep")
        self.run_button.setToolTip(
            "Prune each layer alone at 25/50/75/90 % and store its int8 and int4 weights alone; "
            "measure quality each time (runs in the background)"
        )
        self.run_button.clicked.connect(self.runRequested)
        self.budget = QDoubleSpinBox()
        self.budget.setRange(0.0, 20.0)
        self.budget.setSingleStep(0.5)
        self.budget.setValue(1.0)
        self.budget.setSuffix(" pt drop")
        self.budget.valueChanged.connect(lambda _v: self._show_proposal())
        self.use_button = QPushButton("Use as pruning overrides")
        self.use_button.setEnabled(False)
        self.use_button.clicked.connect(self._use)
        self.mixed_button = QPushButton("Apply mixed precision")
        self.mixed_button.setToolTip(
            "int4 for as many layers as the budget allows (least harmful first, checked together on the "
            "calibration split), int8 for the rest"
        )
        self.mixed_button.setEnabled(False)
        self.mixed_button.clicked.connect(self._use_precisions)
        self.plot = pg.PlotWidget(background=None)
        self.plot.addLegend(offset=(-10, 10))
        self.plot.setLabel("bottom", "sparsity of that layer alone")
        self.plot.showGrid(x=True, y=True, alpha=0.25)
        self.plot.setMenuEnabled(False)
        self.proposal = QLabel("No sweep yet for this variant.")
        self.proposal.setWordWrap(True)
        controls = QHBoxLayout()
        controls.addWidget(self.run_button)
        controls.addWidget(QLabel("Accuracy budget:"))
        controls.addWidget(self.budget)
        controls.addWidget(self.use_button)
        controls.addWidget(self.mixed_button)
        controls.addStretch(1)
        layout = QVBoxLayout(self)
        layout.addLayout(controls)
        layout.addWidget(self.plot, 1)
        layout.addWidget(self.proposal)

    def set_report(self, report: SensitivityReport | None) -> None:
        self.report = report
        self.plot.clear()
        self.use_button.setEnabled(report is not None)
        self.mixed_button.setEnabled(report is not None)
        if report is None:
            self.proposal.setText("No sweep yet for this variant.")
            return
        self.plot.setLabel("left", f"{report.metric} % (measured on {report.samples} samples)")
        for index, layer in enumerate(report.layers):
            xs = [0.0, *[float(s) for s in layer.sparsity_quality]]
            ys = [report.baseline_quality * 100, *[q * 100 for q in layer.sparsity_quality.values()]]
            pen = pg.mkPen(pg.intColor(index, hues=max(len(report.layers), 1)), width=2)
            self.plot.plot(xs, ys, pen=pen, symbol="o", symbolSize=6, name=layer.weight)
        self._show_proposal()

    def _budget(self) -> float:
        return self.budget.value() / 100

    def _show_proposal(self) -> None:
        if self.report is None:
            return
        overrides = self.report.propose_overrides(self._budget())
        keep = self.report.keep_float(self._budget())
        precisions = self.report.propose_precisions(self._budget())
        self.proposal.setText(
            "<b>Proposed per-layer pruning:</b> "
            + ", ".join(f"{k} {v:.0%}" for k, v in overrides.items())
            + "<br><b>Keep in float when quantizing:</b> "
            + (", ".join(keep) if keep else "none")
            + "<br><b>Mixed precision, each layer alone:</b> "
            + (", ".join(f"{k} {v}" for k, v in precisions.items()) or "sweep again to measure int4 weights")
            + " (Apply mixed precision checks the layers together)"
        )

    def _use(self) -> None:
        if self.report is not None:
            self.overridesProposed.emit(self.report.propose_overrides(self._budget()))

    def _use_precisions(self) -> None:
        self.mixedPrecisionRequested.emit(self.budget.value())
