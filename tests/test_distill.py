"""Distillation trains a real, smaller student from the teacher's outputs, with or without labels."""

from __future__ import annotations

import pytest

from workbench.analysis import analyze
from workbench.datasets import Dataset, load_dataset, mnist_sample_ref
from workbench.errors import PluginError
from workbench.evaluate import measure
from workbench.loading import load_model
from workbench.plugin import Task, discover_plugins, run_plugin


@pytest.fixture(scope="module")
def data():
    return load_dataset(mnist_sample_ref("train")), load_dataset(mnist_sample_ref("test", limit=500))


def test_half_width_student_learns_from_the_teacher(demo_checkpoint, data):
    train, test = data
    teacher = load_model(demo_checkpoint)
    losses: list[float] = []
    student = run_plugin(
        discover_plugins().get("distill"),
        teacher,
        {"student": "width", "width": 0.5, "epochs": 6},
        Task(train=train, on_metric=lambda name, value: losses.append(value)),
    )
    assert student.arch.name == "lenet5" and student.arch.kwargs["width"] == 0.5
    assert analyze(student).params < 0.3 * analyze(teacher).params
    assert len(losses) == 6 and losses[-1] < losses[0] / 5  # the loss curve that streams to the GUI
    metrics = measure(student, baseline=teacher, dataset=test, runs=0)
    assert metrics.accuracy > 0.88


def test_unlabelled_data_uses_soft_labels_only(demo_checkpoint, data):
    train, test = data
    unlabelled = Dataset(train.ref, train.x, None)
    student = run_plugin(
        discover_plugins().get("distill"),
        load_model(demo_checkpoint),
        {"student": "ds_cnn", "width": 0.5, "epochs": 3, "samples": 2000},
        Task(train=unlabelled),
    )
    assert student.arch.name == "ds_cnn"
    assert measure(student, baseline=load_model(demo_checkpoint), dataset=test, runs=0).agreement > 0.3


def test_distillation_without_data_is_a_clear_error(demo_checkpoint):
    with pytest.raises(PluginError, match="distillation needs the train split"):
        run_plugin(discover_plugins().get("distill"), load_model(demo_checkpoint), {})
