"""Segmentation: per-pixel class scores [batch, classes, H, W] against label maps [batch, H, W]."""

from __future__ import annotations

import numpy as np

from workbench.errors import DatasetError
from workbench.metrics import MetricSettings, OutputMetric

IGNORE_LABEL = 255  # the field's convention (VOC, Cityscapes) for pixels that are not scored


class MeanIoU(OutputMetric):
    id = "miou"
    label = "mIoU"
    description = "mean intersection over union of per-pixel argmax against label maps (255 is ignored)"
    priority = 20

    def applies(self, shape: tuple[int, ...], labels: np.ndarray | None) -> bool:
        if len(shape) != 4 or labels is None or labels.ndim != 3:
            return False
        return tuple(labels.shape[1:]) in (tuple(shape[2:]), tuple(shape[1:3]))

    def check(self, shape: tuple[int, ...], labels: np.ndarray | None, settings: MetricSettings) -> None:
        if len(shape) != 4:
            raise DatasetError(f"mIoU needs a [batch, classes, H, W] output; the model's output is {list(shape)}")
        if labels is not None and not self.applies(shape, labels):
            raise DatasetError(
                f"mIoU needs [batch, H, W] label maps matching the output {list(shape)}; the labels are "
                f"{list(labels.shape)}"
            )

    def predictions(self, outputs: np.ndarray, settings: MetricSettings) -> np.ndarray:
        if outputs.ndim != 4:
            raise DatasetError(
                f"mIoU needs a [batch, classes, H, W] output; the model's output is {list(outputs.shape)}"
            )
        if outputs.shape[1] == 1:  # one sigmoid channel: foreground where it passes 0.5
            return (outputs[:, 0] > 0.5).astype(np.int64)
        return outputs.argmax(axis=1)

    def scores(self, predictions: np.ndarray, labels: np.ndarray, settings: MetricSettings) -> dict[str, float]:
        if predictions.shape != labels.shape:
            labels_hw = labels.shape[1:]
            raise DatasetError(f"label maps are {list(labels_hw)} but the output's are {list(predictions.shape[1:])}")
        scored = labels != IGNORE_LABEL
        truth, guess = labels[scored].astype(np.int64), predictions[scored].astype(np.int64)
        classes = int(max(truth.max(initial=0), guess.max(initial=0))) + 1
        matrix = np.bincount(truth * classes + guess, minlength=classes * classes).reshape(classes, classes)
        intersection = np.diag(matrix).astype(np.float64)
        union = matrix.sum(0) + matrix.sum(1) - np.diag(matrix)
        present = union > 0  # a class neither in the labels nor predicted does not count
        return {
            "miou": float(np.mean(intersection[present] / union[present])) if present.any() else 1.0,
            "pixel_accuracy": float(np.mean(truth == guess)) if truth.size else 1.0,
        }

    def agreement(self, reference: np.ndarray, candidate: np.ndarray) -> float:
        return float(np.mean(reference == candidate))
