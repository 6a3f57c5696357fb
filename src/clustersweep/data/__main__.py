"""`python -m clustersweep.data fetch [--path DIR]`: check Fashion-MNIST's files, or get them, before a first run
(into DIR: then `dataset.path=DIR` reads them from there)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from omegaconf import OmegaConf

from clustersweep.data.dataset import build_loader
from clustersweep.errors import ConfigError, DataError, one_line
from clustersweep.paths import CONF_DIR


def main(argv: list[str] | None = None) -> int:
    """`python -m clustersweep.data fetch [--path DIR]`: get Fashion-MNIST in place before the first sweep."""
    parser = argparse.ArgumentParser(prog="python -m clustersweep.data", description=main.__doc__)
    parser.add_argument("command", choices=["fetch"])
    parser.add_argument(
        "--path",
        type=Path,
        help="put the four .gz files in this folder (copied from the cache or the system path, or downloaded),"
        " to use as dataset.path — a shared folder for a cluster's nodes, say",
    )
    args = parser.parse_args(argv)
    try:
        cfg = OmegaConf.load(CONF_DIR / "dataset" / "fashion_mnist.yaml")
        folder = build_loader(cfg).fetch(into=args.path)
    except (DataError, ConfigError, OSError) as e:
        print(f"error: {one_line(e)}", file=sys.stderr)
        return 1
    print(f"{cfg.name} data is ready in {folder}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
