"""Mixing groups of samples (stage-1 sources, stage-2 tasks) by weights, exactly and smoothly.

- `plan_counts`: how many samples each group contributes. With weights, the shares are exact at any
  scale: by default the largest total that no group must repeat for (so nothing is upsampled and the
  mix is still the configured one); with an explicit total, small groups repeat (counted as epochs).
  Without weights (`None`) every sample is used once.
- `choose`: which samples of a group, a seeded uniform subset kept in file order so readers stream.
- `interleave`: the output order. Group g's i-th sample sits at position (i + u_g) / n_g (u_g a seeded
  offset in [0, 1)); merging those streams spreads every group evenly through the output, so any
  prefix of the shards holds the configured mix. Streamed with a heap: O(groups) memory.
"""

from __future__ import annotations

import heapq
import math
import random
from collections.abc import Iterator, Mapping

from ..errors import UsageError


def shares(weights: Mapping[str, float], groups) -> dict[str, float]:
    """Normalised weights of the groups present (a group without a weight is a usage error)."""
    missing = sorted(g for g in groups if g not in weights)
    if missing:
        raise UsageError(f"no mixing weight for {', '.join(missing)}; add it to the config's weights")
    bad = sorted(g for g in groups if not isinstance(weights[g], (int, float)) or weights[g] < 0)
    if bad:
        raise UsageError(f"mixing weight of {', '.join(bad)} must be a number >= 0")
    total = sum(float(weights[g]) for g in groups)
    if total <= 0:
        raise UsageError(f"the mixing weights of {', '.join(sorted(groups))} sum to 0")
    return {g: float(weights[g]) / total for g in groups}


def largest_remainder(total: int, share: Mapping[str, float]) -> dict[str, int]:
    """Integer counts summing to `total` in the given proportions (ties by group name)."""
    raw = {g: total * p for g, p in share.items()}
    counts = {g: int(math.floor(v)) for g, v in raw.items()}
    left = total - sum(counts.values())
    for g in sorted(raw, key=lambda g: (-(raw[g] - counts[g]), g))[:left]:
        counts[g] += 1
    return counts


def plan_counts(
    available: Mapping[str, int], weights: Mapping[str, float] | None, total: int | None = None
) -> dict[str, int]:
    present = [g for g, n in available.items() if n > 0]
    if weights is None:
        return {g: int(available[g]) for g in available}
    share = shares(weights, present)
    if total is None:
        # the largest total for which every group's share fits in what it has
        total = (
            min(int(math.floor(available[g] / p + 1e-9)) for g, p in share.items() if p > 0)
            if any(p > 0 for p in share.values())
            else 0
        )
        counts = largest_remainder(total, share)
        while any(counts[g] > available[g] for g in counts):  # float edge: shrink until it fits
            total -= 1
            counts = largest_remainder(total, share)
    else:
        counts = largest_remainder(int(total), share)
    return {g: counts.get(g, 0) for g in available}


def choose(n_available: int, n: int, rng: random.Random) -> list[int]:
    """Indices of the chosen samples in file order; beyond n_available the group repeats (epochs)."""
    full, rest = divmod(n, n_available) if n_available else (0, 0)
    picked = list(range(n_available)) * full
    picked += sorted(rng.sample(range(n_available), rest)) if rest else []
    return picked


def interleave(counts: Mapping[str, int], seed: int) -> Iterator[str]:
    """Yield group names, each `counts[g]` times, evenly spread (see module docstring)."""
    rng = random.Random(seed)
    heap = []
    for g in sorted(counts):
        if counts[g] > 0:
            u = rng.random()
            heap.append((u / counts[g], g, 0, u))
    heapq.heapify(heap)
    while heap:
        _, g, i, u = heapq.heappop(heap)
        yield g
        if i + 1 < counts[g]:
            heapq.heappush(heap, ((i + 1 + u) / counts[g], g, i + 1, u))
