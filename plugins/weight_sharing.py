"""Weight sharing: k-means clusters each layer's weights into a codebook of 2–256 entries, stored for
real as packed indices (UINT4 for up to 16 entries, else UINT8) plus a float32 codebook per layer,
read back by Cast + Gather in a graph onnxruntime runs.

A pruned layer keeps its exact zeros: they get their own 0.0 entry (index 0), and k-means fits the
other entries to the non-zero weights only.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from pydantic import Field

from workbench.onnx_prep import check_loads, copy_proto, ensure_opset, strip_initializer_inputs
from workbench.plugin import Plugin, PluginKind, PluginParams, Task
from workbench.weight_codec import codebook_opset, require_slots, store_codebook, weight_array, weight_slots

if TYPE_CHECKING:
    from workbench.model import Model

FIT_SAMPLE = 20000  # k-means is fit on at most this many weights per layer, then every weight is assigned


class WeightSharingParams(PluginParams):
    clusters: int = Field(16, ge=2, le=256, description="codebook entries per layer (≤16: 4-bit indices)")
    exclude: list[str] = Field(default_factory=list, description="node or weight names to leave untouched")


class WeightSharing(Plugin):
    id = "weight_sharing"
    title = "Weight sharing (k-means)"
    kind = PluginKind.CLUSTER
    formats = frozenset({"onnx"})
    Params = WeightSharingParams
    description = "Cluster each layer's weights into a k-entry codebook, stored as packed indices + codebook."

    def apply(self, model: Model, params: WeightSharingParams, task: Task) -> Model:  # type: ignore[override]
        proto = copy_proto(model.to_onnx())
        strip_initializer_inputs(proto)
        proto = ensure_opset(proto, codebook_opset(params.clusters), task.notes)
        slots = require_slots(weight_slots(proto, set(params.exclude)), "cluster")
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
