"""Cluster ids as the project's estimators take them: whole numbers, -1 for noise."""

from __future__ import annotations

import numpy as np

NOISE = -1


def cluster_ids(values: np.ndarray, what: str) -> np.ndarray:
    """`values` (numbers, checked finite by scikit-learn's validation) as int64 cluster ids. A float that is a whole
    number is that number (1.0 is 1); any other is a ValueError naming it: a cluster id is never truncated."""
    values = np.asarray(values)
    if values.dtype.kind == "f":
        fractional = values[values != np.round(values)]
        if fractional.size:
            raise ValueError(f"{what} must be whole numbers (cluster ids, {NOISE} for noise), got {fractional[0]:g}")
    return values.astype(np.int64)
