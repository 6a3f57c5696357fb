"""The in-process memo of a sweep: runs of one sweep redo work on the same points with other labels (a K or eps
sweep's distance matrix, neighbour lists, k-distance curve, DBSCAN's spanning tree, the reducer's plots). Each kind
keeps its last value or last few values only, keyed by the arrays they came from, so memory holds the current
sweep's and no more. Across processes and sweeps, `cache` (on disk) keeps the stages instead.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from typing import Any, TypeVar

import numpy as np

T = TypeVar("T")


def keep_last(
    kept: dict[bytes, Any], arrays: tuple[np.ndarray, ...], extra: Any, compute: Callable[[], T], size: int = 1
) -> T:
    """compute(), or the value `kept` holds for the same arrays and `extra` (JSON-able settings); `kept` holds the
    `size` values used last."""
    h = hashlib.sha1(json.dumps(extra, sort_keys=True).encode())
    for a in arrays:
        h.update(np.ascontiguousarray(a))
    key = h.digest()
    if key in kept:
        kept[key] = kept.pop(key)  # used last: evicted last
    else:
        while len(kept) >= size:  # old values go before the new one is computed: `size` at a time at most
            kept.pop(next(iter(kept)))
        kept[key] = compute()
    return kept[key]
