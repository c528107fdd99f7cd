"""Data ▸ Attach evaluation data: where the data is, how it is prepared and scored, what the model's
other inputs hold, and a preview of a few samples with their labels before anything is measured."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtGui import QImage, QPixmap
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QScrollArea,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)
from workbench.ui.jobs import JobRunner

from workbench.data.audio_features import AudioFrontEnd
from workbench.datasets import DatasetRef, Preprocessing, dataset_ref_for_path, split_rule
from workbench.errors import WorkbenchError
from workbench.feeds import InputSpec, parse_constant
from workbench.metrics import MetricSettings, metric_registry
from workbench.model import Model

PREVIEW_COUNT = 8
THUMBNAIL = 96
PRESETS: dict[str, dict[str, Any]] = {
    "0..1": {"scale": 1 / 255, "mean": (), "std": (), "grayscale": False},
    "−1..1": {"scale": 1 / 255, "mean": (0.5,), "std": (0.5,), "grayscale": False},
    "ImageNet mean/std": {
        "scale": 1 / 255,
        "mean": (0.485, 0.456, 0.406),
        "std": (0.229, 0.224, 0.225),
        "grayscale": False,
    },
    "grayscale 0..1": {"scale": 1 / 255, "mean": (), "std": (), "grayscale": True},
    "raw values": {"scale": 1.0, "mean": (), "std": (), "grayscale": False},
}


def proposed_preprocessing(model: Model) -> tuple[str, Preprocessing]:
    """A starting point from the model's first input shape and metadata: its layout, size and channels
    (one channel: grayscale), and the normalization its metadata names, else ImageNet's for colour images."""
    shapes = model.concrete_shapes()
    shape = next(iter(shapes.values()), ())
    metadata = {p.key.lower(): p.value for p in model.onnx_proto.metadata_props} if model.onnx_proto else {}
    if len(shape) != 4:
        return "raw values", Preprocessing(scale=1.0)
    layout = "NHWC" if shape[-1] in (1, 3, 4) and shape[1] not in (1, 3, 4) else "NCHW"
    channels = shape[-1] if layout == "NHWC" else shape[1]
    height, width = (shape[1], shape[2]) if layout == "NHWC" else (shape[2], shape[3])
    preset = "grayscale 0..1" if channels == 1 else "ImageNet mean/std"
    values = dict(PRESETS[preset])
    for key in ("mean", "std"):
        for name in (key, f"image_{key}", f"norm_{key}"):
            if name in metadata:
                try:
                    values[key] = tuple(float(v) for v in metadata[name].replace("[", "").replace("]", "").split(","))
                    preset = "custom (from the model's metadata)"
                except ValueError:
                    pass
    return preset, Preprocessing(resize=(height, width), layout=layout, **values)


def proposed_front_end(model: Model) -> AudioFrontEnd:
    """Audio features shaped like the model's first input: [1, 1, frames, features] or [1, frames,
    features] (MFCC when there are few features, log-mel otherwise; the hop gives the frame count),
    or [1, samples] for a model that takes the waveform."""
    shape = next(iter(model.concrete_shapes().values()), ())
    if len(shape) == 2:
        return AudioFrontEnd(kind="waveform", clip_seconds=shape[1] / 16000)
    if len(shape) not in (3, 4):
        return AudioFrontEnd()
    frames, features = (shape[2], shape[3]) if len(shape) == 4 else (shape[1], shape[2])
    if frames < 2 or features < 1:
        return AudioFrontEnd()
    window = 480
    hop = max(1, (16000 - window) // (frames - 1))
    kind = "mfcc" if features <= 13 else "log-mel"
    try:
        return AudioFrontEnd(
            kind=kind,
            n_mels=max(40, features) if kind == "mfcc" else features,
            n_mfcc=features if kind == "mfcc" else 10,
            hop_length=hop,
            channel_axis=len(shape) == 4,
        )
    except ValueError:
        return AudioFrontEnd()


class DataDialog(QDialog):
    def __init__(
        self,
        model: Model,
        *,
        path: str | Path | None = None,
        current: DatasetRef | None = None,
        scoring: MetricSettings | None = None,
        input_spec: InputSpec | None = None,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle("Attach evaluation data")
        self.model = model
        self.jobs = JobRunner(self)
        self.jobs.failed.connect(lambda message, _details: self._show_problem(message))
        self.path = QLineEdit(str(path or (current.path if current is not None and current.has_splits else "")))
        self.path.setPlaceholderText("a data folder or file, or mnist-sample")
        self.path.editingFinished.connect(self.refresh_preview)
        file_button, folder_button = QPushButton("File…"), QPushButton("Folder…")
        file_button.clicked.connect(self._choose_file)
        folder_button.clicked.connect(self._choose_folder)
        self.kind = QLabel()
        self.kind.setWordWrap(True)

        self.preset = QComboBox()
        for name in PRESETS:
            self.preset.addItem(name)
        self.preset.addItem("custom")
        self.resize_edit, self.scale_edit = QLineEdit(), QLineEdit()
        self.mean_edit, self.std_edit = QLineEdit(), QLineEdit()
        self.grayscale = QCheckBox("one channel")
        self.layout_combo = QComboBox()
        self.layout_combo.addItems(["NCHW", "NHWC"])
        self.limit = QSpinBox()
        self.limit.setRange(0, 10_000_000)
        self.limit.setSpecialValueText("all")
        self.preset.activated.connect(lambda _i: self._apply_preset(self.preset.currentText()))
        for edit in (self.scale_edit, self.mean_edit, self.std_edit):
            edit.textChanged.connect(self._name_preset)
        self.grayscale.toggled.connect(self._name_preset)

        self.metric_combo = QComboBox()
        self.metric_combo.addItem("chosen from the output and labels", None)
        for metric in sorted(metric_registry().values(), key=lambda m: -m.priority):
            self.metric_combo.addItem(f"{metric.id}: {metric.label}", metric.id)
        self.metric_combo.addItem("fidelity only (labels not used)", "fidelity")
        self.charset = QLineEdit()
        self.charset.setPlaceholderText("CTC: a file with one character per line (or the model's metadata)")
        self.class_names = QLineEdit()
        self.class_names.setPlaceholderText("optional: cat, dog, … (else the data's folder names)")
        self.constants = QLineEdit()
        self.constants.setPlaceholderText("e.g. sr=16000; state=0:float32:2x1x128")
        self.state = QLineEdit()
        self.state.setPlaceholderText("e.g. state=stateN (the output that feeds the input at the next frame)")
        self.frame = QSpinBox()
        self.frame.setRange(0, 10_000_000)
        self.frame.setSpecialValueText("the input's size")
        self.hop = QSpinBox()
        self.hop.setRange(0, 10_000_000)
        self.hop.setSpecialValueText("the frame")
        self.hop.setToolTip("samples between frame starts; shorter than the frame repeats the last samples as context")

        self._base_front_end = AudioFrontEnd()  # fields the form does not show (sample rate, f_min…)
        self.audio_kind = QComboBox()
        self.audio_kind.addItems(["log-mel", "mfcc", "waveform"])
        self.mels, self.mfcc = QSpinBox(), QSpinBox()
        self.mels.setRange(1, 512)
        self.mfcc.setRange(1, 512)
        self.window_samples, self.hop_samples = QSpinBox(), QSpinBox()
        self.window_samples.setSuffix(" samples")
        self.hop_samples.setSuffix(" samples")
        self.window_samples.setRange(16, 65536)
        self.hop_samples.setRange(1, 65536)
        self.clip_seconds = QLineEdit()
        self.frames_label = QLabel()
        for spin in (self.mels, self.mfcc, self.window_samples, self.hop_samples):
            spin.valueChanged.connect(self._show_frames)
        self.audio_kind.currentTextChanged.connect(self._show_frames)
        self.clip_seconds.textChanged.connect(self._show_frames)

        self.preview_grid = QGridLayout()
        preview_host = QWidget()
        preview_host.setLayout(self.preview_grid)
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setWidget(preview_host)
        scroll.setMinimumHeight(2 * THUMBNAIL + 80)
        self.problem = QLabel()
        self.problem.setWordWrap(True)
        self.problem.setStyleSheet("color: #c62828")
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Cancel)
        self.attach_button = self.buttons.addButton("Attach and re-measure", QDialogButtonBox.ButtonRole.AcceptRole)
        self.buttons.accepted.connect(self._accept)
        self.buttons.rejected.connect(self.reject)

        source_row = QHBoxLayout()
        source_row.addWidget(self.path, 1)
        source_row.addWidget(file_button)
        source_row.addWidget(folder_button)
        prep_box = _form_box(
            "Preprocessing",
            ("Preset", self.preset),
            ("Resize (H, W)", self.resize_edit),
            ("Grayscale", self.grayscale),
            ("Scale", self.scale_edit),
            ("Mean", self.mean_edit),
            ("Std", self.std_edit),
            ("Layout", self.layout_combo),
            ("Limit (evaluation samples)", self.limit),
        )
        score_box = _form_box(
            "Scoring", ("Metric", self.metric_combo), ("Charset", self.charset), ("Class names", self.class_names)
        )
        inputs_box = _form_box(
            "Other inputs (the project's input spec)",
            ("Constants", self.constants),
            ("State", self.state),
            ("Frame (streams)", self.frame),
            ("Hop", self.hop),
        )
        self.audio_box = _form_box(
            "Audio front end (stored with the project, shipped in the bundle)",
            ("Features", self.audio_kind),
            ("Mel bands", self.mels),
            ("MFCC coefficients", self.mfcc),
            ("Window", self.window_samples),
            ("Hop", self.hop_samples),
            ("Clip (s)", self.clip_seconds),
            ("Model input", self.frames_label),
        )
        self.audio_box.hide()
        left = QVBoxLayout()
        left.addWidget(prep_box)
        left.addWidget(self.audio_box)
        columns = QHBoxLayout()
        columns.addLayout(left, 1)
        right = QVBoxLayout()
        right.addWidget(score_box)
        right.addWidget(inputs_box)
        columns.addLayout(right, 1)
        layout = QVBoxLayout(self)
        layout.addLayout(source_row)
        layout.addWidget(self.kind)
        layout.addLayout(columns)
        layout.addWidget(QLabel("<b>Preview</b> (a few samples of the evaluation split, with their labels)"))
        layout.addWidget(scroll, 1)
        layout.addWidget(self.problem)
        layout.addWidget(self.buttons)
        self.resize(980, 760)
        self._fill(current, scoring, input_spec)
        if self.path.text():
            self.refresh_preview()

    # --- filling and reading the form ----------------------------------------------------------------
    def _fill(self, current: DatasetRef | None, scoring: MetricSettings | None, spec: InputSpec | None) -> None:
        has_front_end = current is not None and current.front_end is not None
        self._set_front_end(current.front_end if has_front_end else proposed_front_end(self.model))
        if current is not None and current.has_splits:
            self._set_preprocessing(current.preprocessing)
            self.preset.setCurrentText("custom")
            self.limit.setValue(current.limit or 0)
        else:
            preset, proposed = proposed_preprocessing(self.model)
            self._set_preprocessing(proposed)
            if self.preset.findText(preset) < 0:
                self.preset.addItem(preset)
            self.preset.setCurrentText(preset)
        if scoring is not None:
            self.metric_combo.setCurrentIndex(max(0, self.metric_combo.findData(scoring.metric)))
            if scoring.charset_source and Path(scoring.charset_source).is_file():
                self.charset.setText(scoring.charset_source)
            self.class_names.setText(", ".join(scoring.class_names))
        if spec is not None:
            self.constants.setText(
                "; ".join(
                    f"{name}={c.value:g}:{c.dtype}:{'x'.join(map(str, c.shape))}" for name, c in spec.constants.items()
                )
            )
            self.state.setText("; ".join(f"{i}={o}" for i, o in spec.state.items()))
            self.frame.setValue(spec.frame or 0)
            self.hop.setValue(spec.hop or 0)

    def _set_front_end(self, front_end: AudioFrontEnd) -> None:
        self._base_front_end = front_end
        self.audio_kind.setCurrentText(front_end.kind)
        self.mels.setValue(front_end.n_mels)
        self.mfcc.setValue(front_end.n_mfcc)
        self.window_samples.setValue(front_end.win_length)
        self.hop_samples.setValue(front_end.hop_length)
        self.clip_seconds.setText(f"{front_end.clip_seconds:g}")

    def front_end(self) -> AudioFrontEnd:
        window = self.window_samples.value()
        try:
            updates = {
                "kind": self.audio_kind.currentText(),
                "n_mels": self.mels.value(),
                "n_mfcc": self.mfcc.value(),
                "win_length": window,
                "hop_length": self.hop_samples.value(),
                "n_fft": max(self._base_front_end.n_fft, 1 << (window - 1).bit_length()),  # a power of two
                "clip_seconds": float(self.clip_seconds.text()),
            }
            return AudioFrontEnd(**(self._base_front_end.model_dump() | updates))
        except (ValueError, TypeError) as exc:
            raise WorkbenchError(f"the audio front end is not valid ({str(exc).splitlines()[-1][:160]})") from None

    def _show_frames(self) -> None:
        try:
            front_end = self.front_end()
        except WorkbenchError as exc:
            self.frames_label.setText(str(exc))
            return
        model = list(next(iter(self.model.concrete_shapes().values()), ()))
        self.frames_label.setText(f"features {list(front_end.feature_shape())} per clip; the model takes {model}")

    def _set_preprocessing(self, prep: Preprocessing) -> None:
        self.resize_edit.setText(f"{prep.resize[0]}, {prep.resize[1]}" if prep.resize else "")
        self.grayscale.setChecked(prep.grayscale)
        self.scale_edit.setText("" if prep.scale is None else f"{prep.scale:.6g}")
        self.mean_edit.setText(", ".join(f"{v:g}" for v in prep.mean))
        self.std_edit.setText(", ".join(f"{v:g}" for v in prep.std))
        self.layout_combo.setCurrentText(prep.layout)

    def _name_preset(self) -> None:
        """The preset the values are, or "custom" once they match none (the label never claims a preset
        whose values were edited)."""
        try:
            prep = self.preprocessing()
        except WorkbenchError:
            return
        for name, values in PRESETS.items():
            scale = values["scale"]
            same_scale = prep.scale is not None and abs(prep.scale - scale) <= 1e-6 * scale
            if same_scale and all(getattr(prep, key) == values[key] for key in ("mean", "std", "grayscale")):
                self.preset.setCurrentText(name)
                return
        if not self.preset.currentText().startswith("custom"):
            self.preset.setCurrentText("custom")

    def _apply_preset(self, name: str) -> None:
        if name not in PRESETS:
            return
        current = self.preprocessing()
        self._set_preprocessing(current.model_copy(update=PRESETS[name]))
        self.refresh_preview()

    def preprocessing(self) -> Preprocessing:
        def numbers(text: str) -> tuple[float, ...]:
            return tuple(float(v) for v in text.replace(";", ",").split(",") if v.strip())

        try:
            resize = tuple(int(v) for v in numbers(self.resize_edit.text()))
            return Preprocessing(
                resize=resize if len(resize) == 2 else None,
                grayscale=self.grayscale.isChecked(),
                scale=float(self.scale_edit.text()) if self.scale_edit.text().strip() else None,
                mean=numbers(self.mean_edit.text()),
                std=numbers(self.std_edit.text()),
                layout=self.layout_combo.currentText(),
            )
        except ValueError as exc:
            raise WorkbenchError(f"the preprocessing is not valid ({str(exc).splitlines()[0][:120]})") from None

    def dataset_ref(self) -> DatasetRef:
        text = self.path.text().strip()
        if not text:
            raise WorkbenchError("choose a data folder or file first")
        ref = dataset_ref_for_path(text, self.preprocessing())
        if ref.kind != "builtin":
            ref = ref.model_copy(update={"preprocessing": self.preprocessing()})
        if ref.front_end is not None:  # audio: clips become features as the form says
            ref = ref.model_copy(update={"front_end": self.front_end()})
        return ref.model_copy(update={"limit": self.limit.value() or None})

    def scoring(self) -> MetricSettings:
        charset, source = (), None
        if self.charset.text().strip():
            path = Path(self.charset.text().strip())
            try:
                charset = tuple(path.read_text(encoding="utf-8").splitlines())
            except (OSError, UnicodeDecodeError) as exc:
                raise WorkbenchError(f"{path}: cannot read the charset ({exc})") from None
            source = str(path)
        elif self.model.onnx_proto is not None:
            carried = {p.key: p.value for p in self.model.onnx_proto.metadata_props}.get("character")
            if carried:
                charset, source = tuple(carried.splitlines()), "the model's 'character' metadata"
        names = tuple(n.strip() for n in self.class_names.text().split(",") if n.strip())
        return MetricSettings(
            metric=self.metric_combo.currentData(), charset=charset, charset_source=source, class_names=names
        )

    def input_spec(self) -> InputSpec | None:
        constants = dict(
            parse_constant(part, self.model.inputs) for part in self.constants.text().split(";") if part.strip()
        )
        state = {}
        for part in filter(str.strip, self.state.text().split(";")):
            name, _, output = part.partition("=")
            if not output.strip():
                raise WorkbenchError(f"state takes INPUT=OUTPUT, got '{part.strip()[:60]}'")
            state[name.strip()] = output.strip()
            constants.setdefault(name.strip(), parse_constant(f"{name.strip()}=0", self.model.inputs)[1])
        if not constants and not state:
            return None
        frame, hop = self.frame.value() or None, self.hop.value() or None
        if hop is not None and (frame is None or hop > frame):
            raise WorkbenchError("the hop needs a frame at least as long (set the frame too)")
        return InputSpec(constants=constants, state=state, frame=frame, hop=hop)

    def settings(self) -> tuple[DatasetRef, MetricSettings, InputSpec | None]:
        return self.dataset_ref(), self.scoring(), self.input_spec()

    # --- preview --------------------------------------------------------------------------------------
    def refresh_preview(self) -> None:
        self.problem.setText("")
        try:
            ref = self.dataset_ref()
        except WorkbenchError as exc:
            self._show_problem(str(exc))
            return
        self.kind.setText(f"<b>{ref.kind}</b> · {split_rule(ref)}")
        audio = ref.front_end is not None
        if audio and self.audio_box.isHidden() and self.resize_edit.text():
            # features are not images: no resize, grayscale or 1/255 scale
            self._set_preprocessing(Preprocessing(scale=1.0, layout=self.layout_combo.currentText()))
            self._name_preset()
        self.audio_box.setVisible(audio)
        self._show_frames()
        evaluation = ref.with_split("evaluation") if ref.has_splits else ref
        self.jobs.run("Reading a preview", lambda _task: _read_preview(evaluation), self.show_preview)

    def show_preview(self, samples: list) -> None:
        while self.preview_grid.count():
            item = self.preview_grid.takeAt(0)
            if item.widget() is not None:
                item.widget().deleteLater()
        per_row = 4
        for index, sample in enumerate(samples):
            self.preview_grid.addWidget(_tile(sample), index // per_row, index % per_row)
        if not samples:
            self.preview_grid.addWidget(QLabel("no samples"), 0, 0)

    def _show_problem(self, message: str) -> None:
        self.problem.setText(message)

    def _choose_file(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Evaluation data file", "", "Data (*.npz *.gz *.bin);;All (*)")
        if path:
            self.path.setText(path)
            self.refresh_preview()

    def _choose_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Evaluation data folder")
        if folder:
            self.path.setText(folder)
            self.refresh_preview()

    def _accept(self) -> None:
        try:
            self.settings()
        except WorkbenchError as exc:
            self._show_problem(str(exc))
            return
        self.jobs.shutdown()
        self.accept()

    def done(self, result: int) -> None:
        self.jobs.shutdown()
        super().done(result)


def _form_box(title: str, *rows: tuple[str, QWidget]) -> QGroupBox:
    box = QGroupBox(title)
    form = QFormLayout(box)
    for label, widget in rows:
        form.addRow(label, widget)
    return box


def _read_preview(ref: DatasetRef) -> list:
    from workbench.datasets import preview_samples

    return preview_samples(ref, PREVIEW_COUNT)


def _tile(sample) -> QWidget:
    """One sample: a thumbnail for an image, waveform over log-mel spectrogram for audio, shape otherwise."""
    tile = QWidget()
    layout = QVBoxLayout(tile)
    layout.setContentsMargins(2, 2, 2, 2)
    if sample.kind == "image":
        picture = QLabel()
        picture.setPixmap(_pixmap(sample.data).scaled(THUMBNAIL, THUMBNAIL, Qt.AspectRatioMode.KeepAspectRatio))
        picture.setAlignment(Qt.AlignmentFlag.AlignCenter)
        layout.addWidget(picture)
    elif sample.kind == "audio":
        layout.addWidget(_waveform(sample.data))
        layout.addWidget(_spectrogram(sample))
    elif np.ndim(sample.data) == 1 and np.size(sample.data) >= 256:  # a signal (raw audio in an .npz)
        layout.addWidget(_waveform(sample.data))
        layout.addWidget(QLabel(f"array [{np.size(sample.data)}]"))
    else:
        layout.addWidget(QLabel(f"array {list(np.shape(sample.data))}"))
    caption = QLabel(sample.label or "(no label)")
    caption.setAlignment(Qt.AlignmentFlag.AlignCenter)
    caption.setWordWrap(True)
    layout.addWidget(caption)
    return tile


def _waveform(data: np.ndarray) -> QWidget:
    wave = pg.PlotWidget(background=None)
    wave.setFixedSize(2 * THUMBNAIL, THUMBNAIL // 2)
    wave.hideAxis("bottom")
    wave.hideAxis("left")
    wave.plot(np.asarray(data, np.float32)[:: max(1, len(data) // 800)], pen="#1e88e5")
    return wave


def _spectrogram(sample) -> QWidget:
    from workbench.data.audio_features import AudioFrontEnd

    front_end = AudioFrontEnd(kind="log-mel", sample_rate=sample.sample_rate or 16000)
    features = front_end.features(np.asarray(sample.data, np.float32)[None])[0]  # [frames, mels]
    view = pg.PlotWidget(background=None)
    view.setFixedSize(2 * THUMBNAIL, THUMBNAIL // 2)
    view.hideAxis("bottom")
    view.hideAxis("left")
    image = pg.ImageItem(features)
    image.setColorMap(pg.colormap.get("viridis"))
    view.addItem(image)
    return view


def _pixmap(data: np.ndarray) -> QPixmap:
    array = np.ascontiguousarray(np.asarray(data, dtype=np.uint8))
    if array.ndim == 2:
        height, width = array.shape
        image = QImage(array.data, width, height, width, QImage.Format.Format_Grayscale8)
    else:
        array = np.ascontiguousarray(array[..., :3])
        height, width = array.shape[:2]
        image = QImage(array.data, width, height, 3 * width, QImage.Format.Format_RGB888)
    return QPixmap.fromImage(image.copy())  # the copy owns its pixels; the array may go
