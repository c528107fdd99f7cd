"""The demo's promises and the CLI's info/eval output on the demo model and a real third-party model."""

from __future__ import annotations

from workbench.cli import main
from workbench.demo import comparison_rows, run_demo


def test_demo_prunes_measures_and_replays(tmp_path, demo_checkpoint, monkeypatch):
    import workbench.demo as demo

    monkeypatch.setattr(demo, "demo_checkpoint_path", lambda: demo_checkpoint)
    result = run_demo(tmp_path / "demo", runs=20)
    base, pruned = result.baseline.metrics, result.pruned.metrics
    assert base.accuracy > 0.93  # a real model, really trained
    assert base.zip_bytes / pruned.zip_bytes >= 5.0  # 90 % sparsity is a real saving once zipped
    assert pruned.sparsity > 0.88 and pruned.accuracy is not None and pruned.agreement is not None
    assert result.replay_identical
    rows = comparison_rows([result.baseline, result.pruned])
    assert rows[0][1] == "accuracy" and rows[1][1].endswith("%")
    result.project.close()


def test_info_on_the_demo_model(demo_checkpoint, capsys):
    assert main(["info", str(demo_checkpoint)]) == 0
    out = capsys.readouterr().out
    assert "architecture lenet5" in out and "input=1x1x28x28 (model)" in out
    assert "Conv2d" in out and "params     61,706" in out and "MACs       416,520" in out


def test_info_on_a_third_party_model_with_dynamic_dims(paddle_cls_onnx, capsys):
    assert main(["info", str(paddle_cls_onnx), "--input-shape", "1,3,48,192", "--limit", "5"]) == 0
    out = capsys.readouterr().out
    assert "x: float32[?x3x?x?]" in out or "x: float32[" in out
    assert "x=1x3x48x192 (user)" in out and "opset ai.onnx 11" in out and "producer PaddlePaddle" in out
    assert "more layers" in out and "peak act." in out


def test_eval_prints_labeled_measurements(demo_onnx, capsys):
    assert (
        main(
            [
                "eval",
                str(demo_onnx),
                "--data",
                "mnist-sample",
                "--limit",
                "200",
                "--runs",
                "5",
                "--baseline",
                str(demo_onnx),
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "measured on" in out and "accuracy" in out and "agreement 100.00%" in out
    assert "identical outputs" in out and "latency      median" in out
