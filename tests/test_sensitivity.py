"""Per-layer sensitivity sweeps, their proposals, project storage, and mixed-precision int8."""

from __future__ import annotations

from workbench.datasets import load_dataset, mnist_sample_ref
from workbench.loading import load_model
from workbench.plugin import Task, discover_plugins, run_plugin
from workbench.sensitivity import LayerSensitivity, SensitivityReport, sweep


def test_sweep_measures_every_prunable_layer(demo_checkpoint):
    data = load_dataset(mnist_sample_ref("test", limit=200))
    report = sweep(load_model(demo_checkpoint), data, discover_plugins(), samples=200)
    assert report.metric == "top-1 accuracy" and report.samples == 200
    assert [layer.weight for layer in report.layers] == [
        "0.0.weight",
        "0.3.weight",
        "1.1.weight",
        "1.3.weight",
        "1.5.weight",
    ]
    last = report.layers[-1]  # the 10-class output layer is the most fragile at 90 %
    assert last.sparsity_quality["0.9"] < last.sparsity_quality["0.25"]
    assert all(layer.int8_quality is not None and layer.int8_quality > 0.9 for layer in report.layers)


def test_proposals_follow_the_budget():
    report = SensitivityReport(
        metric="accuracy",
        baseline_quality=0.95,
        samples=100,
        layers=[
            LayerSensitivity(
                weight="a", node="A", params=10, sparsity_quality={"0.5": 0.95, "0.9": 0.80}, int8_quality=0.90
            ),
            LayerSensitivity(
                weight="b", node="B", params=10, sparsity_quality={"0.5": 0.94, "0.9": 0.945}, int8_quality=0.95
            ),
        ],
    )
    assert report.propose_overrides(0.01) == {"a": 0.5, "b": 0.9}
    assert report.propose_overrides(0.0) == {"a": 0.5, "b": 0.0}
    assert report.keep_float(0.01) == ["A"] and report.most_sensitive_int8(1) == ["A"]


def test_report_is_kept_with_the_project(tmp_path, demo_checkpoint):
    from workbench.project import Project

    data = load_dataset(mnist_sample_ref("test", limit=100))
    with Project.create(tmp_path / "p", load_model(demo_checkpoint)) as project:
        report = sweep(
            project.load_model(project.root.id),
            data,
            discover_plugins(),
            samples=100,
            sparsities=(0.5,),
            include_int8=False,
        )
        project.save_sensitivity(project.root.id, report)
    with Project.open(tmp_path / "p") as project:
        assert project.sensitivity(project.root.id) == report


def test_mixed_precision_keeps_the_most_sensitive_layers_in_float(demo_checkpoint):
    data = load_dataset(mnist_sample_ref("train", limit=128))
    quantized = run_plugin(
        discover_plugins().get("quantize_int8"),
        load_model(demo_checkpoint),
        {"mode": "static", "keep_most_sensitive": 2},
        Task(calibration=data),
    )
    proto = quantized.to_onnx()
    quantized_inputs = {n.input[0] for n in proto.graph.node if n.op_type == "DequantizeLinear"}
    float_convs = [
        n
        for n in proto.graph.node
        if n.op_type in ("Conv", "Gemm")
        and not (set(n.input[:2]) & {o for m in proto.graph.node if m.op_type == "DequantizeLinear" for o in m.output})
    ]
    assert len(float_convs) >= 2 and quantized_inputs


def test_a_sweep_is_cached_by_model_data_and_options(demo_checkpoint, monkeypatch):
    import workbench.sensitivity as sensitivity

    model, registry = load_model(demo_checkpoint), discover_plugins()
    data = load_dataset(mnist_sample_ref("test", limit=60))
    options = {"samples": 60, "sparsities": (0.5, 0.9), "include_int8": False, "include_int4": False}
    first = sensitivity.cached_sweep(model, data, registry, **options)

    def no_sweep(*args, **kwargs):
        raise AssertionError("swept again")

    monkeypatch.setattr(sensitivity, "sweep", no_sweep)
    assert sensitivity.cached_sweep(model, data, registry, task=Task(), **options) == first  # read, not swept
    other = load_dataset(mnist_sample_ref("test", limit=50))
    for changed in ((other, options), (data, {**options, "sparsities": (0.5,)})):
        try:
            sensitivity.cached_sweep(model, changed[0], registry, **changed[1])
        except AssertionError as exc:
            assert "swept again" in str(exc)  # other data or options: not the cached sweep
        else:
            raise AssertionError("a sweep of other data or options was read from the cache")
