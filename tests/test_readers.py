"""Every data reader on small data written here: layouts detected, shapes, labels, class names, the
data's own splits, previews, and one-line refusals that name the file."""

from __future__ import annotations

import gzip
import struct
import wave
from pathlib import Path
from typing import get_args

import numpy as np
import pytest

from workbench.data import reader_registry
from workbench.data.audio_features import AudioFrontEnd
from workbench.datasets import (
    CALIBRATION_SAMPLES,
    DataKind,
    DatasetRef,
    Preprocessing,
    dataset_ref_for_path,
    load_dataset,
    preview_samples,
    split_rule,
)
from workbench.errors import DatasetError

RAW = Preprocessing(scale=1.0)


def _refused(call, *named: str, reason: str) -> str:
    with pytest.raises(DatasetError) as caught:
        call()
    message = str(caught.value)
    assert "\n" not in message and reason in message, message
    for name in named:
        assert name in message, message
    return message


def _splits(ref: DatasetRef):
    return tuple(load_dataset(ref.with_split(s)) for s in ("train", "calibration", "evaluation"))


def _marks(data) -> list[int]:
    """The first pixel of each sample: the tests write a sample's identity there."""
    return [round(float(v)) for v in data.x.reshape(len(data.x), -1)[:, 0]]


def test_every_ref_kind_has_a_registered_reader():
    assert set(reader_registry()) == set(get_args(DataKind))


# --- MNIST IDX -------------------------------------------------------------------------------------
def _idx(path: Path, values: np.ndarray, *, gz: bool = False) -> Path:
    data = b"\0\0\x08" + bytes([values.ndim]) + struct.pack(f">{values.ndim}I", *values.shape)
    data += values.astype(np.uint8).tobytes()
    if gz:
        path = path.with_name(path.name + ".gz")
        path.write_bytes(gzip.compress(data))
    else:
        path.write_bytes(data)
    return path


def _mnist(folder: Path, parts=(("train", 30, True), ("t10k", 8, False))) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for prefix, count, gz in parts:
        images = np.zeros((count, 6, 5), np.uint8)
        images[:, 0, 0] = np.arange(count) + (100 if prefix == "t10k" else 0)
        images[:, 5, 4] = 255
        _idx(folder / f"{prefix}-images-idx3-ubyte", images, gz=gz)
        _idx(folder / f"{prefix}-labels-idx1-ubyte", np.arange(count) % 10, gz=gz)
    return folder


def test_mnist_idx_keeps_train_and_t10k_as_its_split(tmp_path):
    folder = _mnist(tmp_path / "mnist")
    ref = dataset_ref_for_path(folder, RAW)
    assert ref.kind == "mnist-idx"
    assert dataset_ref_for_path(folder / "t10k-images-idx3-ubyte").path == str(folder)  # a file: its folder
    train, calibration, evaluation = _splits(ref)
    assert train.x.shape == (30, 1, 6, 5) and train.x.dtype == np.float32 and train.x[0, 0, 5, 4] == 255
    assert _marks(train) == list(range(30)) and train.y.tolist() == [i % 10 for i in range(30)]
    assert _marks(evaluation) == list(range(100, 108)) and evaluation.y.tolist() == list(range(8))
    assert set(_marks(calibration)) == set(range(30)) and len(calibration) == min(30, CALIBRATION_SAMPLES)
    assert train.class_names == tuple("0123456789")
    assert "train-images-idx3-ubyte.gz for train, t10k-images-idx3-ubyte for evaluation" in split_rule(ref)
    assert _marks(load_dataset(ref.model_copy(update={"split": "evaluation", "limit": 3}))) == [100, 101, 102]
    every = load_dataset(ref)  # all: train, then t10k
    assert len(every) == 38 and _marks(every)[29:31] == [29, 100]
    previews = preview_samples(ref.with_split("evaluation"), 3)
    assert [p.kind for p in previews] == ["image"] * 3 and [p.label for p in previews] == ["0", "1", "2"]
    assert previews[1].data.shape == (6, 5) and previews[1].data.dtype == np.uint8 and previews[1].data[0, 0] == 101


def test_mnist_idx_with_one_pair_gets_the_seeded_split(tmp_path):
    folder = _mnist(tmp_path / "one", parts=(("train", 50, True),))
    ref = dataset_ref_for_path(folder, RAW)
    train, calibration, evaluation = _splits(ref)
    assert len(train) == 40 and len(evaluation) == 10 and not set(_marks(train)) & set(_marks(evaluation))
    assert set(_marks(train)) | set(_marks(evaluation)) == set(range(50)) and set(_marks(calibration)) <= set(
        _marks(train)
    )
    assert "seeded" in split_rule(ref)


def test_broken_idx_files_are_refused_naming_the_file(tmp_path):
    folder = _mnist(tmp_path / "cut")
    images = folder / "t10k-images-idx3-ubyte"
    images.write_bytes(images.read_bytes()[:-7])
    ref = DatasetRef(kind="mnist-idx", path=str(folder), split="evaluation")
    _refused(lambda: load_dataset(ref), "t10k-images-idx3-ubyte", reason="truncated IDX file")

    folder = _mnist(tmp_path / "magic")
    labels = folder / "t10k-labels-idx1-ubyte"
    labels.write_bytes(b"\0\0\x08\x03" + labels.read_bytes()[4:])
    ref = DatasetRef(kind="mnist-idx", path=str(folder), split="evaluation")
    _refused(lambda: load_dataset(ref), "t10k-labels-idx1-ubyte", reason="magic 00 00 08 03")

    folder = _mnist(tmp_path / "gz")
    gz = folder / "train-images-idx3-ubyte.gz"
    gz.write_bytes(gzip.compress(gzip.decompress(gz.read_bytes())[:-40]))
    ref = DatasetRef(kind="mnist-idx", path=str(folder), split="train")
    _refused(lambda: load_dataset(ref), "train-images-idx3-ubyte.gz", reason="truncated IDX file")

    folder = _mnist(tmp_path / "nolabels")
    (folder / "t10k-labels-idx1-ubyte").unlink()
    _refused(
        lambda: load_dataset(ref.model_copy(update={"path": str(folder)})), "t10k-labels-idx1-ubyte", reason="no labels"
    )


def test_an_idx_header_that_declares_more_than_its_gzip_can_hold_is_refused(tmp_path):
    folder = _mnist(tmp_path / "liar", parts=(("train", 20, True),))
    header = b"\0\0\x08\x03" + struct.pack(">3I", 50_000_000, 28, 28)
    (folder / "train-images-idx3-ubyte.gz").write_bytes(gzip.compress(header + bytes(64)))
    ref = DatasetRef(kind="mnist-idx", path=str(folder), split="evaluation")
    _refused(lambda: load_dataset(ref), "train-images-idx3-ubyte.gz", reason="more than a gzip file")


def test_previews_read_only_the_samples_they_show(tmp_path):
    folder = _mnist(tmp_path / "mnist", parts=(("train", 30, True),))
    gz = folder / "train-images-idx3-ubyte.gz"
    gz.write_bytes(gzip.compress(gzip.decompress(gz.read_bytes())[:-300]))  # the last ten images are cut off
    ref = DatasetRef(kind="mnist-idx", path=str(folder))
    assert [p.data[0, 0] for p in preview_samples(ref, 3)] == [0, 1, 2]
    _refused(lambda: load_dataset(ref), "train-images-idx3-ubyte.gz", reason="truncated IDX file")
    root = _text_lines(tmp_path / "ocr")
    (root / "crops" / "labels.txt1.png").write_bytes(b"not a png")
    ref = dataset_ref_for_path(root, Preprocessing(resize=(8, 16)))
    # a preview of one-file-per-sample data is spread over the split: the first and the last line
    assert [p.label for p in preview_samples(ref, 2)] == ["hello", "a b"]
    _refused(lambda: load_dataset(ref), "labels.txt1.png", reason="cannot read image")


def test_readers_refuse_data_over_the_budget_before_decoding(tmp_path, monkeypatch):
    folder = _mnist(tmp_path / "mnist", parts=(("train", 2000, True),))
    monkeypatch.setenv("WORKBENCH_DATA_BUDGET_MB", "0.05")
    ref = DatasetRef(kind="mnist-idx", path=str(folder), split="all")
    _refused(lambda: load_dataset(ref), "train-images-idx3-ubyte.gz", reason="more than the")
    assert len(load_dataset(ref.model_copy(update={"limit": 50}))) == 50  # a limit reads only what it needs


# --- CIFAR-10 ---------------------------------------------------------------------------------------
def _cifar(folder: Path, batches=(("data_batch_1.bin", 5), ("data_batch_2.bin", 5), ("test_batch.bin", 4))) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    plane = np.arange(1024, dtype=np.int64).reshape(32, 32)
    mark = 0
    for name, count in batches:
        records = []
        for _ in range(count):
            red = (plane % 251).astype(np.uint8)
            red[0, 0] = mark
            green, blue = np.full((32, 32), 7, np.uint8), (plane // 7 % 256).astype(np.uint8)
            records.append(bytes([mark % 10]) + red.tobytes() + green.tobytes() + blue.tobytes())
            mark += 1
        (folder / name).write_bytes(b"".join(records))
    (folder / "batches.meta.txt").write_text("\n".join(f"class{i}" for i in range(10)) + "\n\n")
    return folder


def test_cifar10_binary_batches_keep_their_split_and_channel_order(tmp_path):
    folder = _cifar(tmp_path / "cifar-10-batches-bin")
    ref = dataset_ref_for_path(tmp_path, RAW)  # the folder that holds cifar-10-batches-bin
    assert ref.kind == "cifar10" and ref.path == str(folder)
    train, calibration, evaluation = _splits(ref)
    assert (
        train.x.shape == (10, 3, 32, 32) and _marks(train) == list(range(10)) and _marks(evaluation) == [10, 11, 12, 13]
    )
    assert train.y.tolist() == list(range(10)) and evaluation.y.tolist() == [0, 1, 2, 3]
    plane = np.arange(1024).reshape(32, 32)
    np.testing.assert_array_equal(train.x[3, 1], 7)  # CHW planes: red, green, blue
    np.testing.assert_array_equal(train.x[3, 2], plane // 7 % 256)
    np.testing.assert_array_equal(train.x[3, 0].ravel()[1:], (plane % 251).ravel()[1:])
    assert train.class_names == tuple(f"class{i}" for i in range(10)) and len(calibration) == 10
    assert "data_batch_1.bin, data_batch_2.bin for train, test_batch.bin for evaluation" in split_rule(ref)
    nhwc = load_dataset(ref.model_copy(update={"preprocessing": Preprocessing(scale=1.0, layout="NHWC")}))
    assert nhwc.x.shape == (14, 32, 32, 3) and nhwc.x[0, 5, 6].tolist() == [(5 * 32 + 6) % 251, 7, (5 * 32 + 6) // 7]
    gray = load_dataset(ref.model_copy(update={"preprocessing": Preprocessing(grayscale=True, resize=(16, 16))}))
    assert gray.x.shape == (14, 1, 16, 16)
    previews = preview_samples(ref.with_split("evaluation"), 2)
    assert previews[0].data.shape == (32, 32, 3) and previews[0].data[0, 0, 0] == 10 and previews[1].label == "class1"


def test_cifar10_pickled_version_is_refused_with_the_fix(tmp_path):
    pickled = tmp_path / "cifar-10-batches-py"
    pickled.mkdir()
    for name in ("data_batch_1", "test_batch", "batches.meta"):
        (pickled / name).write_bytes(b"\x80\x04not read")
    for path in (pickled, tmp_path, pickled / "data_batch_1"):
        message = _refused(lambda p=path: dataset_ref_for_path(p), str(path), reason="pickled")
        assert "binary version" in message
    _refused(
        lambda: load_dataset(DatasetRef(kind="cifar10", path=str(pickled))), "cifar-10-batches-py", reason="pickled"
    )


def test_cifar10_files_that_are_not_whole_records_are_refused(tmp_path):
    folder = _cifar(tmp_path / "c")
    with open(folder / "test_batch.bin", "ab") as handle:
        handle.write(b"\0" * 100)
    ref = DatasetRef(kind="cifar10", path=str(folder), split="evaluation")
    _refused(lambda: load_dataset(ref), "test_batch.bin", reason="not a whole number of 3073-byte records")
    folder = _cifar(tmp_path / "labels")
    data = bytearray((folder / "data_batch_2.bin").read_bytes())
    data[0] = 57
    (folder / "data_batch_2.bin").write_bytes(bytes(data))
    _refused(
        lambda: load_dataset(ref.model_copy(update={"path": str(folder), "split": "train"})),
        "labels",
        reason="label 57",
    )


# --- Tiny ImageNet ---------------------------------------------------------------------------------
WNIDS = {"n03000000": (30, 30, 200), "n01000000": (200, 30, 30), "n02000000": (30, 200, 30)}


def _tiny(root: Path) -> Path:
    from PIL import Image

    root.mkdir(parents=True)
    (root / "wnids.txt").write_text("\n".join(WNIDS) + "\n")  # not sorted: classes are indexed sorted
    (root / "words.txt").write_text(
        "n01000000\tred fish, goldfish\nn02000000\tgreen thing\nn03000000\tblue bird, jay\nn09999999\tunused\n"
    )
    for wnid, colour in WNIDS.items():
        folder = root / "train" / wnid / "images"
        folder.mkdir(parents=True)
        for i in range(3):
            Image.new("RGB", (8, 8), colour).save(folder / f"{wnid}_{i}.JPEG", quality=95)
        (root / "train" / wnid / f"{wnid}_boxes.txt").write_text("")
    (root / "val" / "images").mkdir(parents=True)
    lines = []
    for i, wnid in enumerate(["n02000000", "n03000000", "n01000000", "n02000000"]):
        Image.new("RGB", (8, 8), WNIDS[wnid]).save(root / "val" / "images" / f"val_{i}.JPEG", quality=95)
        lines.append(f"val_{i}.JPEG\t{wnid}\t0\t0\t8\t8")
    (root / "val" / "val_annotations.txt").write_text("\n".join(lines) + "\n")
    return root


def test_tiny_imagenet_reads_train_and_annotated_val(tmp_path):
    root = _tiny(tmp_path / "tiny-imagenet-200")
    ref = dataset_ref_for_path(root, RAW)
    assert ref.kind == "tiny-imagenet"
    train, calibration, evaluation = _splits(ref)
    assert train.class_names == ("red fish", "green thing", "blue bird")
    assert train.x.shape == (9, 3, 8, 8) and train.y.tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    assert evaluation.y.tolist() == [1, 2, 0, 1] and len(calibration) == 9
    for data in (train, evaluation):  # every image's colour is its class's (JPEG is lossy: roughly)
        dominant = data.x.mean(axis=(2, 3)).argmax(axis=1)
        assert dominant.tolist() == data.y.tolist()
    assert "val_annotations.txt" in split_rule(ref)
    previews = preview_samples(ref.with_split("evaluation"), 8)
    assert len(previews) == 4 and previews[0].label == "green thing" and previews[0].data.shape == (8, 8, 3)


def test_tiny_imagenet_without_or_with_bad_annotations_is_refused(tmp_path):
    root = _tiny(tmp_path / "missing")
    (root / "val" / "val_annotations.txt").unlink()
    ref = DatasetRef(kind="tiny-imagenet", path=str(root), split="evaluation")
    _refused(lambda: load_dataset(ref), "val_annotations.txt", reason="no labels")
    root = _tiny(tmp_path / "unknown")
    (root / "val" / "val_annotations.txt").write_text("val_0.JPEG\tn07777777\t0\t0\t8\t8\n")
    ref = ref.model_copy(update={"path": str(root)})
    _refused(lambda: load_dataset(ref), "val_annotations.txt", reason="line 1: 'n07777777' is not a class")


# --- Speech Commands -------------------------------------------------------------------------------
def _wav(path: Path, samples: np.ndarray, *, rate: int = 16000, width: int = 2, channels: int = 1) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as out:
        out.setnchannels(channels)
        out.setsampwidth(width)
        out.setframerate(rate)
        if width == 2:
            out.writeframes(np.repeat(samples.astype("<i2"), channels).tobytes())
        else:
            out.writeframes((samples // 256 + 128).astype(np.uint8).tobytes())


def _tone(hz: float, seconds: float) -> np.ndarray:
    t = np.arange(round(16000 * seconds)) / 16000
    return np.round(12000 * np.sin(2 * np.pi * hz * t)).astype(np.int16)


def _speech(root: Path) -> dict[str, np.ndarray]:
    written = {}
    for word, hz in (("yes", 500.0), ("no", 2500.0)):
        for i, seconds in enumerate((0.5, 1.0, 1.3, 0.8, 1.0)):
            samples = _tone(hz + 40 * i, seconds)
            _wav(root / word / f"clip{i}_nohash_0.wav", samples)
            written[f"{word}/clip{i}_nohash_0.wav"] = samples
    _wav(root / "_background_noise_" / "noise.wav", _tone(100, 3.0))
    (root / "README.md").write_text("speech")
    (root / "testing_list.txt").write_text("no/clip1_nohash_0.wav\nyes/clip3_nohash_0.wav\n")
    (root / "validation_list.txt").write_text("yes/clip0_nohash_0.wav\n")
    return written


def test_speech_commands_are_log_mel_features_with_the_testing_list_as_evaluation(tmp_path):
    root = tmp_path / "speech"
    written = _speech(root)
    ref = dataset_ref_for_path(root)
    assert ref.kind == "speech-commands" and ref.front_end == AudioFrontEnd()
    train, calibration, evaluation = _splits(ref)
    assert evaluation.class_names == ("no", "yes") and evaluation.y.tolist() == [0, 1]
    assert len(train) == 8 and len(calibration) == 8 and train.y.tolist() == [0, 0, 0, 0, 1, 1, 1, 1]
    assert train.x.shape == (8, 1, 98, 40) and evaluation.x.shape == (2, 1, 98, 40)
    expected = AudioFrontEnd().features(
        AudioFrontEnd().fit_clips(written["no/clip1_nohash_0.wav"][None].astype(np.float32) / 32768)
    )
    np.testing.assert_allclose(evaluation.x[0, 0], expected[0], rtol=1e-5, atol=1e-4)
    assert "testing_list.txt for evaluation" in split_rule(ref) and "validation_list.txt included" in split_rule(ref)
    assert "log-mel 40 mels" in ref.describe()

    previews = preview_samples(ref.with_split("train"), 3)
    assert (
        [p.kind for p in previews] == ["audio"] * 3 and previews[0].label == "no" and previews[0].sample_rate == 16000
    )
    clip = written["no/clip0_nohash_0.wav"]  # half a second: padded to one
    assert previews[0].data.dtype == np.float32 and previews[0].data.shape == (16000,)
    np.testing.assert_allclose(previews[0].data[: len(clip)], clip / 32768, atol=1e-6)
    assert np.abs(previews[0].data).max() <= 1 and not previews[0].data[len(clip) :].any()

    mfcc = ref.model_copy(update={"front_end": AudioFrontEnd(kind="mfcc", channel_axis=False)})
    assert load_dataset(mfcc.with_split("evaluation")).x.shape == (2, 98, 10)
    nhwc = ref.model_copy(update={"preprocessing": Preprocessing(layout="NHWC")})
    assert load_dataset(nhwc.with_split("evaluation")).x.shape == (2, 98, 40, 1)


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({"width": 1}, "8-bit samples; clips must be 16-bit PCM"),
        ({"rate": 8000}, "sampled at 8000 Hz but the front end takes 16000 Hz"),
        ({"channels": 2}, "2 channels; clips must be mono"),
    ],
)
def test_clips_the_front_end_cannot_take_are_refused(tmp_path, fields, reason):
    root = tmp_path / "speech"
    _wav(root / "go" / "a.wav", _tone(300, 1.0))
    _wav(root / "go" / "b.wav", _tone(300, 1.0), **fields)
    for i in range(3):
        _wav(root / "stop" / f"{i}.wav", _tone(900, 1.0))
    ref = DatasetRef(kind="speech-commands", path=str(root), split="all")
    _refused(lambda: load_dataset(ref), "b.wav", reason=reason)


def test_a_wav_that_is_not_pcm_is_refused(tmp_path):
    root = tmp_path / "speech"
    _wav(root / "go" / "a.wav", _tone(300, 1.0))
    data = bytearray((root / "go" / "a.wav").read_bytes())
    data[20:22] = struct.pack("<H", 3)  # the fmt chunk's format code: IEEE float
    (root / "go" / "a.wav").write_bytes(bytes(data))
    ref = DatasetRef(kind="speech-commands", path=str(root), split="all")
    _refused(lambda: load_dataset(ref), "a.wav", reason="not a 16-bit PCM wav file (format code 3")


def test_the_bundle_manifest_carries_the_front_end(tmp_path):
    import json

    import onnx
    from onnx import TensorProto, helper, numpy_helper

    from workbench.device_export import export_for_device
    from workbench.devices import get_device
    from workbench.loading import load_model
    from workbench.project import Project

    root = tmp_path / "speech"
    _speech(root)
    front_end = AudioFrontEnd(kind="mfcc", n_mfcc=12)
    ref = dataset_ref_for_path(root).model_copy(update={"front_end": front_end})
    weights = np.random.default_rng(0).standard_normal((98 * 12, 2)).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("Flatten", ["x"], ["flat"]), helper.make_node("MatMul", ["flat", "w"], ["logits"])],
        "kws",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 1, 98, 12])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 2])],
        [numpy_helper.from_array(weights, "w")],
    )
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    proto.ir_version = 8
    onnx.save(proto, tmp_path / "kws.onnx")
    with Project.create(tmp_path / "project", load_model(tmp_path / "kws.onnx"), dataset=ref) as project:
        bundle = export_for_device(project, project.root.id, get_device("x86-server"), tmp_path / "out", runs=2)
    manifest = json.loads((bundle / "manifest.json").read_text())
    assert AudioFrontEnd.model_validate(manifest["front_end"]) == front_end
    assert manifest["metrics"]["samples"] == 2  # the testing list's clips, as features


# --- npz -------------------------------------------------------------------------------------------
def test_an_npz_with_one_array_per_model_input(tmp_path):
    a = np.arange(50 * 3, dtype=np.float64).reshape(50, 3)
    ids = np.arange(50 * 4, dtype=np.int64).reshape(50, 4)
    np.savez(tmp_path / "two.npz", a=a, token_ids=ids, labels=np.arange(50) % 4)
    ref = dataset_ref_for_path(tmp_path / "two.npz")
    assert ref.kind == "npz"
    train, _calibration, evaluation = _splits(ref)
    assert set(evaluation.inputs) == {"a", "token_ids"} and len(evaluation) == 10 and len(train) == 40
    assert evaluation.inputs["a"].dtype == np.float32 and evaluation.inputs["token_ids"].dtype == np.int64
    rows = (evaluation.inputs["a"][:, 0] / 3).astype(int)  # which samples they are
    np.testing.assert_array_equal(evaluation.inputs["token_ids"][:, 0], rows * 4)  # arrays stay aligned
    np.testing.assert_array_equal(evaluation.y, rows % 4)
    np.testing.assert_array_equal(evaluation.x, evaluation.inputs["a"])
    assert not set(rows) & set((train.inputs["a"][:, 0] / 3).astype(int))
    limited = load_dataset(ref.model_copy(update={"limit": 5}))
    assert {k: len(v) for k, v in limited.inputs.items()} == {"a": 5, "token_ids": 5} and len(limited.y) == 5
    assert preview_samples(ref, 2)[1].label == "1"

    np.savez(tmp_path / "uneven.npz", a=a, b=a[:49])
    _refused(
        lambda: load_dataset(DatasetRef(kind="npz", path=str(tmp_path / "uneven.npz"))),
        "uneven.npz",
        reason="array 'b' has 49",
    )
    np.savez(tmp_path / "scalar.npz", a=a, sr=np.int64(16000))
    _refused(
        lambda: load_dataset(DatasetRef(kind="npz", path=str(tmp_path / "scalar.npz"))),
        "scalar.npz",
        reason="--const sr=",
    )


def test_npz_labels_may_be_strings_or_label_maps_but_not_nonsense(tmp_path):
    x = np.zeros((6, 1, 4, 4), np.float32)
    x[:, 0, 0, 0] = np.arange(6)
    np.savez(tmp_path / "text.npz", x=x, y=np.array(["ab", "c", "", "dé", "e", "f"]))
    texts = load_dataset(DatasetRef(kind="npz", path=str(tmp_path / "text.npz")))
    assert texts.y.dtype.kind == "U" and texts.y.tolist() == ["ab", "c", "", "dé", "e", "f"]
    np.savez(tmp_path / "maps.npz", x=x, y=np.full((6, 4, 4), 255, np.uint8), class_names=np.array(["bg", "fg"]))
    maps = load_dataset(DatasetRef(kind="npz", path=str(tmp_path / "maps.npz"), split="evaluation"))
    assert maps.y.shape == (1, 4, 4) and maps.y.dtype == np.int64 and maps.class_names == ("bg", "fg")
    assert preview_samples(DatasetRef(kind="npz", path=str(tmp_path / "maps.npz")), 1)[0].label == "label map 4x4"
    for name, y, reason in (
        ("negative.npz", np.full((6, 4, 4), -1), "labels from -1"),
        ("plane.npz", np.zeros((6, 4)), "got shape [6, 4]"),
        ("fraction.npz", np.full(6, 0.5), "fractional"),
        ("bool.npz", np.ones(6, bool), "integer class labels"),
    ):
        np.savez(tmp_path / name, x=x, y=y)
        _refused(lambda n=name: load_dataset(DatasetRef(kind="npz", path=str(tmp_path / n))), name, reason=reason)


# --- text lines ------------------------------------------------------------------------------------
def _text_lines(root: Path, label_file: str = "labels.txt", texts=("hello", "wörld", "a b")) -> Path:
    from PIL import Image

    (root / "crops").mkdir(parents=True, exist_ok=True)
    lines = []
    for i, text in enumerate(texts):
        Image.new("RGB", (20 + 10 * i, 8), (40 * i, 0, 0)).save(root / "crops" / f"{label_file}{i}.png")
        lines.append(f"crops/{label_file}{i}.png\t{text}")
    (root / label_file).write_text("\n".join(lines) + "\n", encoding="utf-8")
    return root


def test_text_lines_read_images_with_their_text(tmp_path):
    root = _text_lines(tmp_path / "ocr")
    ref = dataset_ref_for_path(root, Preprocessing(resize=(8, 32)))
    assert ref.kind == "text-lines"
    data = load_dataset(ref)
    assert data.x.shape == (3, 3, 8, 32) and data.y.tolist() == ["hello", "wörld", "a b"] and data.y.dtype.kind == "U"
    previews = preview_samples(ref, 3)
    assert [p.label for p in previews] == ["hello", "wörld", "a b"] and previews[2].data.shape == (8, 40, 3)
    _refused(
        lambda: load_dataset(ref.model_copy(update={"preprocessing": Preprocessing()})), "ocr", reason="differ in size"
    )

    split = _text_lines(
        _text_lines(tmp_path / "split", "rec_gt_train.txt", ("a", "b", "c", "d")), "rec_gt_test.txt", ("e", "f")
    )
    split_ref = dataset_ref_for_path(split, Preprocessing(resize=(8, 16)))
    assert load_dataset(split_ref.with_split("evaluation")).y.tolist() == ["e", "f"]
    assert load_dataset(split_ref.with_split("train")).y.tolist() == ["a", "b", "c", "d"]
    assert "rec_gt_train.txt for train, rec_gt_test.txt for evaluation" in split_rule(split_ref)


def test_text_line_files_with_bad_lines_are_refused(tmp_path):
    root = _text_lines(tmp_path / "ocr")
    ref = dataset_ref_for_path(root, Preprocessing(resize=(8, 16)))
    with open(root / "labels.txt", "a", encoding="utf-8") as handle:
        handle.write("crops/missing.png\tgone\n")
    _refused(lambda: load_dataset(ref), "labels.txt", reason="line 4: image 'crops/missing.png' does not exist")
    (root / "labels.txt").write_text("crops/labels.txt0.png\thello\nno tab here\n", encoding="utf-8")
    _refused(lambda: load_dataset(ref), "labels.txt", reason="has no tab")


# --- detection -------------------------------------------------------------------------------------
def test_unknown_layouts_are_refused_with_the_ones_that_are_read(tmp_path):
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "readme.md").write_text("nothing to read")
    message = _refused(lambda: dataset_ref_for_path(tmp_path / "notes"), "notes", reason="not a data layout")
    for layout in ("MNIST IDX", "CIFAR-10 binary", "Tiny ImageNet", "Speech Commands", "image folders", ".npz"):
        assert layout in message
    _refused(lambda: dataset_ref_for_path(tmp_path / "absent"), "absent", reason="no such file or folder")


def test_old_stored_refs_still_validate():
    for stored in (
        {"kind": "folder", "path": "/data/images", "split": "test"},
        {"kind": "builtin", "path": "mnist-sample", "preprocessing": {"scale": 0.00392156862745098}},
        {"kind": "random", "path": "1x16", "limit": 8},
    ):
        ref = DatasetRef.model_validate(stored)
        assert ref.front_end is None and DatasetRef.model_validate_json(ref.model_dump_json()) == ref
