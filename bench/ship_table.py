"""The issue-9 evidence: a real third-party classifier on real labelled data, exported to every device,
each bundle's manifest figures beside the ones `workbench verify` recomputes from the bundle alone.

The model is PaddleOCR's text-direction classifier (MobileNetV3, opset 11) that rapidocr_onnxruntime
ships. The data is real text, rendered here: lines of the Python standard library's own documentation,
drawn upright (label "0") and rotated 180 degrees (label "180"), with the classifier's preprocessing
(48x192, (x/255 - 0.5) / 0.5). Nothing is downloaded.

Usage: python bench/ship_table.py [--out DIR] [--lines 300]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
VARIANTS = {
    "fp32": None,
    "int8 weight-only": ("quantize_int8", {"mode": "weight_only", "per_channel": True}),
    "int8 static QDQ": ("quantize_int8", {"mode": "static", "quant_format": "QDQ", "per_channel": True}),
    "fp16": ("quantize_fp16", {}),
}


def text_lines(count: int) -> list[str]:
    """Sentences from the standard library's docstrings: real text, on every machine."""
    import pydoc

    lines: list[str] = []
    for module in ("json", "pathlib", "argparse", "collections", "itertools", "functools", "typing", "zipfile"):
        doc = pydoc.render_doc(importlib.import_module(module), renderer=pydoc.plaintext)
        for raw in doc.splitlines():
            text = " ".join(raw.split())
            if 12 <= len(text) <= 40 and text.isascii() and any(c.isalpha() for c in text):
                lines.append(text)
    return list(dict.fromkeys(lines))[:count]


def render(folder: Path, count: int) -> int:
    import numpy as np
    from PIL import Image, ImageDraw, ImageFont

    rng = np.random.default_rng(0)
    lines = text_lines(count)
    for label in ("0", "180"):
        (folder / label).mkdir(parents=True)
    for index, text in enumerate(lines):
        font = ImageFont.load_default(size=int(rng.integers(26, 36)))
        width = int(font.getlength(text)) + 16
        ink, paper = int(rng.integers(0, 70)), int(rng.integers(190, 256))
        image = Image.new("RGB", (width, 48), (paper,) * 3)
        ImageDraw.Draw(image).text((8, int(rng.integers(2, 8))), text, font=font, fill=(ink,) * 3)
        image = image.resize((192, 48), Image.Resampling.BILINEAR)
        image.save(folder / "0" / f"{index:04d}.png")
        image.rotate(180).save(folder / "180" / f"{index:04d}.png")
    return len(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, help="keep the project, data and bundles here")
    parser.add_argument("--lines", type=int, default=300, help="text lines (each drawn upright and upside down)")
    args = parser.parse_args()
    spec = importlib.util.find_spec("rapidocr_onnxruntime")
    if spec is None or not spec.submodule_search_locations:
        print("needs the test extras (rapidocr_onnxruntime ships the classifier)", file=sys.stderr)
        return 2
    model_path = Path(spec.submodule_search_locations[0]) / "models" / "ch_ppocr_mobile_v2.0_cls_infer.onnx"
    out = args.out or Path(tempfile.mkdtemp(prefix="ship-table-"))

    from workbench.datasets import DatasetRef, Preprocessing, load_dataset, split_rule
    from workbench.device_export import ExportRefused, export_for_device
    from workbench.devices import load_devices
    from workbench.evaluate import measure
    from workbench.loading import load_model
    from workbench.plugin import discover_plugins
    from workbench.project import Project

    count = render(out / "textlines", args.lines)
    prep = Preprocessing(resize=(48, 192), scale=1 / 255, mean=(0.5,), std=(0.5,))
    ref = DatasetRef(kind="folder", path=str(out / "textlines"), preprocessing=prep)
    model = load_model(model_path, input_shapes="1,3,48,192", remember_shapes=False)
    evaluation = load_dataset(ref.with_split("evaluation"))
    print(f"model   {model_path.name} (PaddleOCR text direction, MobileNetV3, opset 11)")
    print(f"data    {2 * count} rendered text lines; evaluation: {evaluation.ref.describe()}")
    print(f"        {len(evaluation)} evaluation samples; {split_rule(ref)}")
    registry = discover_plugins()
    started = time.perf_counter()

    def measured(m, task):
        return measure(m, baseline=model, dataset=evaluation, runs=50)

    rows = []
    with Project.create(out / "project", model, dataset=ref, metrics=measured(model, None)) as project:
        ids = {}
        for label, step in VARIANTS.items():
            if step is None:
                ids[label] = project.root.id
            else:
                ids[label] = project.apply(project.root.id, registry.get(step[0]), step[1], measure=measured).id
        for label, variant_id in ids.items():
            v = project.get(variant_id)
            print(f"variant {label:18s} accuracy {v.metrics.accuracy:.2%} in the project ({v.metrics.samples} samples)")
        for device_id, device in sorted(load_devices()[0].items()):
            for label, variant_id in ids.items():
                try:
                    bundle = export_for_device(project, variant_id, device, out / "bundles")
                except ExportRefused as exc:
                    reason = str(exc).split(": ", 1)[1]
                    rows.append((device_id, label, f"refused: {reason[:110]}", "", "", "", "", ""))
                    continue
                manifest = json.loads((bundle / "manifest.json").read_text())
                claimed = manifest["metrics"]
                verify = subprocess.run(
                    [sys.executable, str(ROOT / "bench" / "verify_bundle.py"), str(bundle)],
                    capture_output=True,
                    text=True,
                )
                found = {}
                for line in verify.stdout.splitlines():
                    if line.startswith(("ok ", "WRONG")) and ":" in line:
                        figure, detail = line[8:].split(": ", 1)
                        found[figure] = detail.split(" here")[0]
                settings = manifest["runtime"]
                loads = f"{settings['file']} in {settings['runtime']}" + "".join(
                    f", {k}={v}" for k, v in settings["config"].items() if k.startswith("session.")
                )
                rows.append(
                    (
                        device_id,
                        label,
                        loads,
                        f"{claimed['accuracy']:.2%}",
                        found.get("accuracy", "?").split(" (")[0],
                        f"{claimed['latency_ratio']:.2f}x",
                        found.get("latency ratio", "?").split(" the")[0],
                        "pass" if verify.returncode == 0 else "FAIL",
                    )
                )
    header = (
        "device",
        "variant",
        "bundle loads",
        "manifest acc",
        "verify acc",
        "manifest ratio",
        "verify ratio",
        "",
    )
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    print()
    for row in [header, *rows]:
        print("  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)))
    print(f"\ntook {time.perf_counter() - started:.0f} s; bundles in {out / 'bundles'}")
    return 1 if any(r[-1] == "FAIL" for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
