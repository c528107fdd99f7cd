"""Speech Commands-style clips: one folder of 16-bit PCM mono ``.wav`` files per word (``_background_noise_``
is not a word and is skipped). ``testing_list.txt`` (paths relative to the root, one a line) is the
evaluation split and every other clip is train, ``validation_list.txt`` included; with only a
``validation_list.txt``, that list is the evaluation split; with neither, the split is seeded.

Clips are read with the standard library's ``wave``, padded with zeros or cut to the front end's clip
length, and turned into the model's input by the ref's :class:`AudioFrontEnd` (stored with the ref and
in a bundle's manifest). A clip at another sample rate is refused: nothing is resampled.
"""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np

from workbench.data import DataReader, PreviewSample, ReadData, read_text
from workbench.data.audio_features import AudioFrontEnd
from workbench.datasets import DatasetRef, Preprocessing, split_positions
from workbench.errors import DatasetError
from workbench.limits import check_allocation, data_budget
from workbench.untrusted import open_regular

BACKGROUND = "_background_noise_"
TESTING_LIST = "testing_list.txt"
VALIDATION_LIST = "validation_list.txt"
CHUNK = 256  # clips decoded and transformed at a time: the waveforms of a split are never all in memory

Clips = list[tuple[int, Path]]  # (word index, wav file)


def _is_wav(path: Path) -> bool:
    return path.suffix.lower() == ".wav" and not path.name.startswith(".")


def _word_folders(root: Path) -> list[Path]:
    return sorted(p for p in root.iterdir() if p.is_dir() and p.name != BACKGROUND and not p.name.startswith("."))


def read_clip(file: Path, front_end: AudioFrontEnd) -> np.ndarray:
    """One clip as float32 in [-1, 1], padded or cut to the front end's clip length."""
    with open_regular(file, DatasetError) as handle:
        try:
            reader = wave.open(handle, "rb")  # noqa: SIM115 (closed below; its errors are reported first)
        except (wave.Error, EOFError) as exc:
            reason = str(exc)[:120] or "no RIFF header"
            if reason.startswith("unknown format:"):
                reason = f"format code {reason.split(':')[1].strip()}; only plain PCM, code 1, is read"
            raise DatasetError(f"not a 16-bit PCM wav file ({reason})", file) from None
        with reader:
            channels, width, rate = reader.getnchannels(), reader.getsampwidth(), reader.getframerate()
            if width != 2:
                raise DatasetError(f"holds {8 * width}-bit samples; clips must be 16-bit PCM", file)
            if channels != 1:
                raise DatasetError(f"has {channels} channels; clips must be mono", file)
            if rate != front_end.sample_rate:
                raise DatasetError(
                    f"is sampled at {rate} Hz but the front end takes {front_end.sample_rate} Hz (clips are not "
                    "resampled: convert them, or set the front end's sample_rate)",
                    file,
                )
            try:
                frames = reader.readframes(front_end.clip_samples)
            except (wave.Error, EOFError, OSError) as exc:
                raise DatasetError(f"cannot read the samples ({str(exc)[:120]})", file) from None
    samples = np.frombuffer(frames[: len(frames) // 2 * 2], dtype="<i2").astype(np.float32) / 32768.0
    return front_end.fit_clips(samples[None])[0]


def _layout(root: Path) -> tuple[tuple[str, ...], dict[str, Clips]]:
    if not root.is_dir():
        raise DatasetError("no such folder of clips", root)
    words, clips = [], []
    for folder in _word_folders(root):
        files = sorted(f for f in folder.iterdir() if _is_wav(f))
        if files:
            clips.extend((len(words), f) for f in files)
            words.append(folder.name)
    if not clips:
        raise DatasetError("no word folders with .wav clips in them", root)
    listed = next((root / n for n in (TESTING_LIST, VALIDATION_LIST) if (root / n).is_file()), None)
    if listed is None:
        return tuple(words), {"all": clips}
    names = {line.strip().replace("\\", "/") for line in read_text(listed).splitlines() if line.strip()}
    evaluation = [clip for clip in clips if clip[1].relative_to(root).as_posix() in names]
    if not evaluation:
        raise DatasetError("names none of the clips in the word folders (paths are relative to the root)", listed)
    train = [clip for clip in clips if clip[1].relative_to(root).as_posix() not in names]
    if not train:
        raise DatasetError("names every clip: nothing is left for train", listed)
    return tuple(words), {"train": train, "evaluation": evaluation}


def _chosen(ref: DatasetRef, limit: int | None, spread: bool = False) -> tuple[tuple[str, ...], Clips]:
    root = Path(ref.path)
    words, parts = _layout(root)
    plan = split_positions({part: len(clips) for part, clips in parts.items()}, ref.split, limit, root, spread=spread)
    return words, [parts[part][i] for part, index in plan for i in index]


def front_end_of(ref: DatasetRef) -> AudioFrontEnd:
    return ref.front_end if ref.front_end is not None else AudioFrontEnd()


class SpeechCommandsReader(DataReader):
    kind = "speech-commands"
    description = "Speech Commands-style clips (a folder of 16 kHz mono .wav files per word)"
    priority = 40

    def matches(self, path: Path) -> bool:
        return path.is_dir() and any(any(_is_wav(f) for f in folder.iterdir()) for folder in _word_folders(path))

    def ref_for(self, path: Path, preprocessing: Preprocessing) -> DatasetRef:
        return DatasetRef(kind=self.kind, path=str(path), preprocessing=preprocessing, front_end=AudioFrontEnd())

    def own_split(self, ref: DatasetRef) -> str | None:
        root = Path(ref.path)
        if (root / TESTING_LIST).is_file():
            return f"{TESTING_LIST} for evaluation; every other clip, {VALIDATION_LIST} included, for train"
        if (root / VALIDATION_LIST).is_file():
            return f"{VALIDATION_LIST} for evaluation; every other clip for train"
        return None

    def load(self, ref: DatasetRef) -> ReadData:
        front_end = front_end_of(ref)
        words, chosen = _chosen(ref, ref.limit)
        layout = ref.preprocessing.layout
        shape = front_end.model_input(np.zeros((1, front_end.clip_samples), np.float32), layout).shape[1:]
        check_allocation(
            len(chosen) * int(np.prod(shape)) * 4,
            f"{len(chosen):,} clips as {front_end.kind} {list(shape)} float32",
            ref.path,
            budget=data_budget(),
            error=DatasetError,
            hint="use --limit to read fewer clips, or raise WORKBENCH_DATA_BUDGET_MB",
        )
        x = np.empty((len(chosen), *shape), np.float32)
        for start in range(0, len(chosen), CHUNK):
            clips = np.stack([read_clip(file, front_end) for _word, file in chosen[start : start + CHUNK]])
            x[start : start + len(clips)] = front_end.model_input(clips, layout)
        return ReadData(x, np.asarray([word for word, _file in chosen], np.int64), words, ready=True)

    def preview(self, ref: DatasetRef, count: int) -> list[PreviewSample]:
        front_end = front_end_of(ref)
        words, chosen = _chosen(ref, count, spread=True)
        return [
            PreviewSample("audio", read_clip(file, front_end), words[word], front_end.sample_rate)
            for word, file in chosen
        ]
