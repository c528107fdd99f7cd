"""Device picker: budget bars, estimated latency/energy (labelled as estimates) and pre-export warnings,
above the one Export button."""

from __future__ import annotations

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QComboBox, QFormLayout, QGroupBox, QLabel, QProgressBar, QPushButton, QVBoxLayout

from workbench.device_export import ExportPlan
from workbench.devices import DeviceProfile, load_devices


class DevicePanel(QGroupBox):
    deviceChanged = Signal()

    def __init__(self) -> None:
        super().__init__("Export for a device")
        self.profiles, problems = load_devices()
        self.combo = QComboBox()
        for profile in self.profiles.values():
            self.combo.addItem(profile.name, profile.id)
        self.combo.setCurrentIndex(max(self.combo.findData("x86-server"), 0))
        self.combo.currentIndexChanged.connect(lambda _i: self.deviceChanged.emit())
        self.storage_bar, self.ram_bar = QProgressBar(), QProgressBar()
        for bar in (self.storage_bar, self.ram_bar):
            bar.setRange(0, 100)
            bar.setTextVisible(True)
        self.estimates = QLabel()
        self.estimates.setWordWrap(True)
        self.messages = QLabel("\n".join(f"Skipped profile: {p}" for p in problems))
        self.messages.setWordWrap(True)
        self.export_button = QPushButton("Export…")
        self.export_button.setToolTip("Convert, verify and write a bundle for the chosen device (Ctrl+E)")
        form = QFormLayout()
        form.addRow("Device", self.combo)
        form.addRow("Model storage", self.storage_bar)
        form.addRow("Peak activations", self.ram_bar)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.estimates)
        layout.addWidget(self.messages)
        layout.addWidget(self.export_button)

    def device(self) -> DeviceProfile | None:
        return self.profiles.get(self.combo.currentData())

    def show_plan(self, plan: ExportPlan | None) -> None:
        if plan is None:
            self.estimates.setText("")
            self.messages.setText("")
            return
        for bar, budget in zip((self.storage_bar, self.ram_bar), plan.budgets, strict=True):
            percent = budget.fraction * 100
            bar.setValue(min(round(percent), 100))
            bar.setFormat(f"{_human(budget.used)} of {_human(budget.limit)} ({percent:.0f} %)")
            bar.setStyleSheet(
                "QProgressBar::chunk { background: %s; }" % ("#c62828" if budget.fraction > 1 else "#2e7d32")
            )
        from workbench.exporters import get_exporter

        latency = "?" if plan.latency_estimate_s is None else f"{plan.latency_estimate_s * 1000:.3f} ms"
        formats = ", ".join([get_exporter(plan.format).label, *(get_exporter(f).label for f in plan.also)])
        self.estimates.setText(
            f"<b>Estimated on {plan.device.name}</b> (from its profile, not measured): latency ≈ {latency}, "
            f"energy ≈ {plan.energy_estimate_j * 1000:.4f} mJ per inference · exports as {plan.export_precision}, "
            f"{formats}"
        )
        lines = [f"<span style='color:#b3261e'>✗ {r}</span>" for r in plan.refusals]
        lines += [f"<span style='color:#a05a00'>⚠ {w}</span>" for w in plan.warnings]
        self.messages.setText("<br>".join(lines))
        self.export_button.setEnabled(plan.ok)
        self.export_button.setText(f"Export for {plan.device.name}…" if plan.ok else "Export unavailable")

    def show_error(self, message: str) -> None:
        self.messages.setText(f"<span style='color:#b3261e'>{message}</span>")
        self.export_button.setEnabled(False)


def _human(n: int) -> str:
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:,.0f} {unit}" if unit == "B" else f"{value:,.1f} {unit}"
        value /= 1024
    return f"{n} B"
