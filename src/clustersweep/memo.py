"""The in-process memo of a sweep: runs of one sweep redo work on the same points with other labels (a K or eps
sweep's distance matrix, neighbour lists, k-distance curve, the reducer's plots). Each kind keeps its last value
only, keyed by the arrays it came from, so memory holds the current sweep's and no more. Across processes and
sweeps, `cache` (on disk) keeps the stages instead.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from typing import Any, TypeVar

import numpy as np

T = TypeVar("T")


def keep_last(kept: dict[bytes, Any], arrays: tuple[np.ndarray, ...], extra: Any, compute: Callable[[], T]) -> T:
    """compute(), or the value `kept` holds for the same arrays and `extra` (JSON-able settings)."""
    h = hashlib.sha1(json.dumps(extra, sort_keys=True).encode())
    for a in arrays:
        h.update(np.ascontiguousarray(a))
    key = h.digest()
    if key not in kept:
        kept.clear()  # the old value goes before the new one is computed: one at a time
        kept[key] = compute()
    return kept[key]
