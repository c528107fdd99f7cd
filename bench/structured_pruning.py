"""Measured onnxruntime latency speed-up of structured pruning at about 50 % MAC reduction.

Goal: >= 1.6x. The network is a small VGG-style CNN (the kind structured pruning targets); weights are
random because latency does not depend on their values. Usage: python bench/structured_pruning.py
"""

from __future__ import annotations

import torch
from torch import nn


def vgg_small() -> nn.Module:
    layers, channels = [], 3
    for width in (64, 64, "pool", 128, 128, "pool", 256, 256):
        if width == "pool":
            layers.append(nn.MaxPool2d(2))
            continue
        layers += [nn.Conv2d(channels, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU()]
        channels = width
    return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(channels, 10)).eval()


def main() -> None:
    from workbench.analysis import analyze
    from workbench.evaluate import latency
    from workbench.loading import model_from_module
    from workbench.plugin import discover_plugins, run_plugin

    torch.manual_seed(0)
    shape = (1, 3, 64, 64)
    base = model_from_module(vgg_small(), "vgg-small", shape)
    base_macs = analyze(base).macs
    prune = discover_plugins().get("structured_prune")
    print(f"baseline: {base_macs / 1e6:.1f} M MACs at {'x'.join(map(str, shape))}, onnxruntime 1 thread")
    for ratio in (0.25, 0.3, 0.35):
        pruned = run_plugin(prune, base, {"ratio": ratio, "round_to": 8})
        macs = analyze(pruned).macs
        timed = latency({"base": base.onnx_bytes(), "pruned": pruned.onnx_bytes()}, {"input": shape}, runs=200)
        speedup = timed["base"][0] / timed["pruned"][0]
        print(
            f"ratio {ratio:.2f}: MACs -{1 - macs / base_macs:.0%}, latency {timed['base'][0]:.2f} -> "
            f"{timed['pruned'][0]:.2f} ms median, speed-up {speedup:.2f}x (goal >= 1.6x at ~50 % MACs)"
        )


if __name__ == "__main__":
    main()
