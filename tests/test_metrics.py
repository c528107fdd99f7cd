"""A metric for every kind of output: classification, segmentation, CTC sequences, and fidelity per output."""

from __future__ import annotations

import numpy as np
import pytest

from workbench.errors import DatasetError
from workbench.metrics import MetricSettings, choose_metric
from workbench.metrics.classification import TopK
from workbench.metrics.ctc import CtcGreedy, edit_distance, greedy_decode
from workbench.metrics.fidelity import output_fidelity
from workbench.metrics.segmentation import MeanIoU


def test_top1_top5_and_confusion_match_a_direct_count():
    rng = np.random.default_rng(1)
    logits = rng.standard_normal((200, 12)).astype(np.float32)
    labels = rng.integers(0, 12, 200)
    metric, settings = TopK(), MetricSettings()
    predicted = metric.predictions(logits, settings)
    scores = metric.scores(predicted, labels, settings)
    ranks = (logits > logits[np.arange(200), labels][:, None]).sum(axis=1)  # classes scored above the true one
    assert scores["top1"] == pytest.approx(np.mean(ranks == 0))
    assert scores["top5"] == pytest.approx(np.mean(ranks < 5))
    assert scores["top5"] > scores["top1"]
    confusion = np.asarray(metric.extras(predicted, labels, settings)["confusion"])
    assert confusion.sum() == 200 and np.trace(confusion) == round(scores["top1"] * 200)
    assert confusion[labels[0], logits[0].argmax()] >= 1


def test_miou_matches_per_class_intersection_over_union():
    labels = np.zeros((2, 4, 4), np.int64)
    labels[:, :2] = 1  # top half class 1
    labels[1, 3, 3] = 255  # ignored pixel
    scores = np.zeros((2, 3, 4, 4), np.float32)
    scores[:, 1, :3] = 1.0  # predicts class 1 on three rows: one row too many
    scores[:, 0, 3] = 1.0
    metric, settings = MeanIoU(), MetricSettings()
    result = metric.scores(metric.predictions(scores, settings), labels, settings)
    # class 1: 16 true pixels, 24 predicted, overlap 16 -> 16/24; class 0: 16 true (one ignored: 15), 8 predicted
    # (one ignored: 7), overlap 7 -> 7/15
    assert result["miou"] == pytest.approx((16 / 24 + 7 / 15) / 2)
    assert choose_metric((2, 3, 4, 4), labels, settings).id == "miou"


def _ctc_logits(sequences: list[list[int]], steps: int, classes: int) -> np.ndarray:
    logits = np.full((len(sequences), steps, classes), -5.0, np.float32)
    for row, sequence in enumerate(sequences):
        logits[row, :, 0] = 5.0  # blank everywhere ...
        for step, token in enumerate(sequence):
            logits[row, step, 0] = -5.0
            logits[row, step, token] = 5.0  # ... except where a token is emitted
    return logits


def test_ctc_greedy_decoding_merges_repeats_drops_blanks_and_scores_text():
    # "aab" spelled with a blank between the two a's (index 1 = 'a', 2 = 'b'); repeats without a blank merge
    logits = _ctc_logits([[1, 0, 1, 2, 2], [2, 2, 2], [1]], steps=6, classes=4)
    assert greedy_decode(logits) == [(1, 1, 2), (2,), (1,)]
    settings = MetricSettings(charset=("a", "b"))  # 4 classes = blank + 2 + the implied space
    metric = CtcGreedy()
    predicted = metric.predictions(logits, settings)
    assert metric.texts(predicted, settings) == ["aab", "b", "a"]
    scores = metric.scores(predicted, np.array(["aab", "bb", "x"]), settings)
    assert scores["ctc"] == pytest.approx(1 / 3)
    assert scores["cer"] == pytest.approx((0 + 1 + 1) / 6)
    assert edit_distance("kitten", "sitting") == 3
    other = metric.predictions(_ctc_logits([[1, 0, 1, 2], [2], [2]], steps=6, classes=4), settings)
    assert metric.agreement(predicted, other) == pytest.approx(2 / 3)


def test_ctc_refuses_a_charset_that_does_not_fit_and_text_without_one():
    metric = CtcGreedy()
    logits = _ctc_logits([[1]], steps=2, classes=5)
    with pytest.raises(DatasetError, match="charset has 2 entries but the model's output has 5 classes"):
        metric.scores(
            metric.predictions(logits, MetricSettings(charset=("a", "b"))),
            np.array(["a"]),
            MetricSettings(charset=("a", "b")),
        )
    with pytest.raises(DatasetError, match="--charset"):
        metric.scores(metric.predictions(logits, MetricSettings()), np.array(["a"]), MetricSettings())


def test_the_metric_is_chosen_from_output_shape_and_labels_and_can_be_overridden():
    auto = MetricSettings()
    assert choose_metric((8, 10), np.arange(8), auto).id == "top1"
    assert choose_metric((8, 10, 1, 1), None, auto).id == "top1"
    assert choose_metric((8, 40, 97), np.array(["ab"] * 8), auto).id == "ctc"
    assert choose_metric((8, 40, 97), None, auto).id == "ctc"
    assert choose_metric((8, 32, 1), None, auto) is None  # a streamed score per frame: fidelity only
    assert choose_metric((8, 10), np.arange(8), MetricSettings(metric="fidelity")) is None
    with pytest.raises(DatasetError, match="unknown metric 'bleu'"):
        choose_metric((8, 10), None, MetricSettings(metric="bleu"))
    with pytest.raises(DatasetError, match="mIoU needs a"):
        choose_metric((8, 10), None, MetricSettings(metric="miou"))


def test_fidelity_per_output():
    reference = np.linspace(-1, 1, 100, dtype=np.float32)
    noisy = reference + np.float32(0.01) * np.cos(np.arange(100, dtype=np.float32))
    fidelity = output_fidelity(reference, noisy)
    expected_snr = 10 * np.log10(np.sum(reference.astype(np.float64) ** 2) / np.sum((noisy - reference) ** 2.0))
    assert fidelity.snr_db == pytest.approx(expected_snr, rel=1e-5)
    assert fidelity.max_abs == pytest.approx(float(np.max(np.abs(noisy - reference))))
    assert 0.999 < fidelity.cosine < 1.0
    same = output_fidelity(reference, reference.copy())
    assert same.snr_db is None and same.cosine == pytest.approx(1.0) and same.max_abs == 0.0
    assert output_fidelity(reference, -reference).cosine == pytest.approx(-1.0)
