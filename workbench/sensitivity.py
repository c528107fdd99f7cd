"""Per-layer sensitivity: quality against sparsity, and against int8 and int4 weights, for each layer alone.

Quality is top-1 accuracy when the data has labels, else top-1 agreement with the unmodified model.
The sweep turns into proposals for an accuracy budget: per-layer pruning ratios (magnitude pruning
overrides), the layers to keep in float when quantizing, and a precision per layer (mixed precision).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
from pydantic import BaseModel, Field

from workbench.datasets import Dataset
from workbench.evaluate import QualityProbe
from workbench.metrics import MetricSettings
from workbench.plugin import PluginRegistry, Task, run_plugin

if TYPE_CHECKING:
    from workbench.model import Model

DEFAULT_SPARSITIES = (0.25, 0.5, 0.75, 0.9)


class LayerSensitivity(BaseModel):
    weight: str = Field(description="the weight tensor (magnitude-pruning override key)")
    node: str = Field(description="the node that uses it (quantization exclude key)")
    params: int
    sparsity_quality: dict[str, float] = Field(description="sparsity → quality with only this layer pruned")
    int8_quality: float | None = Field(None, description="quality with only this layer's weights in int8")
    int4_quality: float | None = Field(None, description="quality with only this layer's weights in int4")


class SensitivityReport(BaseModel):
    metric: str = Field(description="what quality is: the metric against labels, agreement, or cosine similarity")
    baseline_quality: float
    samples: int
    layers: list[LayerSensitivity]

    def propose_overrides(self, budget: float) -> dict[str, float]:
        """Per layer, the highest swept sparsity whose quality drop stays within ``budget`` (e.g. 0.01)."""
        proposal = {}
        for layer in self.layers:
            allowed = [float(s) for s, q in layer.sparsity_quality.items() if self.baseline_quality - q <= budget]
            proposal[layer.weight] = max(allowed, default=0.0)
        return proposal

    def allocate_sparsity(self, target: float) -> dict[str, float]:
        """Per-layer ratios whose weighted mean is ``target``: greedily raise the layer whose next swept
        level costs the least quality per weight removed (the most redundant layers go furthest)."""
        levels = {
            layer.weight: [
                (0.0, self.baseline_quality),
                *sorted((float(s), q) for s, q in layer.sparsity_quality.items()),
            ]
            for layer in self.layers
        }
        sizes = {layer.weight: layer.params for layer in self.layers}
        position = dict.fromkeys(levels, 0)
        needed = target * sum(sizes.values())
        last = None

        def removed() -> float:
            return sum(levels[w][position[w]][0] * sizes[w] for w in levels)

        while removed() < needed:
            options = []
            for weight, curve in levels.items():
                if position[weight] + 1 < len(curve):
                    (s0, q0), (s1, q1) = curve[position[weight]], curve[position[weight] + 1]
                    options.append(((q0 - q1) / ((s1 - s0) * sizes[weight]), weight))
            if not options:
                break
            last = min(options)[1]
            position[last] += 1
        ratios = {w: levels[w][position[w]][0] for w in levels}
        overshoot = removed() - needed
        if overshoot > 0 and last is not None:  # take the last raise back in part: the mean is the target
            ratios[last] = max(0.0, ratios[last] - overshoot / sizes[last])
        return ratios

    def keep_float(self, budget: float) -> list[str]:
        """Nodes whose int8 weights alone cost more than ``budget``: keep them in float."""
        return [
            layer.node
            for layer in self.layers
            if layer.int8_quality is not None and self.baseline_quality - layer.int8_quality > budget
        ]

    def propose_precisions(self, budget: float) -> dict[str, str]:
        """Per layer (node): int4 where its int4 weights alone cost at most ``budget``, else int8 where
        int8 does, else float. Layers not swept are left out (the plugin's default applies)."""
        proposal = {}
        for layer in self.layers:
            if layer.int4_quality is not None and self.baseline_quality - layer.int4_quality <= budget:
                proposal[layer.node] = "int4"
            elif layer.int8_quality is not None and self.baseline_quality - layer.int8_quality <= budget:
                proposal[layer.node] = "int8"
            elif layer.int8_quality is not None:
                proposal[layer.node] = "float"
        return proposal

    def most_sensitive_int8(self, count: int) -> list[str]:
        measured = [layer for layer in self.layers if layer.int8_quality is not None]
        return [layer.node for layer in sorted(measured, key=lambda layer: layer.int8_quality)[:count]]


def sweep(
    model: Model,
    dataset: Dataset,
    registry: PluginRegistry,
    *,
    sparsities: Sequence[float] = DEFAULT_SPARSITIES,
    include_int8: bool = True,
    include_int4: bool = True,
    samples: int = 256,
    task: Task | None = None,
    scoring: MetricSettings | None = None,
    use_labels: bool = True,
) -> SensitivityReport:
    """Per layer: quality after pruning it to each sparsity and after quantizing it alone. Quality is
    the metric's score against labels, or (``use_labels`` off, or none) agreement with the model."""
    task = task or Task()
    onnx_model = model.derive(onnx_proto=model.to_onnx())
    quality = QualityProbe(onnx_model, dataset, scoring, samples, use_labels=use_labels)
    baseline_quality = quality.baseline
    layers = _prunable_layers(onnx_model)
    prune = registry.get("magnitude_prune")
    quantize = registry.get("quantize_int8") if include_int8 and "quantize_int8" in registry.plugins else None
    int4 = registry.get("quantize_int4") if include_int4 and "quantize_int4" in registry.plugins else None
    results = []
    steps = max(len(layers) * (len(sparsities) + (1 if quantize else 0) + (1 if int4 else 0)), 1)
    done = 0
    all_weights = [weight for weight, _node, _params in layers]
    for weight, node, params in layers:
        curve = {}
        for sparsity in sparsities:
            task.report(done / steps, f"{node}: sparsity {sparsity:.0%}")
            pruned = run_plugin(prune, onnx_model, {"sparsity": 0.0, "overrides": {weight: sparsity}})
            curve[f"{sparsity:g}"] = quality(pruned)
            done += 1
        int8_quality = None
        if quantize is not None:
            task.report(done / steps, f"{node}: int8 weights")
            others = [w for w in all_weights if w != weight]  # by weight: subgraph nodes are excluded too
            quantized = run_plugin(
                quantize, onnx_model, {"mode": "weight_only", "simplify_first": False, "exclude": others}
            )
            int8_quality = quality(quantized)
            done += 1
        int4_quality = None
        if int4 is not None:
            task.report(done / steps, f"{node}: int4 weights")
            others = [w for w in all_weights if w != weight]
            int4_quality = quality(run_plugin(int4, onnx_model, {"exclude": others}))
            done += 1
        results.append(
            LayerSensitivity(
                weight=weight,
                node=node,
                params=params,
                sparsity_quality=curve,
                int8_quality=int8_quality,
                int4_quality=int4_quality,
            )
        )
    task.report(1.0, "sensitivity sweep done")
    return SensitivityReport(
        metric=quality.name,
        baseline_quality=baseline_quality,
        samples=min(samples, len(dataset)),
        layers=results,
    )


def cached_sweep(model: Model, dataset: Dataset, registry: PluginRegistry, **options: Any) -> SensitivityReport:
    """:func:`sweep`, kept in the user's cache by what decides its result (the model's bytes, the data's and
    the options): a search asks for the same model's sweep in trial after trial. Nothing in the cache is run,
    only read as JSON; a damaged entry is swept again."""
    import hashlib
    import json

    from pydantic import ValidationError

    from workbench.fileio import atomic_write_text
    from workbench.settings import cache_dir

    task = options.pop("task", None)  # how progress is shown does not change the result
    digest = hashlib.sha256(model.to_onnx().SerializeToString(deterministic=True))
    for array in (dataset.x, dataset.y, *dataset.inputs.values()):
        if array is not None:
            digest.update(np.ascontiguousarray(array).tobytes())
    digest.update(json.dumps(options, sort_keys=True, default=str).encode())
    path = cache_dir() / "sensitivity" / f"{digest.hexdigest()[:32]}.json"
    if path.is_file():
        try:
            return SensitivityReport.model_validate_json(path.read_bytes())
        except (OSError, ValidationError):
            pass
    report = sweep(model, dataset, registry, task=task, **options)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, report.model_dump_json())
    return report


def _prunable_layers(model: Model) -> list[tuple[str, str, int]]:
    """(weight name, node name, weight count) for every Conv/Gemm/MatMul weight, in the main graph and
    inside If/Loop/Scan subgraphs (a streaming model keeps all of its layers in a branch)."""
    from workbench.weight_codec import weight_slots

    return [(slot.name, slot.node, math.prod(slot.shape)) for slot in weight_slots(model.to_onnx())]
