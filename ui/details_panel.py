"""Details of the selected layer: its weight histogram and, once measured, the variant's numbers."""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtWidgets import QLabel, QVBoxLayout, QWidget

from workbench.analysis import LayerInfo


class DetailsPanel(QWidget):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.title = QLabel("Select a layer to see its weights.")
        self.title.setWordWrap(True)
        self.plot = pg.PlotWidget(background=None)
        self.plot.setMenuEnabled(False)
        self.plot.setLabel("bottom", "weight value")
        self.plot.setLabel("left", "count")
        self.bars = pg.BarGraphItem(x=[], height=[], width=1.0, brush="#5c6bc0")
        self.plot.addItem(self.bars)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.title)
        layout.addWidget(self.plot, 1)

    def show_layer(
        self,
        layer: LayerInfo | None,
        weights: np.ndarray | None,
        latency_share: float | None = None,
        snr: str = "",
    ) -> None:
        if layer is None:
            self.title.setText("Select a layer to see its weights.")
            self.bars.setOpts(x=[], height=[])
            return
        latency = (
            "latency share: not measured yet"
            if latency_share is None
            else f"<b>{latency_share:.1%}</b> of kernel time (onnxruntime profile on this host)"
        ) + (f" · {snr}" if snr else "")
        if weights is None or weights.size == 0:
            self.title.setText(f"<b>{layer.name}</b> ({layer.op_type}) has no weights · {latency}")
            self.bars.setOpts(x=[], height=[])
            return
        values = np.asarray(weights, dtype=np.float64).ravel()
        zeros = int((values == 0).sum())
        counts, edges = np.histogram(values[values != 0] if zeros < values.size else values, bins=60)
        centers = (edges[:-1] + edges[1:]) / 2
        self.bars.setOpts(x=centers, height=counts, width=float(edges[1] - edges[0]) * 0.9)
        self.plot.enableAutoRange()
        self.title.setText(
            f"<b>{layer.name}</b> ({layer.op_type}) · {values.size:,} weights · {zeros:,} zero "
            f"({zeros / values.size:.1%}) not shown in the histogram · "
            f"MACs {'?' if layer.macs is None else f'{layer.macs:,}'} · {latency}"
        )
