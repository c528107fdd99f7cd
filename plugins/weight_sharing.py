"""Weight sharing: k-means clusters each layer's weights into a codebook of 2–256 entries, stored for
real as packed indices (UINT4 for up to 16 entries, else UINT8) plus a float32 codebook per layer,
read back by Cast + Gather in a graph onnxruntime runs.

A pruned layer keeps its exact zeros: they get their own 0.0 entry (index 0), and k-means fits the
other entries to the non-zero weights only. Models with a torch lineage can then fine-tune the codebook
entries on the train split (Han et al.'s Deep Compression: each entry moves by the summed gradient of
the weights that share it, the zero entry stays zero).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from pydantic import Field

from workbench.errors import PluginError
from workbench.onnx_prep import check_loads, copy_proto, ensure_opset, strip_initializer_inputs
from workbench.plugin import Plugin, PluginKind, PluginParams, Task
from workbench.weight_codec import (
    bias_slots,
    codebook_opset,
    require_slots,
    store_codebook,
    weight_array,
    weight_slots,
)

if TYPE_CHECKING:
    from workbench.model import Model

FIT_SAMPLE = 20000  # k-means is fit on at most this many weights per layer, then every weight is assigned


class WeightSharingParams(PluginParams):
    clusters: int = Field(
        16,
        ge=2,
        le=256,
        description="codebook entries per layer (≤16: 4-bit indices)",
        json_schema_extra={"search": [4, 64], "shrinks": "down"},
    )
    biases: bool = Field(False, description="cluster the Conv/Gemm bias vectors too (they matter in tiny models)")
    fine_tune_epochs: int = Field(
        0,
        ge=0,
        le=50,
        description="epochs fine-tuning the codebook entries on labelled data (torch models)",
        json_schema_extra={"search": [0, 3], "recovers": "up"},
    )
    fine_tune_lr: float = Field(
        1e-3,
        ge=1e-5,
        le=0.1,
        description="peak learning rate of that fine-tuning (Adam)",
        json_schema_extra={"search": [1e-4, 1e-2]},
    )
    exclude: list[str] = Field(default_factory=list, description="node or weight names to leave untouched")


class WeightSharing(Plugin):
    id = "weight_sharing"
    title = "Weight sharing (k-means)"
    kind = PluginKind.CLUSTER
    formats = frozenset({"onnx"})
    Params = WeightSharingParams
    description = "Cluster each layer's weights into a k-entry codebook, stored as packed indices + codebook."

    def apply(self, model: Model, params: WeightSharingParams, task: Task) -> Model:  # type: ignore[override]
        if params.fine_tune_epochs:
            # The tuned weights take at most k distinct values per layer: the ONNX packing below is exact.
            model = _tuned_codebooks(model, params, task.sub(0.0, 0.8))
            task = task.sub(0.8, 1.0)
        proto = copy_proto(model.to_onnx())
        strip_initializer_inputs(proto)
        proto = ensure_opset(proto, codebook_opset(params.clusters), task.notes)
        slots = require_slots(weight_slots(proto, set(params.exclude)), "cluster")
        if params.biases:
            slots += bias_slots(proto, set(params.exclude))
        for index, slot in enumerate(slots):
            task.check()
            task.report(0.1 + 0.8 * index / len(slots), f"clustering {slot.node or slot.name}")
            indices, codebook = cluster(weight_array(proto, slot.name), params.clusters)
            store_codebook(proto, slot, indices, codebook, params.clusters)
        check_loads(proto, "weight sharing")
        return model.derive(onnx_proto=proto)


def cluster(weight: np.ndarray, clusters: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices (shaped like ``weight``) and a codebook of at most ``clusters`` entries; exact zeros map
    to a 0.0 entry at index 0."""
    from sklearn.cluster import KMeans

    values = weight.ravel().astype(np.float64)
    zeros = values == 0
    fixed = [0.0] if zeros.any() else []
    live = values[~zeros]
    distinct = np.unique(live)
    k = min(clusters - len(fixed), len(distinct))
    if k <= 0:
        centroids = np.zeros(0)
    elif k == len(distinct):
        centroids = distinct
    else:
        rng = np.random.default_rng(0)
        sample = live if len(live) <= FIT_SAMPLE else rng.choice(live, FIT_SAMPLE, replace=False)
        # linear initialisation over the range keeps the rare large weights represented (Han et al.)
        start = np.linspace(sample.min(), sample.max(), k).reshape(-1, 1)
        centroids = KMeans(n_clusters=k, init=start, n_init=1).fit(sample.reshape(-1, 1)).cluster_centers_.ravel()
    codebook = np.concatenate([fixed, np.sort(centroids)]).astype(np.float32)
    indices = np.zeros(values.shape, dtype=np.int64)
    if len(centroids):
        entries = codebook[len(fixed) :].astype(np.float64)  # sorted: the nearest is found by bisection
        nearest = np.searchsorted((entries[:-1] + entries[1:]) / 2, live)
        indices[~zeros] = nearest + len(fixed)
    return indices.reshape(weight.shape), codebook


def _tuned_codebooks(model: Model, params: WeightSharingParams, task: Task) -> Model:
    """Cluster the torch weights, then train only the codebook entries (and unclustered parameters)."""
    from torch import nn
    from torch.nn.utils import parametrize

    from workbench.training import train

    if model.torch_module is None or not isinstance(model.torch_module, nn.Module):
        raise PluginError(
            "fine-tuning the codebook needs the model's torch lineage (a checkpoint or a torch step); "
            "set fine_tune_epochs to 0 to cluster the ONNX graph alone"
        )
    data = task.data("train", "fine-tuning the shared weights (codebook entries)", labels=True)
    module = model.copy_torch_module()
    excluded = set(params.exclude)
    shared = []
    for name, leaf in module.named_modules():
        if not isinstance(leaf, (nn.modules.conv._ConvNd, nn.Linear)) or name in excluded:
            continue
        kinds = ["weight", *(["bias"] if params.biases and leaf.bias is not None else [])]
        shared += [(leaf, kind) for kind in kinds if f"{name}.{kind}" not in excluded]
    for leaf, kind in shared:
        indices, codebook = cluster(getattr(leaf, kind).detach().numpy(), params.clusters)
        parametrize.register_parametrization(leaf, kind, _Codebook(indices, codebook))
    train(module, data.x, labels=data.y, epochs=params.fine_tune_epochs, lr=params.fine_tune_lr, task=task)
    for leaf, kind in shared:
        parametrize.remove_parametrizations(leaf, kind, leave_parametrized=True)
    return model.derive(torch_module=module)


def _codebook_module():
    import torch
    from torch import nn

    class Codebook(nn.Module):
        """A weight read from a trainable codebook by fixed indices; a 0.0 entry at index 0 stays zero."""

        def __init__(self, indices: np.ndarray, codebook: np.ndarray) -> None:
            super().__init__()
            self.register_buffer("index", torch.from_numpy(indices.astype(np.int64)))
            self.codebook = nn.Parameter(torch.from_numpy(codebook.astype(np.float32)))
            if codebook[0] == 0 and bool((indices == 0).any()):
                self.codebook.register_hook(lambda grad: torch.cat([torch.zeros_like(grad[:1]), grad[1:]]))

        def forward(self, _original: torch.Tensor) -> torch.Tensor:
            return self.codebook[self.index]

    return Codebook


def _Codebook(indices: np.ndarray, codebook: np.ndarray):
    return _codebook_module()(indices, codebook)
