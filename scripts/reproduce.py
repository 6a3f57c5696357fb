"""Run a logged configuration again and check that its metrics come out the same.

    python scripts/reproduce.py RUN_ID                 # from the run's logged config.yaml
    python scripts/reproduce.py path/to/config.yaml    # straight from a saved config

Every stage is refitted (the stage cache is off). Prints old vs new metrics side by side (timings are shown but
not compared), and the machine each ran on when they differ (CPU, BLAS: what a run's identity cannot cover).
Exit code: 0 when every metric matches within --tol (relative, and absolute for values near zero); 1 when one
differs on the same CPU and BLAS; 3 when one differs and the run was logged on another CPU or BLAS, which can
explain it (K-Means in a whitened space and UMAP move with the floating point); 2 on bad input.
"""

from __future__ import annotations

import argparse
import math
import sys
import tempfile
from pathlib import Path

from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient
from omegaconf import DictConfig, OmegaConf

from clustersweep.app.cli import USER_ERRORS, start_up
from clustersweep.errors import one_line
from clustersweep.stages.metrics import is_cost
from clustersweep.tasks.cluster import run
from clustersweep.tracking.redact import redact
from clustersweep.tracking.store import default_cfg, reader, tracking_uri

MACHINE = ("machine.cpu", "machine.blas")  # what, when it differs, can explain different numbers


def logged_config(run_id: str, uri: str) -> tuple[DictConfig, dict[str, float], dict[str, str]]:
    """The run's config, metrics and tags."""
    client = reader(uri)
    logged = client.get_run(run_id)
    with tempfile.TemporaryDirectory() as tmp:
        path = client.download_artifacts(run_id, "config.yaml", tmp)
        cfg = OmegaConf.load(path)
    return cfg, dict(logged.data.metrics), dict(logged.data.tags)


def other_machine(logged: dict[str, str], now: dict[str, str]) -> list[str]:
    """The machine tags whose values differ between the logged run and the rerun (a run logged before they were
    recorded differs in none: it cannot say)."""
    return [key for key in MACHINE if key in logged and logged[key] != now.get(key)]


def compare(old: dict[str, float], new: dict[str, float], tol: float) -> list[str]:
    """Print the side-by-side table; returns the metrics but the costs (time, size) that differ."""
    differ = []
    print(f"{'metric':<22}{'logged':>20}{'rerun':>20}  match")
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key), new.get(key)
        timing = is_cost(key)
        same = a is not None and b is not None and math.isclose(a, b, rel_tol=tol, abs_tol=tol)
        if not (timing or same):
            differ.append(key)
        mark = "(cost)" if timing else ("yes" if same else "NO")
        fmt = lambda v: "—" if v is None else f"{v:.10g}"  # noqa: E731
        print(f"{key:<22}{fmt(a):>20}{fmt(b):>20}  {mark}")
    return differ


def verdict(compared: int, differ: list[str], machine: list[str], tol: float) -> tuple[str, int]:
    """The last line and the exit code: reproduced (0), not (1), or not on another CPU or BLAS (3)."""
    if not compared:
        return "reran: a saved config has no logged metrics to compare with (give the run id to compare)", 0
    if not differ:
        return f"reproduced: every metric matches ({compared} compared, tolerance {tol:g}; costs not compared)", 0
    named = ", ".join(differ[:5]) + (", …" if len(differ) > 5 else "")
    line = f"NOT reproduced: {len(differ)} of {compared} metrics differ ({named})"
    if machine:
        return f"{line}; the run was logged on another machine ({', '.join(machine)}), which can explain it", 3
    return f"{line} on the same CPU and BLAS", 1


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("source", help="an MLflow run id, or the path of a saved config.yaml")
    p.add_argument("--tracking-uri", default=None, help="store holding the run (default: the project's)")
    p.add_argument("--tol", type=float, default=1e-9, help="relative/absolute tolerance (default 1e-9)")
    args = p.parse_args()
    start_up()
    uri = args.tracking_uri or tracking_uri(default_cfg())
    try:
        if Path(args.source).is_file():
            cfg, old, tags = OmegaConf.load(args.source), {}, {}
            cfg.tracking.uri = args.tracking_uri or cfg.tracking.get("uri")
        else:
            cfg, old, tags = logged_config(args.source, uri)
            cfg.tracking.uri = uri
        cfg.cache.enabled = False  # refit every stage: a cached embedding would check nothing
        result = run(cfg, tags={"reproduces": args.source})
    except MlflowException as e:
        print(f"error: cannot read run {args.source!r} from {redact(uri)}: {redact(one_line(e))}", file=sys.stderr)
        return 2
    except USER_ERRORS as e:
        print(f"error: {redact(one_line(e))}", file=sys.stderr)
        return 2
    print(f"rerun logged as {result.run_id} ({result.run_name})")
    now = MlflowClient(cfg.tracking.uri).get_run(result.run_id).data.tags
    differ = other_machine(tags, now)
    for key in differ:
        print(f"{key}: logged on {tags[key]!r}, rerun on {now.get(key)!r}")
    different = compare(old, result.metrics, args.tol) if old else []
    compared = len([k for k in set(old) | set(result.metrics) if not is_cost(k)]) if old else 0
    line, code = verdict(compared, different, differ, args.tol)
    print(line)
    return code


if __name__ == "__main__":
    sys.exit(main())
