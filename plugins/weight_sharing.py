"""Weight sharing: k-means clusters each layer's weights into a small codebook (2–256 entries).

The model keeps float weights (each replaced by its centroid) so it runs anywhere. The size reported
is what a codebook + per-weight index would take: k·4 bytes + n·⌈log2 k⌉ bits per layer.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np
from pydantic import Field

from workbench.onnx_prep import check_loads, copy_proto, strip_initializer_inputs
from workbench.plugin import Plugin, PluginKind, PluginParams, Task
from workbench.weight_codec import encode_weights, simulated_note

if TYPE_CHECKING:
    from workbench.model import Model

FIT_SAMPLE = 20000  # k-means is fit on at most this many weights per layer, then every weight is assigned


class WeightSharingParams(PluginParams):
    clusters: int = Field(16, ge=2, le=256, description="codebook entries per layer (16 → 4-bit indices)")
    exclude: list[str] = Field(default_factory=list, description="node or weight names to leave untouched")


class WeightSharing(Plugin):
    id = "weight_sharing"
    title = "Weight sharing (k-means)"
    kind = PluginKind.CLUSTER
    formats = frozenset({"onnx"})
    Params = WeightSharingParams
    description = "Cluster each layer's weights into a k-entry codebook; size reported as codebook + index bits."

    def apply(self, model: Model, params: WeightSharingParams, task: Task) -> Model:  # type: ignore[override]
        from sklearn.cluster import KMeans

        proto = copy_proto(model.to_onnx())
        strip_initializer_inputs(proto)
        bits = math.ceil(math.log2(params.clusters))

        def encode(name: str, weight: np.ndarray) -> tuple[np.ndarray, int]:
            task.check()
            values = weight.reshape(-1, 1).astype(np.float64)
            k = min(params.clusters, len(np.unique(values)))
            rng = np.random.default_rng(0)
            sample = values if len(values) <= FIT_SAMPLE else values[rng.choice(len(values), FIT_SAMPLE, replace=False)]
            kmeans = KMeans(n_clusters=k, n_init=1, random_state=0).fit(sample)
            centroids = kmeans.cluster_centers_.ravel()
            decoded = centroids[kmeans.predict(values)].reshape(weight.shape)
            return decoded, k * 4 + math.ceil(weight.size * bits / 8)

        task.report(0.1, f"clustering weights into {params.clusters} entries")
        task.note(simulated_note(encode_weights(proto, encode, set(params.exclude)), proto))
        check_loads(proto, "weight sharing")
        return model.derive(onnx_proto=proto)
