"""The summary report of a finished sweep or a whole experiment: table in the terminal, CSV and plots on disk.

    python scripts/compare.py --experiment fashion-mnist                 # every run of the experiment
    python scripts/compare.py --experiment fashion-mnist --parent RUN_ID # one sweep (its children)
    python scripts/compare.py --experiment fashion-mnist --metric nmi    # pick the best by another metric

The files go to --out (default mlruns/reports/<experiment>[/<parent>]); the best run is chosen by --metric
(default silhouette, label-free; ARI/NMI/purity are shown beside it for interpretation only).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from clustersweep import summary, tracking
from clustersweep.cli import one_line


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--experiment", required=True, help="MLflow experiment name")
    p.add_argument("--parent", help="a sweep's parent run id: only its jobs")
    p.add_argument("--metric", default="silhouette", help="the metric that picks the best run")
    p.add_argument("--tracking-uri", default=None, help="default: $MLFLOW_TRACKING_URI or the project's store")
    p.add_argument("--out", type=Path, default=None, help="folder for summary.csv and the HTML plots")
    p.add_argument("--embed-plotlyjs", action="store_true", help="plots that open offline")
    args = p.parse_args()
    uri = args.tracking_uri or tracking.tracking_uri(tracking.default_cfg())
    client = MlflowClient(uri)
    try:
        df = (
            summary.sweep_table(client, args.parent)
            if args.parent
            else summary.experiment_table(client, args.experiment)
        )
    except (MlflowException, ValueError) as e:
        print(f"error: {one_line(e)} (tracking store {uri})", file=sys.stderr)
        return 2
    if df.empty:
        print(f"error: no runs found in experiment {args.experiment!r}", file=sys.stderr)
        return 2
    if args.metric not in df:
        have = ", ".join(c for c in df.columns if "." not in c and c not in ("run_id", "run_name", "status", "skipped"))
        print(f"error: --metric {args.metric!r} is not logged by these runs; logged: {have}", file=sys.stderr)
        return 2
    out = args.out or tracking.PROJECT_ROOT / "mlruns" / "reports" / args.experiment / (args.parent or "all")
    with pd.option_context(
        "display.width",
        200,
        "display.max_columns",
        30,
        "display.max_rows",
        500,
        "display.float_format",
        "{:.4f}".format,
    ):
        print(summary.printable(df, args.metric).to_string())
    top = summary.best(df, args.metric)
    if top is not None:
        print(
            f"\nbest by {args.metric}: {top.run_name} ({top.run_id}) {args.metric}={top[args.metric]:.4f}"
            + "".join(f", {m}={top[m]:.3f}" for m in ("ari", "nmi", "purity") if m in top and pd.notna(top[m]))
        )
    files = summary.write_report(df, args.metric, out, args.embed_plotlyjs, client)
    print(f"wrote {len(files)} files to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
