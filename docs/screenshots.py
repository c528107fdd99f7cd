"""Render the main views to PNG for the README: empty state, loaded model, two variants, graph tab, ...,
the edge targets (placement per layer, graph colours, the microcontroller memory timeline, a .tflite
opened as it is), and the Auto-tune tab mid-search with the report it leads to.

Usage: QT_QPA_PLATFORM=offscreen QTWEBENGINE_DISABLE_SANDBOX=1 python docs/screenshots.py [OUT_DIR]
[--edge-only|--tune-only]
Uses a temporary config/cache/projects folder, so the user's settings are untouched.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path


def wait_for(app, condition, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        app.processEvents()
        time.sleep(0.02)
        if time.monotonic() > deadline:
            raise TimeoutError("the window did not get there in time")


def _speech_folder(scratch: Path) -> Path:
    """A few Speech Commands-style clips (16 kHz mono wav, one folder per word), synthesized."""
    import wave

    import numpy as np

    root = scratch / "speech"
    t = np.arange(16000) / 16000
    for word, pitch in (("yes", 180.0), ("no", 120.0), ("up", 240.0), ("down", 90.0)):
        (root / word).mkdir(parents=True, exist_ok=True)
        for index in range(5):
            envelope = np.clip(np.minimum(t - 0.2, 0.7 - t) * 30, 0, 1)
            sweep = np.sin(2 * np.pi * (pitch + 60 * index) * t * (1 + 0.3 * t))
            samples = (0.5 * envelope * sweep * 32767).astype(np.int16)
            with wave.open(str(root / word / f"clip{index}.wav"), "wb") as clip:
                clip.setnchannels(1)
                clip.setsampwidth(2)
                clip.setframerate(16000)
                clip.writeframes(samples.tobytes())
    return root


def edge_shots(app, window, out: Path) -> None:
    """The Target column and graph colours for a device, then a microcontroller export's memory timeline."""
    window.select_variant(window.ws.project.root.id)
    panel = window.device_panel
    panel.combo.setCurrentIndex(panel.combo.findData("coral-edgetpu"))
    window.tabs.setCurrentIndex(0)
    window.layers.select_row(7)
    app.processEvents()
    window.grab().save(str(out / "10-placement.png"))
    window.tabs.setCurrentWidget(window.graph)
    window.graph.color_mode.setCurrentIndex(window.graph.color_mode.findData("quant-snr"))
    wait_for(app, lambda: window.graph.coloured > 0, 120)
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline:
        app.processEvents()
        time.sleep(0.05)
    window.grab().save(str(out / "11-graph-colours.png"))
    panel.combo.setCurrentIndex(panel.combo.findData("cortex-m7"))
    window.export_to(Path(tempfile.mkdtemp(prefix="workbench-shot-bundle-")))
    wait_for(app, lambda: not window.jobs.busy, 300)
    app.processEvents()
    window.grab().save(str(out / "12-memory.png"))
    litert_shots(app, window, window.last_bundle / "model.tflite", out)


def tune_shots(app, window, out: Path) -> None:
    """The Auto-tune tab mid-search (trials streaming onto the plot), then the report it leads to."""
    from PySide6.QtCore import Qt

    window.tabs.setCurrentWidget(window.tune_panel)
    panel = window.tune_panel
    panel.set_device("phone")
    panel.max_drop.setValue(1.0)
    panel.minutes.setValue(0)
    panel.trials.setValue(10)
    allowed = {"magnitude_prune", "weight_sharing", "quantize_int8"}
    for row in range(panel.plugins.count()):
        item = panel.plugins.item(row)
        wanted = item.data(Qt.ItemDataRole.UserRole) in allowed
        item.setCheckState(Qt.CheckState.Checked if wanted else Qt.CheckState.Unchecked)
    panel.start_button.click()  # the panel's own settings, as a user starts it
    wait_for(app, lambda: panel.table.rowCount() >= 4, 600)
    app.processEvents()
    window.grab().save(str(out / "15-autotune.png"))
    wait_for(app, lambda: not window.jobs.busy, 900)
    panel.select_best.click()  # the report shows the selected variant's budgets and recipe
    report = Path(tempfile.mkdtemp(prefix="workbench-shot-report-")) / "report.html"
    window.export_report(report)
    wait_for(app, lambda: not window.jobs.busy and report.is_file(), 300)
    from PySide6.QtCore import QUrl
    from PySide6.QtWebEngineWidgets import QWebEngineView

    view = QWebEngineView()
    view.resize(1400, 1000)
    loaded = []
    view.loadFinished.connect(loaded.append)
    view.load(QUrl.fromLocalFile(str(report)))
    view.show()
    wait_for(app, lambda: bool(loaded), 120)
    deadline = time.monotonic() + 5  # plotly draws after the page has loaded
    while time.monotonic() < deadline:
        app.processEvents()
        time.sleep(0.05)
    view.grab().save(str(out / "16-report.png"))
    view.close()


def litert_shots(app, window, tflite: Path, out: Path) -> None:
    """A .tflite opened as it is: its operators with their int8 quantization, measured in LiteRT on the
    evaluation split, planned for Coral; then netron's drawing of it."""
    from workbench.datasets import mnist_sample_ref

    window.open_path(tflite)
    wait_for(app, lambda: window.ws.litert is not None and not window.jobs.busy, 120)
    window.ws.litert.attach_data(mnist_sample_ref("test"), None)  # what Data > Attach does, without the dialog
    panel = window.device_panel
    panel.combo.setCurrentIndex(panel.combo.findData("coral-edgetpu"))
    window.refresh()
    window.tabs.setCurrentIndex(0)
    window.layers.select_row(3)
    app.processEvents()
    window.grab().save(str(out / "13-litert-file.png"))
    window.tabs.setCurrentWidget(window.graph)
    deadline = time.monotonic() + 8  # netron draws the flatbuffer in the web view
    while time.monotonic() < deadline:
        app.processEvents()
        time.sleep(0.05)
    window.grab().save(str(out / "14-litert-graph.png"))


def main() -> None:
    edge_only = "--edge-only" in sys.argv
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    out = Path(args[0] if args else Path(__file__).parent / "screenshots")
    out.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix="workbench-shots-"))
    for name in ("CONFIG", "CACHE", "PROJECTS"):
        os.environ.setdefault(f"WORKBENCH_{name}_DIR", str(scratch / name.lower()))
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    os.environ.setdefault("QTWEBENGINE_DISABLE_SANDBOX", "1")

    from PySide6.QtWidgets import QApplication
    from workbench.ui.main_window import MainWindow

    app = QApplication(sys.argv[:1])
    app.setStyle("Fusion")
    window = MainWindow()
    window.resize(1600, 950)
    window.show()
    app.processEvents()
    window.grab().save(str(out / "1-empty.png"))

    window.open_demo()
    wait_for(app, lambda: window.ws.project is not None and not window.jobs.busy, 300)
    if "--tune-only" in sys.argv:
        tune_shots(app, window, out)
        window.close()
        return
    if edge_only:
        edge_shots(app, window, out)
        window.close()
        return
    window.layers.select_row(0)
    app.processEvents()
    window.grab().save(str(out / "2-loaded.png"))

    for sparsity in (0.5, 0.9):
        slider = window.form.sliders["sparsity"]
        slider.setValue(round(sparsity * 1000))
        wait_for(app, lambda: not window.jobs.busy)
        window.apply_step()
        wait_for(app, lambda: not window.jobs.busy)
    slider = window.form.sliders["sparsity"]
    slider.setValue(700)
    window._evaluate_preview()
    wait_for(app, lambda: not window.jobs.busy)
    window.layers.select_row(3)
    app.processEvents()
    window.grab().save(str(out / "3-variants.png"))

    window.tabs.setCurrentWidget(window.graph)
    time.sleep(0.5)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:  # netron renders asynchronously
        app.processEvents()
        time.sleep(0.05)
    window.grab().save(str(out / "4-graph.png"))

    # A calibrated step: its note (which split it calibrated on) and the figures' split and runtime.
    window.tabs.setCurrentWidget(window.layers.parentWidget() or window.tabs.widget(0))
    window.ws.apply("quantize_int8", {"mode": "static"})
    window.refresh()
    app.processEvents()
    window.grab().save(str(out / "5-notes.png"))

    # The sensitivity tab on the baseline: curves, and the per-layer precisions one click applies.
    window.select_variant(window.ws.project.root.id)
    window.tabs.setCurrentWidget(window.sensitivity)
    window.run_sensitivity()
    wait_for(app, lambda: not window.jobs.busy and window.sensitivity.report is not None, 300)
    window.sensitivity.budget.setValue(0.5)
    app.processEvents()
    window.grab().save(str(out / "6-sensitivity.png"))
    window.sensitivity.mixed_button.click()
    wait_for(app, lambda: not window.jobs.busy, 300)

    # Data ▸ Attach evaluation data: the dialog with its preview, on images and on audio.
    from workbench.ui.data_dialog import DataDialog

    root_model = window.ws.model(window.ws.project.root.id)
    for name, path in (("7-data.png", "mnist-sample"), ("9-audio-data.png", str(_speech_folder(scratch)))):
        dialog = DataDialog(root_model, path=path, parent=window)
        dialog.show()
        wait_for(app, lambda d=dialog: not d.jobs.busy and d.preview_grid.count() > 0, 120)
        app.processEvents()
        dialog.grab().save(str(out / name))
        dialog.reject()

    # The confusion matrix of the selected variant on the evaluation split.
    window.tabs.setCurrentWidget(window.confusion)
    app.processEvents()
    window.grab().save(str(out / "8-confusion.png"))
    edge_shots(app, window, out)
    window.open_demo()
    wait_for(app, lambda: window.ws.project is not None and not window.jobs.busy, 300)
    tune_shots(app, window, out)
    window.close()
    print(f"wrote {', '.join(sorted(p.name for p in out.glob('*.png')))} to {out}")


if __name__ == "__main__":
    main()
