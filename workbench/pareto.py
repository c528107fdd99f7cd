"""Pareto front of variants: smaller cost (size or latency) and higher quality (accuracy) both win."""

from __future__ import annotations

from collections.abc import Sequence


def pareto_front(points: Sequence[tuple[str, float, float]]) -> list[str]:
    """Ids of the points no other point beats on both cost (lower) and quality (higher), by cost."""
    front: list[tuple[str, float, float]] = []
    best_quality = float("-inf")
    for point_id, cost, quality in sorted(points, key=lambda p: (p[1], -p[2])):
        if quality > best_quality:
            front.append((point_id, cost, quality))
            best_quality = quality
    return [p[0] for p in front]
