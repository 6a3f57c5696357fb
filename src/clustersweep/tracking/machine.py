"""What a run's identity cannot cover but its numbers depend on: the CPU, the BLAS and OpenMP libraries and
their thread counts. Floating-point results (K-Means in a whitened space, UMAP) move with them."""

from __future__ import annotations

import functools
import os
import platform
from pathlib import Path

from threadpoolctl import threadpool_info


@functools.cache
def cpu() -> str:
    """The CPU's model name (Linux's /proc/cpuinfo; elsewhere what the platform says)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def libraries() -> list[dict]:
    """The BLAS and OpenMP libraries loaded in this process, once each (numpy and scipy may bring their own)."""
    seen, found = set(), []
    for lib in threadpool_info():
        key = (lib.get("internal_api"), lib.get("version"), lib.get("threading_layer"))
        if key not in seen:
            seen.add(key)
            found.append(lib)
    return found


def tags() -> dict[str, str]:
    """`machine.cpu`, `machine.cores`, `machine.blas` (library, version, threading layer) and `machine.threads`
    (each library's thread count now: within a fit, its `compute.threads` limit)."""
    libs = libraries()
    blas = [
        " ".join(filter(None, (lib["internal_api"], lib.get("version"), lib.get("threading_layer"))))
        for lib in libs
        if lib.get("user_api") == "blas"
    ]
    threads = [f"{lib['internal_api']}={lib['num_threads']}" for lib in libs]
    return {
        "machine.cpu": cpu(),
        "machine.cores": str(os.cpu_count() or "unknown"),
        "machine.blas": "; ".join(sorted(set(blas))) or "none",
        "machine.threads": ", ".join(sorted(set(threads))) or "none",
    }
