"""`python -m clustersweep.cache size|clear`: how much the stage cache holds, or empty it.

The cache (`stages.cache`: fitted reducers with their embeddings, the data's exact bases) makes later runs and
sweeps reuse a fit; it only grows. Clearing it loses no result: a later run fits again what it needs."""

from __future__ import annotations

import argparse

from omegaconf import OmegaConf

from clustersweep.app.cli import start_up
from clustersweep.stages import cache
from clustersweep.tracking.redact import redact
from clustersweep.tracking.store import default_cfg, tracking_uri


def megabytes(n: int) -> str:
    return f"{n / 1e6:,.1f} MB"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m clustersweep.cache", description=__doc__.splitlines()[0])
    parser.add_argument("action", choices=["size", "clear"], help="size: what it holds; clear: empty it")
    parser.add_argument("--tracking-uri", default=None, help="the store whose cache (default: the project's)")
    parser.add_argument("--dir", default=None, help="the cache folder, as `cache.dir` (default: beside the store)")
    args = parser.parse_args(argv)
    start_up()
    uri = args.tracking_uri or tracking_uri(default_cfg())
    folder = cache.cache_dir(OmegaConf.create({"cache": {"dir": args.dir}}), uri)
    held = cache.stored(folder) if folder.is_dir() else {}
    total = sum(size for _, size in held.values())
    parts = ", ".join(f"{n} {kind} {megabytes(size)}" for kind, (n, size) in held.items() if n)
    where = redact(str(folder))
    if args.action == "size":
        print(f"cache {where}: {megabytes(total)}" + (f" ({parts})" if parts else " (empty)"))
        return 0
    if held:
        cache.clear(folder)
    print(f"cache {where}: cleared {megabytes(total)}; later runs fit again what they need")
    return 0
