"""Classification: [batch, classes] scores against one class index per sample."""

from __future__ import annotations

from typing import Any

import numpy as np

from workbench.errors import DatasetError
from workbench.metrics import MetricSettings, OutputMetric

MAX_CONFUSION_CLASSES = 200  # a larger matrix is unreadable and heavy to store with every variant


def class_scores(outputs: np.ndarray) -> np.ndarray:
    """[batch, classes], accepting [batch, classes, 1, 1] from conv heads that keep spatial axes."""
    squeezed = (
        outputs.reshape(outputs.shape[0], -1)
        if outputs.ndim > 2 and all(d == 1 for d in outputs.shape[2:])
        else outputs
    )
    if squeezed.ndim != 2:
        raise DatasetError(f"top-1 needs a [batch, classes] output; the model's output is {list(outputs.shape)}")
    return squeezed


class TopK(OutputMetric):
    id = "top1"
    label = "top-1 accuracy"
    description = "top-1 and top-5 accuracy against class labels; agreement is top-1 agreement"
    priority = 30

    def applies(self, shape: tuple[int, ...], labels: np.ndarray | None) -> bool:
        rank_ok = len(shape) == 2 or (len(shape) == 4 and shape[2:] == (1, 1))  # a conv head keeps [N, C, 1, 1]
        classes_ok = len(shape) >= 2 and shape[1] >= 2
        labels_ok = labels is None or (labels.ndim == 1 and np.issubdtype(labels.dtype, np.integer))
        return rank_ok and classes_ok and labels_ok

    def predictions(self, outputs: np.ndarray, settings: MetricSettings) -> np.ndarray:
        scores = class_scores(outputs)
        top = min(5, scores.shape[1])
        return np.argsort(-scores, axis=1, kind="stable")[:, :top]  # column 0 is the top-1 class

    def scores(self, predictions: np.ndarray, labels: np.ndarray, settings: MetricSettings) -> dict[str, float]:
        self._check_labels(labels, predictions)
        result = {"top1": float(np.mean(predictions[:, 0] == labels))}
        if predictions.shape[1] == 5:
            result["top5"] = float(np.mean(np.any(predictions == labels[:, None], axis=1)))
        return result

    def agreement(self, reference: np.ndarray, candidate: np.ndarray) -> float:
        return float(np.mean(reference[:, 0] == candidate[:, 0]))

    def extras(self, predictions: np.ndarray, labels: np.ndarray, settings: MetricSettings) -> dict[str, Any]:
        classes = int(max(labels.max(initial=0), predictions[:, 0].max(initial=0))) + 1
        if classes > MAX_CONFUSION_CLASSES:
            return {}
        matrix = np.zeros((classes, classes), dtype=np.int64)
        np.add.at(matrix, (labels, predictions[:, 0]), 1)  # rows: true class, columns: predicted
        return {"confusion": matrix.tolist()}

    @staticmethod
    def _check_labels(labels: np.ndarray, predictions: np.ndarray) -> None:
        if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
            raise DatasetError(
                f"top-1 needs one class index per sample; the labels are {labels.dtype}{list(labels.shape)}"
            )
        if len(labels) != len(predictions):
            raise DatasetError(f"{len(predictions)} outputs but {len(labels)} labels")
