"""Sequences: [batch, time, classes] scores (CTC text recognizers, frame-wise keyword spotters),
greedy-decoded (best class per step, repeats merged, blanks dropped) and compared as strings."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from workbench.errors import DatasetError
from workbench.metrics import MetricSettings, OutputMetric


def greedy_decode(outputs: np.ndarray, blank: int = 0) -> list[tuple[int, ...]]:
    """Class sequences per sample: argmax per time step, consecutive repeats merged, blanks removed."""
    best = outputs.argmax(axis=-1)
    decoded = []
    for row in best:
        keep = np.ones(len(row), dtype=bool)
        keep[1:] = row[1:] != row[:-1]
        decoded.append(tuple(int(c) for c in row[keep] if c != blank))
    return decoded


def edit_distance(a: str, b: str) -> int:
    """Levenshtein distance (insertions, deletions, substitutions all cost 1)."""
    if len(a) < len(b):
        a, b = b, a
    previous = list(range(len(b) + 1))
    for i, char_a in enumerate(a, 1):
        current = [i]
        for j, char_b in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (char_a != char_b)))
        previous = current
    return previous[-1]


def charset_for(classes: int, settings: MetricSettings) -> list[str]:
    """Class index -> text. PaddleOCR-style charsets list the classes after the blank in order; when
    the model has one class more than the charset holds, that last class is the space."""
    charset = list(settings.charset)
    if not charset:
        raise DatasetError(
            "scoring text needs the model's charset: pass --charset FILE (one character per line), or use a "
            "model that carries it in its 'character' metadata"
        )
    if classes == len(charset) + 2:
        charset.append(" ")
    if classes != len(charset) + 1 or settings.blank >= classes:
        raise DatasetError(
            f"the charset has {len(settings.charset)} entries but the model's output has {classes} classes "
            "(expected one class per entry plus the blank)"
        )
    return [*charset[: settings.blank], "", *charset[settings.blank :]]


@dataclass(frozen=True)
class Decoded:
    sequences: list[tuple[int, ...]]
    classes: int


class CtcGreedy(OutputMetric):
    id = "ctc"
    label = "exact match"
    description = (
        "greedy CTC decoding; exact match and character error rate against label strings (needs a charset); "
        "agreement is the share of decoded sequences equal to the baseline's"
    )
    priority = 10

    def applies(self, shape: tuple[int, ...], labels: np.ndarray | None) -> bool:
        return len(shape) == 3 and shape[2] >= 2 and (labels is None or labels.dtype.kind == "U")

    def check(self, shape: tuple[int, ...], labels: np.ndarray | None, settings: MetricSettings) -> None:
        if len(shape) != 3:
            raise DatasetError(f"CTC decoding needs a [batch, time, classes] output; the model's is {list(shape)}")
        if labels is not None and labels.dtype.kind != "U":
            raise DatasetError("CTC scoring needs label strings (a text-lines folder, or an .npz 'y' of strings)")

    def predictions(self, outputs: np.ndarray, settings: MetricSettings) -> Decoded:
        if outputs.ndim != 3:
            raise DatasetError(
                f"CTC decoding needs a [batch, time, classes] output; the model's is {list(outputs.shape)}"
            )
        return Decoded(greedy_decode(outputs, settings.blank), int(outputs.shape[2]))

    def texts(self, predictions: Decoded, settings: MetricSettings) -> list[str]:
        table = charset_for(predictions.classes, settings)
        return ["".join(table[c] for c in sequence) for sequence in predictions.sequences]

    def scores(self, predictions: Decoded, labels: np.ndarray, settings: MetricSettings) -> dict[str, float]:
        texts = self.texts(predictions, settings)
        if len(texts) != len(labels):
            raise DatasetError(f"{len(texts)} outputs but {len(labels)} label strings")
        truths = [str(label) for label in labels]
        errors = sum(edit_distance(text, truth) for text, truth in zip(texts, truths, strict=True))
        return {
            "ctc": float(np.mean([text == truth for text, truth in zip(texts, truths, strict=True)])),
            "cer": errors / max(sum(len(truth) for truth in truths), 1),
        }

    def agreement(self, reference: Decoded, candidate: Decoded) -> float:
        pairs = zip(reference.sequences, candidate.sequences, strict=True)
        return float(np.mean([a == b for a, b in pairs]))
