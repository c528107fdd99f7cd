"""Issue-11 evidence: a real third-party model of each kind, measured end to end through the CLI and
the window.

- **classifier**: PaddleOCR's text-direction MobileNetV3 (rapidocr_onnxruntime), on rendered text lines
  drawn upright and upside down (an image folder): top-1 and the confusion matrix.
- **sequence recognizer**: PaddleOCR's PP-OCRv4 CTC recognizer ([N, T, 6625] output, its charset in the
  model's metadata), on rendered text lines with their strings (a text-lines folder): greedy-decoded
  exact match and character error rate.
- **streaming model with state**: Silero VAD (the silero-vad package; audio, a recurrent state and a
  sample-rate input, its weights inside an If on the rate), on 1 s clips of formant-synthesized speech:
  streamed in frames of 576 samples every 512 (64 of context, as Silero's wrapper feeds it), fidelity
  per output.

For each: `workbench eval`, an int8 weight-only variant made by `workbench apply` and evaluated against
the original (agreement of the metric's predictions, fidelity per output), then `workbench export`
for the x86 server and `workbench verify` of the bundle. Then the window (offscreen) does what a user
does: opens the model file, attaches the same data through Data > Attach evaluation data (the dialog's
preview, preprocessing and input spec), waits for the re-measure job, applies int8 weight-only from the
plugin panel, and prints the figures its metrics panel shows, the plot's metric choices, and PNGs of the
dialog and the window. Nothing is downloaded; settings and projects live under the output folder.

Usage: python bench/task_kinds.py [--out DIR] [--lines 120] [--no-window]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ship_table import render, text_lines

WORKBENCH = [sys.executable, "-m", "workbench.cli"]
INT8_RECIPE = {
    "format": "model-workbench-recipe",
    "version": 1,
    "steps": [{"plugin": "quantize_int8", "params": {"mode": "weight_only", "per_channel": True}}],
}


def package_file(package: str, *parts: str) -> Path | None:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(spec.submodule_search_locations[0]).joinpath(*parts)
    return path if path.is_file() else None


def cli(*args: object) -> str:
    """Run one workbench command as a user would, echo it and its output; stop on failure."""
    command = [str(a) for a in args]
    print(f"\n$ workbench {' '.join(command)}", flush=True)
    started = time.perf_counter()
    done = subprocess.run([*WORKBENCH, *command], capture_output=True, text=True, check=False)
    print(done.stdout.rstrip())
    if done.stderr.strip():
        print(done.stderr.rstrip())
    print(f"({time.perf_counter() - started:.1f} s, exit {done.returncode})")
    if done.returncode != 0:
        raise SystemExit(f"workbench {command[0]} failed")
    return done.stdout


def render_recognition(folder: Path, count: int) -> int:
    """Text lines at 48x320 with their strings in labels.txt (PaddleOCR's rec_gt layout)."""
    import numpy as np
    from PIL import Image, ImageDraw, ImageFont

    rng = np.random.default_rng(1)
    (folder / "images").mkdir(parents=True)
    lines = [text[:24].strip() for text in text_lines(count)]
    with (folder / "labels.txt").open("w", encoding="utf-8") as labels:
        for index, text in enumerate(lines):
            font = ImageFont.load_default(size=int(rng.integers(26, 32)))
            image = Image.new("RGB", (max(320, int(font.getlength(text)) + 16), 48), (255, 255, 255))
            ImageDraw.Draw(image).text((8, 6), text, font=font, fill=(int(rng.integers(0, 60)),) * 3)
            image.resize((320, 48), Image.Resampling.BILINEAR).save(folder / "images" / f"{index:04d}.png")
            labels.write(f"images/{index:04d}.png\t{text}\n")
    return len(lines)


VOWEL_FORMANTS = ((730, 1090, 2440), (270, 2290, 3010), (300, 870, 2240), (530, 1840, 2480), (570, 840, 2410))


def synthesize_audio(path: Path, count: int) -> None:
    """1 s clips at 16 kHz of formant-synthesized speech: a glottal pulse train with a wandering pitch
    through vowel resonances, a syllable every 180 ms, voiced for 0.5-0.65 s between stretches of
    faint noise (Silero VAD scores the voiced part as speech, the rest as silence)."""
    import numpy as np
    from scipy.signal import lfilter

    def resonance(x: np.ndarray, frequency: float, bandwidth: float) -> np.ndarray:
        radius, angle = np.exp(-np.pi * bandwidth / 16000), 2 * np.pi * frequency / 16000
        return lfilter([1 - radius], [1, -2 * radius * np.cos(angle), radius * radius], x)

    rng = np.random.default_rng(2)
    t = np.arange(16000) / 16000
    syllable = 2880
    clips = []
    for _ in range(count):
        pitch = rng.uniform(100, 220) * (1 + 0.08 * np.sin(2 * np.pi * rng.uniform(1, 3) * t))
        pulses = np.diff(np.floor(np.cumsum(pitch / 16000)), prepend=0)
        source = lfilter([1], [1, -0.97], pulses) + 0.02 * rng.standard_normal(t.size)
        voice = np.zeros(t.size)
        for start in range(0, t.size, syllable):
            chunk = source[start : start + syllable]
            formants = VOWEL_FORMANTS[rng.integers(len(VOWEL_FORMANTS))]
            shaped = sum(resonance(chunk, f, 80 + 40 * k) / (k + 1) for k, f in enumerate(formants))
            voice[start : start + syllable] = shaped * np.hanning(len(chunk)) ** 0.5
        onset = rng.uniform(0.05, 0.3)
        voice *= (t > onset) & (t < onset + rng.uniform(0.5, 0.65))
        clips.append(0.5 * voice / np.abs(voice).max() + 0.003 * rng.standard_normal(t.size))
    np.savez(path, x=np.stack(clips).astype(np.float32))


def kind(title: str, model: Path, data: Path, work: Path, options: list[str], shapes: dict[str, list[int]]) -> dict:
    print(f"\n{'=' * 100}\n{title}\n{'=' * 100}")
    summary: dict = {"model": model.name}
    cli("eval", model, "--data", data, *options, "--runs", 20)
    recipe = work / "int8.json"
    recipe.write_text(json.dumps(INT8_RECIPE | {"base": {"name": model.stem, "input_shapes": shapes}}))
    variant = work / f"{model.stem}.int8.onnx"
    cli("apply", "--recipe", recipe, model, "-o", variant, "--allow-other-base")
    summary["int8"] = cli("eval", variant, "--data", data, "--baseline", model, *options, "--runs", 20)
    bundle_root = work / "bundle"
    cli("export", model, "--device", "x86-server", "--data", data, *options, "-o", bundle_root)
    bundle = next(p for p in bundle_root.iterdir() if p.is_dir())
    summary["verify"] = cli("verify", bundle)
    return summary


def wait_for(app, condition, timeout: float = 600.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        app.processEvents()
        time.sleep(0.02)
        if time.monotonic() > deadline:
            raise SystemExit("the window did not finish in time")


def in_window(title: str, model: Path, data: Path, fields: dict[str, str], shots: Path) -> None:
    """Open ``model``, attach ``data`` with the dialog's ``fields`` filled in, apply int8 weight-only,
    and print what the window shows."""
    from PySide6.QtGui import QTextDocument
    from PySide6.QtWidgets import QApplication, QComboBox, QInputDialog
    from workbench.ui.data_dialog import DataDialog
    from workbench.ui.main_window import MainWindow, _metrics_html

    app = QApplication.instance() or QApplication(sys.argv[:1])
    print(f"\n--- in the window: {title} ---", flush=True)
    started = time.perf_counter()
    window = MainWindow(use_webengine=False)
    window.resize(1500, 950)
    window.show()
    window.open_path(model)  # the input shape the CLI was given is remembered for the file
    wait_for(app, lambda: window.ws.project is not None and not window.jobs.busy)
    print(f"opened {model.name}: {window.data_banner.text() if window.data_banner.isVisible() else 'no banner'}")

    seen: dict = {}

    def fill_and_accept(dialog: DataDialog) -> int:
        dialog.show()  # as exec() would: a widget never shown cannot be grabbed
        dialog.path.setText(str(data))
        for name, value in fields.items():
            widget = getattr(dialog, name)
            widget.setValue(int(value)) if name in ("frame", "hop") else widget.setText(value)
        dialog.refresh_preview()
        wait_for(app, lambda: not dialog.jobs.busy)
        seen["preview"], seen["kind"] = dialog.preview_grid.count(), dialog.kind.text()
        dialog.grab().save(str(shots / f"dialog-{model.stem}.png"))
        dialog._accept()
        return 1

    DataDialog.exec = fill_and_accept
    QInputDialog.getText = lambda *a, **k: (fields.get("input_shape", ""), True)
    window.attach_action.trigger()
    wait_for(app, lambda: not window.jobs.busy)
    problem = window.notice.message.text() if window.notice.isVisible() else ""
    print(f"data dialog: {seen.get('preview', 0)} preview tiles, {seen.get('kind', '?')}; {problem}".rstrip("; "))

    window.plugin_combo.setCurrentIndex(window.plugin_combo.findData("quantize_int8"))
    for combo in window.form.findChildren(QComboBox):
        if combo.findText("weight_only") >= 0:
            combo.setCurrentText("weight_only")
    wait_for(app, lambda: not window.jobs.busy)
    window.apply_step()
    wait_for(app, lambda: not window.jobs.busy)
    if len(window.ws.project.variants()) != 2:
        raise SystemExit(f"the window did not apply int8: {window.notice.message.text()}")
    document = QTextDocument()
    for variant in window.ws.project.variants():
        document.setHtml(_metrics_html(variant))
        print(document.toPlainText())
    choices = [window.plot.y_metric.itemText(i) for i in range(window.plot.y_metric.count())]
    print(f"plot y axis offers: {', '.join(choices)}")
    window.grab().save(str(shots / f"window-{model.stem}.png"))
    print(f"(window: {time.perf_counter() - started:.1f} s; PNGs in {shots})", flush=True)
    window.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, help="keep the data, variants and bundles here")
    parser.add_argument("--lines", type=int, default=120, help="rendered text lines per text model")
    parser.add_argument("--no-window", action="store_true", help="the CLI only")
    args = parser.parse_args()
    classifier = package_file("rapidocr_onnxruntime", "models", "ch_ppocr_mobile_v2.0_cls_infer.onnx")
    recognizer = package_file("rapidocr_onnxruntime", "models", "ch_PP-OCRv4_rec_infer.onnx")
    vad = package_file("silero_vad", "data", "silero_vad.onnx")
    if classifier is None or recognizer is None or vad is None:
        print("needs the test extras (rapidocr_onnxruntime and silero-vad ship the models)", file=sys.stderr)
        return 2
    out = (args.out or Path(tempfile.mkdtemp(prefix="task-kinds-"))).resolve()
    for name in ("CONFIG", "CACHE", "PROJECTS"):  # the user's own settings and projects stay untouched
        os.environ[f"WORKBENCH_{name}_DIR"] = str(out / "state" / name.lower())
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    shots = out / "screens"
    shots.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    paddle = ["--scale", str(1 / 255), "--mean", "0.5", "--std", "0.5"]
    paddle_fields = {"scale_edit": f"{1 / 255:.6g}", "mean_edit": "0.5", "std_edit": "0.5"}
    # title, model, data (made here), CLI options, input shapes, the data dialog's fields in the window
    kinds = [
        (
            "classifier: PaddleOCR text direction",
            classifier,
            out / "cls" / "textlines",
            lambda path: render(path, args.lines),
            ["--input-shape", "1,3,48,192", "--resize", "48,192", *paddle],
            {"x": [1, 3, 48, 192]},
            paddle_fields | {"resize_edit": "48, 192"},
        ),
        (
            "sequence recognizer: PaddleOCR PP-OCRv4 (CTC)",
            recognizer,
            out / "rec" / "lines",
            lambda path: render_recognition(path, args.lines),
            ["--input-shape", "1,3,48,320", "--resize", "48,320", *paddle],
            {"x": [1, 3, 48, 320]},
            paddle_fields | {"resize_edit": "48, 320"},
        ),
        (
            "streaming model with state: Silero VAD",
            vad,
            out / "vad" / "clips.npz",
            lambda path: synthesize_audio(path, 40),
            # Silero's own wrapper feeds 64 samples of context before each 512: frames of 576 every 512
            ["--input-shape", "input=1,576;state=2,1,128", "--frame", "576", "--hop", "512"],
            {"input": [1, 576], "state": [2, 1, 128], "sr": []},
            {"frame": "576", "hop": "512"},
        ),
    ]
    for title, model, data, make_data, options, shapes, _fields in kinds:
        data.parent.mkdir(parents=True, exist_ok=True)
        make_data(data)
        kind(title, model, data, data.parent, options, shapes)
    if not args.no_window:
        for title, model, data, _make, _options, _shapes, fields in kinds:
            in_window(title, model, data, fields, shots)
    where = "CLI" if args.no_window else "CLI and window"
    print(
        f"\nall three kinds measured ({where}), exported and verified in "
        f"{time.perf_counter() - started:.0f} s; files in {out}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
