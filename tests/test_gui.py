"""The window, driven offscreen with pytest-qt: drop, slider readout, apply, plot selection, cancel,
a broken file, export. Every test closes its window and leaves no worker thread running."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("PySide6")
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("QTWEBENGINE_DISABLE_SANDBOX", "1")

from PySide6.QtCore import QMimeData, QPointF, Qt, QUrl
from PySide6.QtGui import QDropEvent

try:  # QtWebEngine must be imported before the QApplication exists
    import PySide6.QtWebEngineWidgets  # noqa: F401

    HAVE_WEBENGINE = True
except ImportError:
    HAVE_WEBENGINE = False

from workbench.ui.data_dialog import DataDialog
from workbench.ui.main_window import MainWindow

from workbench.datasets import mnist_sample_ref, split_indices
from workbench.errors import WorkbenchError
from workbench.runtime import make_session

JOB_TIMEOUT_MS = 120_000


@pytest.fixture
def window(qtbot, tmp_path, monkeypatch):
    monkeypatch.setenv("WORKBENCH_PROJECTS_DIR", str(tmp_path / "projects"))
    win = MainWindow(use_webengine=False)
    qtbot.addWidget(win)
    win.show()
    yield win
    win.close()
    assert not win.jobs.busy, "a worker thread outlived its window"


def wait_idle(qtbot, win) -> None:
    qtbot.waitUntil(lambda: not win.jobs.busy, timeout=JOB_TIMEOUT_MS)


def drop(win, path: Path) -> None:
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(path))])
    event = QDropEvent(
        QPointF(200, 200), Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier
    )
    win.dropEvent(event)


def open_demo_model(qtbot, win, demo_checkpoint) -> None:
    drop(win, demo_checkpoint)
    qtbot.waitUntil(lambda: win.ws.project is not None and not win.jobs.busy, timeout=JOB_TIMEOUT_MS)


def test_empty_state_then_drop_loads_the_model(qtbot, window, demo_checkpoint):
    assert window.center.currentWidget() is window.empty
    open_demo_model(qtbot, window, demo_checkpoint)
    assert window.center.currentWidget() is window.tabs
    assert window.layers.model.rowCount() == 12
    assert "61,706" in window.layers.summary.text()
    assert window.tree.topLevelItemCount() == 1 and len(window.plot.points) == 1


def test_dynamic_model_asks_for_a_shape_once(qtbot, window, mlp_onnx, monkeypatch):
    asked = []
    monkeypatch.setattr(window, "ask_input_shape", lambda path, model: asked.append(path) or "x=4,16")
    drop(window, mlp_onnx)
    qtbot.waitUntil(lambda: window.ws.project is not None and not window.jobs.busy, timeout=JOB_TIMEOUT_MS)
    assert asked == [mlp_onnx]
    assert window.ws.analysis().input_shapes.shapes == {"x": (4, 16)}


def test_broken_file_shows_a_notice_and_the_app_stays_usable(qtbot, window, tmp_path, demo_checkpoint):
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"definitely not protobuf" * 20)
    drop(window, broken)
    wait_idle(qtbot, window)
    assert window.notice.isVisible() and "broken.onnx" in window.notice.message.text()
    open_demo_model(qtbot, window, demo_checkpoint)
    assert window.ws.project is not None
    # a truncated .tflite: one line names it, and the open project stays
    shipped = Path(__import__("tflite_micro").__file__).parent / "python" / "tflite_micro" / "sine_float.tflite"
    truncated = tmp_path / "truncated.tflite"
    truncated.write_bytes(shipped.read_bytes()[:300])
    drop(window, truncated)
    wait_idle(qtbot, window)
    assert "truncated.tflite" in window.notice.message.text() and window.ws.project is not None


def test_a_tflite_opens_as_it_is_measured_in_litert_planned_and_bundled(
    qtbot, window, tmp_path, monkeypatch, demo_checkpoint
):
    from workbench.ui.layer_table import TARGET

    from workbench.device_export import export_for_device
    from workbench.devices import load_devices
    from workbench.loading import load_model
    from workbench.project import Project

    # a full-int8 LeNet .tflite, converted and calibrated here as a user's file would come
    with Project.create(tmp_path / "p", load_model(demo_checkpoint), dataset=mnist_sample_ref("test", limit=60)) as p:
        bundle = export_for_device(p, p.root.id, load_devices()[0]["coral-edgetpu"], tmp_path / "b", runs=5)
    given = tmp_path / "lenet_int8.tflite"
    given.write_bytes((bundle / "model.tflite").read_bytes())
    drop(window, given)
    qtbot.waitUntil(lambda: window.ws.litert is not None and not window.jobs.busy, timeout=JOB_TIMEOUT_MS)
    assert window.ws.project is None and not window.plugin_box.isEnabled()
    model = window.layers.model
    assert model.rowCount() == len(window.ws.litert.found.operators) == 10
    ops = [model.data(model.index(r, 1)) for r in range(model.rowCount())]
    assert "CONV_2D" in ops and "FULLY_CONNECTED" in ops
    assert "int8" in window.metrics_label.text() and "74,632 B" in window.metrics_label.text()
    assert window.data_banner.isVisible()  # random inputs until data is attached
    window.layers.select_row(ops.index("CONV_2D"))
    assert "per-channel" in window.details.title.text() and window.details.bars.opts["height"].sum() > 0

    def attach(dialog: DataDialog) -> int:
        dialog.path.setText("mnist-sample")
        dialog.refresh_preview()
        qtbot.waitUntil(lambda: not dialog.jobs.busy, timeout=JOB_TIMEOUT_MS)
        dialog._accept()
        return 1

    monkeypatch.setattr(DataDialog, "exec", attach)
    window.attach_action.trigger()
    wait_idle(qtbot, window)
    metrics = window.ws.litert.metrics
    assert metrics.accuracy > 0.9 and metrics.dataset.split == "evaluation" and not window.data_banner.isVisible()
    # Coral takes it: every operator on the Edge TPU in the Target column; a phone is refused with the reason
    panel = window.device_panel
    panel.combo.setCurrentIndex(panel.combo.findData("phone"))
    assert "goes as it is only to" in panel.messages.text() and not panel.export_button.isEnabled()
    panel.combo.setCurrentIndex(panel.combo.findData("cortex-m7"))
    assert model.data(model.index(1, TARGET)) == "runs on the target" and panel.export_button.isEnabled()
    window.export_to(tmp_path / "out")
    wait_idle(qtbot, window)
    assert (window.last_bundle / "model.tflite").read_bytes() == given.read_bytes()
    assert window.tabs.currentWidget() is window.memory  # the TFLM arena beside the timeline


def test_slider_updates_the_readout_and_apply_adds_a_variant(qtbot, window, demo_checkpoint):
    open_demo_model(qtbot, window, demo_checkpoint)
    slider = window.form.sliders["sparsity"]
    slider.setSliderDown(True)  # dragging: analysis-only readout, no evaluation yet
    slider.setValue(800)
    assert "sparsity <b>79" in window.readout.text() or "sparsity <b>80" in window.readout.text()
    slider.setValue(300)
    assert "sparsity <b>29" in window.readout.text() or "sparsity <b>30" in window.readout.text()
    slider.setSliderDown(False)
    slider.sliderReleased.emit()
    qtbot.waitUntil(lambda: window.plot.preview.data.size == 1, timeout=JOB_TIMEOUT_MS)  # preview point
    window.apply_step()
    wait_idle(qtbot, window)
    assert len(window.plot.points) == 2 and window.tree.topLevelItem(0).childCount() == 1
    assert window.plot.preview.data.size == 0
    current = window.ws.project.get(window.ws.current_id)
    assert current.params["sparsity"] == 0.3 and current.metrics is not None


def test_clicking_a_plot_point_selects_that_variant(qtbot, window, demo_checkpoint):
    open_demo_model(qtbot, window, demo_checkpoint)
    root_id = window.ws.current_id
    window.form.sliders["sparsity"].setValue(900)
    window.apply_step()
    wait_idle(qtbot, window)
    assert window.ws.current_id != root_id
    spot = next(s for s in window.plot.scatter.points() if s.data() == root_id)
    window.plot.scatter.sigClicked.emit(window.plot.scatter, [spot], None)
    assert window.ws.current_id == root_id
    assert window.tree.currentItem().data(0, Qt.ItemDataRole.UserRole) == root_id
    assert window.layers.summary.text().count("(<b>61,706</b> non-zero")


def test_cancel_leaves_no_partial_variant(qtbot, window, demo_checkpoint, monkeypatch):
    import time

    import workbench.workspace as workspace_module

    open_demo_model(qtbot, window, demo_checkpoint)
    real_measure = workspace_module.measure

    def slow_measure(*args, task=None, **kwargs):
        for i in range(600):  # a long measurement that honours cancel
            task.report(i / 600, "measuring slowly")
            time.sleep(0.01)
        return real_measure(*args, task=task, **kwargs)

    monkeypatch.setattr(workspace_module, "measure", slow_measure)
    window.form.sliders["sparsity"].setValue(500)
    window.preview_timer.stop()
    window.apply_step()
    qtbot.waitUntil(lambda: window.cancel_button.isVisible(), timeout=5000)
    with qtbot.waitSignal(window.jobs.cancelled, timeout=JOB_TIMEOUT_MS):
        window.cancel_button.click()
    assert len(window.ws.variants()) == 1 and "Cancelled" in window.status_text.text()


def test_export_writes_an_onnx_that_onnxruntime_loads(qtbot, window, demo_checkpoint, tmp_path):
    import json

    import onnxruntime as ort

    open_demo_model(qtbot, window, demo_checkpoint)
    window.export_to(tmp_path / "exports")
    wait_idle(qtbot, window)
    bundles = [p for p in (tmp_path / "exports").iterdir() if not p.name.startswith(".")]
    assert len(bundles) == 1
    session = ort.InferenceSession(str(bundles[0] / "model.onnx"), providers=["CPUExecutionProvider"])
    assert session.get_inputs()[0].name == "input"
    manifest = json.loads((bundles[0] / "manifest.json").read_text())
    assert manifest["device"]["id"] == "x86-server" and manifest["metrics"]["artifact_bytes"] > 0
    assert manifest["verification"]["passed"]
    assert "Exported and verified" in window.notice.message.text()
    assert window.notice.action_button.text() == "Open folder"


def test_device_picker_shows_budgets_estimates_and_refusals(qtbot, window, demo_checkpoint):
    open_demo_model(qtbot, window, demo_checkpoint)
    panel = window.device_panel
    panel.combo.setCurrentIndex(panel.combo.findData("cortex-m7"))
    assert "Estimated on" in panel.estimates.text() and "not measured" in panel.estimates.text()
    assert "TensorFlow Lite Micro" in panel.estimates.text()
    # full int8 calibrates on the calibration split: refused until the project has data
    assert not panel.export_button.isEnabled() and "calibration split" in panel.messages.text()
    panel.combo.setCurrentIndex(panel.combo.findData("coral-edgetpu"))
    assert "int8, LiteRT (.tflite)" in panel.estimates.text() and "calibration split" in panel.messages.text()
    panel.combo.setCurrentIndex(panel.combo.findData("phone"))
    assert panel.export_button.isEnabled() and "ExecuTorch" in panel.estimates.text()
    panel.profiles["x86-server"] = panel.profiles["x86-server"].model_copy(update={"storage_bytes": 1000})
    panel.combo.setCurrentIndex(panel.combo.findData("x86-server"))
    assert not panel.export_button.isEnabled() and "storage" in panel.messages.text()


def test_layer_override_from_the_table_reaches_the_plugin(qtbot, window, demo_checkpoint):
    open_demo_model(qtbot, window, demo_checkpoint)
    first_conv = window.layers.model.layers[0]
    window.layers.overrideRequested.emit(first_conv.weight_names[0], 0.0)
    window.form.sliders["sparsity"].setValue(900)
    window.preview_timer.stop()
    window.apply_step()
    wait_idle(qtbot, window)
    assert window.ws.analysis().layers[0].sparsity == 0.0
    assert window.ws.project.get(window.ws.current_id).params["overrides"] == {first_conv.weight_names[0]: 0.0}


def test_window_state_is_remembered(qtbot, tmp_path, monkeypatch):
    monkeypatch.setenv("WORKBENCH_PROJECTS_DIR", str(tmp_path / "projects"))
    first = MainWindow(use_webengine=False)
    qtbot.addWidget(first)
    first.show()
    first.resize(1300, 800)
    first.splitter.setSizes([200, 700, 380])
    qtbot.wait(50)
    saved_size, saved_left = first.size(), first.splitter.sizes()[0]
    first.close()
    second = MainWindow(use_webengine=False)
    qtbot.addWidget(second)
    second.show()
    qtbot.wait(50)
    assert second.size() == saved_size
    assert abs(second.splitter.sizes()[0] - saved_left) <= 2
    second.close()


@pytest.mark.skipif(not HAVE_WEBENGINE, reason="QtWebEngine is not installed")
def test_graph_tab_embeds_netron_and_finds_the_selected_layer(qtbot, demo_onnx):
    from workbench.ui.graph_view import GraphView

    view = GraphView(use_webengine=True)
    qtbot.addWidget(view)
    view.resize(900, 700)
    view.show()
    view.show_model(demo_onnx.read_bytes())
    assert view.web is not None and view.url.startswith("http://127.0.0.1:")
    found: list[bool] = []
    view.found.connect(lambda _name, ok: found.append(ok))

    def netron_found_conv() -> bool:
        if not found or not found[-1]:
            view.find_layer("/0/0.0/Conv")
        return bool(found and found[-1])

    qtbot.waitUntil(netron_found_conv, timeout=60_000)
    # nodes take the colours of a layer figure, and get netron's own back
    from workbench.layer_colors import LayerValue

    view.color_nodes([LayerValue("/0/0.0/Conv", 1.0, "unsupported"), LayerValue("/1/1.1/Gemm", 0.0, "runs")])
    qtbot.waitUntil(lambda: view.coloured == 2, timeout=60_000)
    view.color_nodes([])
    qtbot.waitUntil(lambda: view.coloured == 0, timeout=10_000)
    view.stop()


def test_selecting_a_layer_shows_its_histogram_and_latency_share(qtbot, window, demo_checkpoint):
    open_demo_model(qtbot, window, demo_checkpoint)
    window.layers.select_row(0)
    text = window.details.title.text()
    assert "150 weights" in text and "of kernel time" in text
    assert window.details.bars.opts["height"].sum() == 150


def test_first_start_loads_the_demo_and_later_starts_offer_to_reopen(qtbot, window, demo_checkpoint, monkeypatch):
    from workbench.ui.app import start

    demo_requests = []
    monkeypatch.setattr(window, "open_demo", lambda: demo_requests.append(True))
    start(window, [])
    assert demo_requests == [True]
    open_demo_model(qtbot, window, demo_checkpoint)  # now a project is in the recent list
    start(window, [])
    assert window.notice.isVisible() and window.notice.action_button.text() == "Reopen"
    assert demo_requests == [True]


def test_plot_tooltip_shows_the_recipe_and_numbers(qtbot, window, demo_checkpoint):
    open_demo_model(qtbot, window, demo_checkpoint)
    window.form.sliders["sparsity"].setValue(600)
    window.preview_timer.stop()
    window.apply_step()
    wait_idle(qtbot, window)
    variant_id = window.ws.current_id
    x, y = window.plot.points[variant_id]
    tip = window.plot._tip(x=x, y=y, data=variant_id)
    assert "magnitude_prune" in tip and "'sparsity': 0.6" in tip and "measured on this host" in tip
    spots = {s.data(): s for s in window.plot.scatter.points()}
    assert variant_id in window.plot.pareto_ids() or window.ws.project.root.id in window.plot.pareto_ids()
    assert spots[variant_id].pos().x() == pytest.approx(x)


def test_sensitivity_tab_sweeps_plots_and_fills_overrides(qtbot, window, demo_checkpoint, monkeypatch):
    from workbench.datasets import mnist_sample_ref

    monkeypatch.setattr(
        window.ws,
        "dataset",
        lambda: __import__("workbench.datasets", fromlist=["x"]).load_dataset(mnist_sample_ref("test", limit=100)),
    )
    open_demo_model(qtbot, window, demo_checkpoint)
    window.tabs.setCurrentWidget(window.sensitivity)
    window.sensitivity.run_button.click()
    wait_idle(qtbot, window)
    assert len(window.sensitivity.plot.listDataItems()) == 5
    assert window.ws.project.sensitivity(window.ws.current_id) is not None
    window.sensitivity.use_button.click()
    assert window.plugin_combo.currentData() == "magnitude_prune"
    assert set(window.form.values()["overrides"]) == {
        "0.0.weight",
        "0.3.weight",
        "1.1.weight",
        "1.3.weight",
        "1.5.weight",
    }


def test_distillation_streams_its_loss_curve(qtbot, window, demo_checkpoint):
    open_demo_model(qtbot, window, demo_checkpoint)
    window.ws.project.set_dataset(mnist_sample_ref("evaluation", limit=200))  # distillation trains on its train split
    window.plugin_combo.setCurrentIndex(window.plugin_combo.findData("distill"))
    window.preview_timer.stop()
    window.apply_step()
    wait_idle(qtbot, window)
    assert not window.notice.isVisible(), window.notice.message.text()
    assert window.loss_plot.isVisible() and len(window.loss_values) == 8
    assert window.ws.project.get(window.ws.current_id).plugin_id == "distill"


def test_a_previewed_step_says_what_it_wants_known(qtbot, window, demo_checkpoint):
    open_demo_model(qtbot, window, demo_checkpoint)
    window.plugin_combo.setCurrentIndex(window.plugin_combo.findData("weight_sharing"))
    window.preview_timer.stop()
    window._evaluate_preview()
    wait_idle(qtbot, window)
    assert "Preview note: raised opset 17 → 21" in window.status_text.text()  # packed INT4 indices need opset 21


def test_one_click_applies_mixed_precision_for_the_sweeps_budget(qtbot, window, demo_checkpoint):
    from workbench.sensitivity import LayerSensitivity, SensitivityReport

    window.open_demo()  # with the MNIST sample: the proposal calibrates on its calibration split
    qtbot.waitUntil(lambda: window.ws.project is not None and not window.jobs.busy, timeout=JOB_TIMEOUT_MS)
    layers = [
        LayerSensitivity(weight=w, node=n, params=1, sparsity_quality={}, int8_quality=q8, int4_quality=q4)
        for w, n, q8, q4 in [("0.0.weight", "/0/0.0/Conv", 0.90, 0.80), ("1.1.weight", "/1/1.1/Gemm", 0.96, 0.955)]
    ]
    window.sensitivity.set_report(
        SensitivityReport(metric="accuracy", baseline_quality=0.96, samples=100, layers=layers)
    )
    assert "/1/1.1/Gemm int4" in window.sensitivity.proposal.text()  # each layer alone, as swept
    window.sensitivity.budget.setValue(1.5)
    window.sensitivity.mixed_button.click()
    wait_idle(qtbot, window)
    current = window.ws.project.get(window.ws.current_id)
    assert current.plugin_id == "mixed_precision", window.notice.message.text()
    assert current.params["budget"] == 1.5 and any("proposed for a 1.5 pt budget" in n for n in current.notes)
    assert current.metrics.artifact_bytes < 0.4 * window.ws.project.root.metrics.artifact_bytes


def test_a_rate_spanning_decades_keeps_its_default_and_moves_on_a_log_scale(qtbot):
    from workbench.ui.params_form import ParamsForm

    from workbench.plugin import discover_plugins

    form = ParamsForm(discover_plugins().get("magnitude_prune").schema())
    qtbot.addWidget(form)
    assert form.values()["fine_tune_lr"] == 5e-4  # a linear 1e-3 step would snap it to the minimum
    slider = form.sliders["fine_tune_lr"]
    slider.setValue(slider.maximum())
    assert form.values()["fine_tune_lr"] == pytest.approx(0.1)
    slider.setValue(slider.maximum() // 2)
    assert 5e-4 < form.values()["fine_tune_lr"] < 2e-3  # the geometric middle of 1e-5..0.1


def test_attach_data_previews_remeasures_and_offers_every_metric(
    qtbot, window, tmp_path, monkeypatch, fixed_batch_mlp_onnx
):
    model_path = fixed_batch_mlp_onnx
    drop(window, model_path)
    qtbot.waitUntil(lambda: window.ws.project is not None and not window.jobs.busy, timeout=JOB_TIMEOUT_MS)
    assert window.data_banner.isVisible() and "random inputs" in window.data_banner.text()
    assert window.ws.project.root.metrics.accuracy is None

    rng = np.random.default_rng(3)
    x = rng.standard_normal((150, 16)).astype(np.float32)
    session = make_session(model_path.read_bytes())  # the model's own predictions, batch 1
    predicted = np.concatenate([session.run(None, {"x": x[i : i + 1]})[0] for i in range(len(x))]).argmax(axis=1)
    labels = predicted.copy()
    labels[::4] = (labels[::4] + 1) % 10  # every fourth label wrong: a known accuracy
    data = tmp_path / "data.npz"
    np.savez(data, x=x, y=labels)
    evaluation = split_indices(len(x), "evaluation")
    expected = float(np.mean(predicted[evaluation] == labels[evaluation]))

    seen = {}

    def fill_and_accept(dialog: DataDialog) -> int:
        dialog.show()  # shown and painted as exec() would (a child shadowing a QWidget method crashed here)
        dialog.path.setText(str(data))
        dialog._apply_preset("raw values")
        qtbot.waitUntil(lambda: not dialog.jobs.busy, timeout=JOB_TIMEOUT_MS)
        seen["preview"] = dialog.preview_grid.count()
        seen["kind"] = dialog.kind.text()
        seen["problem"] = dialog.problem.text()
        seen["painted"] = not dialog.grab().isNull()
        dialog._accept()
        return 1

    monkeypatch.setattr(DataDialog, "exec", fill_and_accept)
    window.attach_action.trigger()
    wait_idle(qtbot, window)
    assert seen["problem"] == "" and seen["painted"]
    assert seen["preview"] == 8 and "npz" in seen["kind"]
    root = window.ws.project.root
    assert root.metrics.metric == "top1" and root.metrics.accuracy == pytest.approx(expected)
    assert root.metrics.samples == len(evaluation)
    assert not window.data_banner.isVisible()

    matrix = np.asarray(root.metrics.confusion)
    assert int(np.trace(matrix)) == round(expected * len(evaluation))
    assert "on the diagonal" in window.confusion.title.text()

    choices = [window.plot.y_metric.itemData(i) for i in range(window.plot.y_metric.count())]
    assert {"top1", "top5", "agreement", "cosine:y", "snr:y"} <= set(choices)
    window.plot.y_metric.setCurrentIndex(choices.index("top5"))
    assert window.plot.plot.getAxis("left").labelText == "top-5 accuracy %"
    assert window.plot.points[root.id][1] == pytest.approx(root.metrics.scores["top5"] * 100)


def test_the_data_dialog_proposes_an_audio_front_end_shaped_like_the_model(qtbot, tmp_path):
    import wave

    from onnx import TensorProto, helper, numpy_helper, save

    from workbench.loading import load_model

    weight = numpy_helper.from_array(np.ones((98 * 40, 2), np.float32), "w")
    graph = helper.make_graph(
        [helper.make_node("Flatten", ["x"], ["flat"]), helper.make_node("MatMul", ["flat", "w"], ["y"])],
        "kws",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, 98, 40])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2])],
        [weight],
    )
    save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), tmp_path / "kws.onnx")
    model = load_model(tmp_path / "kws.onnx")
    t = np.arange(16000) / 16000
    for word, hz in (("yes", 300.0), ("no", 900.0)):
        (tmp_path / "speech" / word).mkdir(parents=True)
        for index in range(5):
            with wave.open(str(tmp_path / "speech" / word / f"clip{index}.wav"), "wb") as clip:
                clip.setnchannels(1)
                clip.setsampwidth(2)
                clip.setframerate(16000)
                clip.writeframes((8000 * np.sin(2 * np.pi * (hz + 20 * index) * t)).astype("<i2").tobytes())

    dialog = DataDialog(model, path=tmp_path / "speech")
    qtbot.addWidget(dialog)
    dialog.show()
    qtbot.waitUntil(lambda: not dialog.jobs.busy and dialog.preview_grid.count() > 0, timeout=JOB_TIMEOUT_MS)
    assert not dialog.audio_box.isHidden()
    assert dialog.preset.currentText() == "raw values" and dialog.resize_edit.text() == ""  # features, not images
    front_end = dialog.dataset_ref().front_end
    assert (front_end.kind, front_end.feature_shape()) == ("log-mel", (98, 40))
    assert "[98, 40] per clip" in dialog.frames_label.text()

    dialog.audio_kind.setCurrentText("mfcc")
    dialog.mfcc.setValue(10)
    front_end = dialog.dataset_ref().front_end
    assert (front_end.kind, front_end.feature_shape(), front_end.n_mels) == ("mfcc", (98, 10), 40)
    dialog.window_samples.setValue(20000)  # longer than the clip: refused as one line, nothing attached
    with pytest.raises(WorkbenchError, match="the audio front end is not valid"):
        dialog.settings()


def test_the_layer_table_says_where_each_layer_runs_and_the_memory_tab_shows_the_tflm_arena(
    qtbot, window, demo_checkpoint, tmp_path
):
    import json

    from workbench.ui.layer_table import TARGET

    open_demo_model(qtbot, window, demo_checkpoint)
    panel = window.device_panel
    # an Edge TPU whose table lacks fully-connected layers: the first Gemm and everything after it fall back
    coral = panel.profiles["coral-edgetpu"]
    panel.profiles["coral-edgetpu"] = coral.model_copy(
        update={"target_ops": [op for op in coral.target_ops if op != "FULLY_CONNECTED"]}
    )
    panel.combo.setCurrentIndex(panel.combo.findData("coral-edgetpu"))
    model = window.layers.model
    column = {model.layers[i].op_type + str(i): model.index(i, TARGET).data() for i in range(len(model.layers))}
    first_gemm = next(i for i, layer in enumerate(model.layers) if layer.op_type == "Gemm")
    assert all(column[model.layers[i].op_type + str(i)] == "runs on the target" for i in range(first_gemm))
    assert all(column[model.layers[i].op_type + str(i)] == "falls back" for i in range(first_gemm, len(model.layers)))
    assert "fall back to the CPU" in panel.messages.text()
    # full int8 calibrates on the calibration split: without data the export is refused before it starts
    panel.combo.setCurrentIndex(panel.combo.findData("cortex-m7"))
    assert not panel.export_button.isEnabled() and "calibration split" in panel.messages.text()
    from workbench.datasets import mnist_sample_ref

    window.ws.project.set_dataset(mnist_sample_ref("evaluation", limit=100))
    panel.combo.setCurrentIndex(panel.combo.findData("x86-server"))
    panel.combo.setCurrentIndex(panel.combo.findData("cortex-m7"))
    assert panel.export_button.isEnabled() and model.index(0, TARGET).data() == "runs on the target"
    # a microcontroller export shows its measured memory timeline
    window.export_to(tmp_path / "exports")
    wait_idle(qtbot, window)
    assert window.last_bundle is not None, window.notice.message.text()
    assert window.tabs.currentWidget() is window.memory and window.memory.peak is not None
    tflm = json.loads((window.last_bundle / "manifest.json").read_text())["format_report"]["tflm"]
    assert window.memory.peak["live_bytes"] <= tflm["arena_head_bytes"] and "measured by TFLM" in (
        window.memory.title.text()
    )


def test_auto_tune_streams_trials_to_the_panel_and_the_plot_then_exports_a_report(
    qtbot, window, demo_checkpoint, tmp_path
):
    from workbench.tuning.study import TuneSettings
    from workbench.tuning.trial import Goal

    open_demo_model(qtbot, window, demo_checkpoint)
    panel = window.tune_panel
    panel.set_device("phone")
    settings = panel.settings()
    assert settings.goal.device == "phone" and "magnitude_prune" in settings.goal.plugins
    window.start_tuning(
        TuneSettings(goal=Goal(device="phone", max_drop=1.0, plugins=["quantize_int8"]), trials=2, sampler="random")
    )
    assert panel.stop_button.isEnabled() and not panel.start_button.isEnabled()
    qtbot.waitUntil(lambda: panel.table.rowCount() >= 1, timeout=JOB_TIMEOUT_MS)  # streamed while it runs
    wait_idle(qtbot, window)
    assert panel.table.rowCount() == 2 and panel.start_button.isEnabled()
    assert "Study " in panel.status.text() and "Best meeting the goal" in panel.best.text()
    assert window.plot.best.data.size == 1 and len(window.plot.points) >= 2
    panel.select_best.click()
    assert window.ws.current_id == panel._best_id
    window.export_report(tmp_path / "report.html")
    wait_idle(qtbot, window)
    assert "Auto-tune studies" in (tmp_path / "report.html").read_text()
