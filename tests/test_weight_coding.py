"""Weight sharing (k-means) and low-bit weights: the codebook/levels are real, the packed size is a
note labelled as an analysis (the file holds float32), and accuracy is measured, not assumed."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest
from onnx import numpy_helper

from workbench.datasets import load_dataset, mnist_sample_ref
from workbench.evaluate import measure
from workbench.loading import load_model
from workbench.plugin import Task, discover_plugins, run_plugin


@pytest.fixture(scope="module")
def setup(demo_checkpoint):
    model = load_model(demo_checkpoint)
    return model, model.derive(onnx_proto=model.to_onnx()), load_dataset(mnist_sample_ref("test", limit=300))


def _weights(model):
    return {i.name: numpy_helper.to_array(i) for i in model.to_onnx().graph.initializer}


def test_kmeans_codebook_has_k_values_per_layer_and_reports_index_bits(setup):
    model, baseline, data = setup
    task = Task()
    shared = run_plugin(discover_plugins().get("weight_sharing"), model, {"clusters": 16}, task)
    weights = _weights(shared)
    assert len(np.unique(weights["1.1.weight"])) <= 16 and len(np.unique(weights["0.0.weight"])) <= 16
    np.testing.assert_array_equal(weights["1.1.bias"], _weights(baseline)["1.1.bias"])
    metrics = measure(shared, baseline=baseline, dataset=data, runs=0)
    prunable = sum(w.size for n, w in _weights(baseline).items() if n.endswith("weight"))
    dense_rest = sum(w.nbytes for n, w in _weights(baseline).items() if not n.endswith("weight"))
    packed = int(re.search(r"about ([\d,]+) B", task.notes[0]).group(1).replace(",", ""))
    assert packed == pytest.approx(prunable * 4 / 8 + 5 * 16 * 4 + dense_rest, abs=10)
    assert "simulated" in task.notes[0] and not hasattr(metrics, "packed_weight_bytes")
    assert metrics.artifact_bytes >= measure(baseline, runs=0).artifact_bytes * 0.95  # the file is no smaller
    assert metrics.agreement > 0.95


@pytest.mark.parametrize(("bits", "min_agreement"), [(4, 0.95), (2, 0.5), (1, 0.2)])
def test_low_bit_levels_and_honest_accuracy(setup, bits, min_agreement):
    model, baseline, data = setup
    task = Task()
    coded = run_plugin(discover_plugins().get("low_bit_weights"), model, {"bits": bits}, task)
    fc1 = _weights(coded)["1.1.weight"]
    levels_per_row = max(len(np.unique(row)) for row in fc1)
    assert levels_per_row <= (2 if bits == 1 else 2**bits - 1)
    metrics = measure(coded, baseline=baseline, dataset=data, runs=0)
    assert metrics.agreement >= min_agreement  # reported as measured, whatever it is
    packed = int(re.search(r"about ([\d,]+) B", task.notes[0]).group(1).replace(",", ""))
    assert packed < measure(baseline, runs=0).artifact_bytes * bits / 32 * 1.5 + 2000
    assert math.isfinite(metrics.snr_db)
