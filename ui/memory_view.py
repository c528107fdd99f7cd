"""The microcontroller memory timeline: live activation bytes while each operator of the exported
TensorFlow Lite Micro model runs, the peak marked, beside the tensor arena TFLM itself allocated."""

from __future__ import annotations

from typing import Any

import pyqtgraph as pg
from PySide6.QtWidgets import QLabel, QVBoxLayout, QWidget


class MemoryView(QWidget):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.title = QLabel()
        self.title.setWordWrap(True)
        self.plot = pg.PlotWidget(background=None)
        self.plot.setMenuEnabled(False)
        self.plot.setLabel("left", "live activation bytes")
        self.plot.setLabel("bottom", "operator (execution order)")
        self.plot.addLegend(offset=(-10, 10))
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.title)
        layout.addWidget(self.plot, 1)
        self.peak: dict[str, Any] | None = None
        self.show_report(None)

    def show_report(self, tflm: dict[str, Any] | None, device: str = "") -> None:
        """``tflm``: a bundle's ``format_report.tflm`` (the timeline, the peak and the measured arena)."""
        self.plot.clear()
        self.peak = None
        if not tflm:
            self.title.setText(
                "No memory timeline yet: export for a microcontroller (TensorFlow Lite Micro, e.g. cortex-m7) "
                "and the bundle's operator-by-operator activation memory shows here, beside the arena TFLM "
                "measured."
            )
            return
        steps = tflm["memory_timeline"]
        x = list(range(len(steps)))
        y = [step["live_bytes"] for step in steps]
        bars = pg.BarGraphItem(x=x, height=y, width=0.7, brush="#64b5f6", name="live activations")
        self.plot.addItem(bars)
        self.peak = tflm["timeline_peak"]
        peak_index = next(i for i, step in enumerate(steps) if step["index"] == self.peak["index"])
        marker = pg.ScatterPlotItem(
            [peak_index], [self.peak["live_bytes"]], symbol="t", size=14, brush="#c62828", name="peak"
        )
        self.plot.addItem(marker)
        for value, color, label in (
            (tflm["arena_head_bytes"], "#ef6c00", "TFLM arena: planned activations (head)"),
            (tflm["arena_bytes"], "#2e7d32", "TFLM arena: total"),
        ):
            line = pg.InfiniteLine(pos=value, angle=0, pen=pg.mkPen(color, width=2, style=pg.QtCore.Qt.DashLine))
            self.plot.addItem(line)
            self.plot.plot([], [], pen=pg.mkPen(color, width=2), name=f"{label} {value:,} B")
        axis = self.plot.getAxis("bottom")
        axis.setTicks([[(i, f"{step['index']}:{step['op'][:9]}") for i, step in enumerate(steps)]])
        fits = "within" if self.peak["live_bytes"] <= tflm["arena_head_bytes"] else "ABOVE"
        self.title.setText(
            f"<b>{device}</b>: peak {self.peak['live_bytes']:,} B of live activations at operator "
            f"{self.peak['index']} ({self.peak['op']}), {fits} the {tflm['arena_head_bytes']:,} B TFLM planned for "
            f"them; the whole arena is {tflm['arena_bytes']:,} B of a {tflm['ram_budget_bytes']:,} B RAM budget "
            f"(measured by TFLM on the exported model.tflite; flash {tflm['flash_bytes']:,} B of "
            f"{tflm['flash_budget_bytes']:,} B)."
        )
