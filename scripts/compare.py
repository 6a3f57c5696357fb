"""The summary report of a finished sweep or a whole experiment: table in the terminal, CSV and plots on disk.

    python scripts/compare.py --experiment fashion-mnist                 # every run of the experiment
    python scripts/compare.py --experiment fashion-mnist --parent RUN_ID # one sweep (its children; repeat: several)
    python scripts/compare.py --experiment fashion-mnist --metric nmi    # pick the best by another metric
    python scripts/compare.py --experiment fashion-mnist --leaderboard   # best run per reducer × clusterer
    python scripts/compare.py --experiment fashion-mnist --leaderboard --into    # …and into docs/results.md
    python scripts/compare.py --experiment digits --criteria             # which label-free metric picks best

The files go to --out (default mlruns/reports/<experiment>[/<parent>]); the best run is chosen by --metric
(default silhouette, label-free; ARI/NMI/purity are shown beside it for interpretation only). The leaderboard
takes the runs scored in the common space (metrics.space=common) and picks each family's best by a label-free
--metric; it goes to leaderboard.md, and with --into between the leaderboard markers of docs/results.md.
--criteria judges each label-free metric as an objective by the labels of these runs (criteria.md): use it on a
labelled dataset other than the one a search will run on, so that those labels never steer the choice.
"""

from __future__ import annotations

import argparse
import sys
from datetime import date
from pathlib import Path

import pandas as pd
from mlflow.exceptions import MlflowException

from clustersweep.app.cli import start_up
from clustersweep.errors import ConfigError, one_line
from clustersweep.report import markdown, summary, tables
from clustersweep.stages.metrics import CRITERIA, LABEL_FREE
from clustersweep.tracking.redact import redact
from clustersweep.tracking.store import PROJECT_ROOT, default_cfg, reader, tracking_uri

WIDTH = 120  # the terminal table's characters per line; every column is in summary.csv


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--experiment", required=True, help="MLflow experiment name")
    p.add_argument("--parent", action="append", help="a sweep's parent run id: only its jobs (repeat: several sweeps)")
    p.add_argument("--metric", default="silhouette", help="the metric that picks the best run")
    p.add_argument("--ace-index", default="modularity", choices=LABEL_FREE, help="the metric `ace` ranks by")
    p.add_argument("--tracking-uri", default=None, help="default: $MLFLOW_TRACKING_URI or the project's store")
    p.add_argument("--out", type=Path, default=None, help="folder for summary.csv and the HTML plots")
    p.add_argument("--embed-plotlyjs", action="store_true", help="plots that open offline")
    p.add_argument("--leaderboard", action="store_true", help="the best run per method family, as markdown")
    p.add_argument("--criteria", action="store_true", help="how well each label-free metric picks, as markdown")
    p.add_argument(
        "--into",
        nargs="?",
        type=Path,
        const=PROJECT_ROOT / "docs" / "results.md",
        help="with --leaderboard: write it between the leaderboard markers of this file (default docs/results.md)",
    )
    args = p.parse_args()
    start_up()
    if args.leaderboard and args.metric not in CRITERIA:
        print(
            f"error: --metric {args.metric!r} cannot pick a leaderboard: expected one of {', '.join(CRITERIA)}",
            file=sys.stderr,
        )
        return 2
    uri = args.tracking_uri or tracking_uri(default_cfg())
    try:
        client = reader(uri)
        df = (
            tables.sweeps_table(client, args.parent)
            if args.parent
            else tables.experiment_table(client, args.experiment)
        )
        df = tables.with_criteria(client, df, args.ace_index)
    except ConfigError as e:
        print(f"error: {redact(one_line(e))}", file=sys.stderr)
        return 2
    except (MlflowException, ValueError) as e:
        print(f"error: {redact(one_line(e))} (tracking store {redact(uri)})", file=sys.stderr)
        return 2
    if df.empty:
        print(f"error: no runs found in experiment {args.experiment!r}", file=sys.stderr)
        return 2
    if args.metric not in df:
        have = ", ".join(c for c in df.columns if "." not in c and c not in ("run_id", "run_name", "status", "skipped"))
        print(f"error: --metric {args.metric!r} is not logged by these runs; logged: {have}", file=sys.stderr)
        return 2
    out = args.out or PROJECT_ROOT / "mlruns" / "reports" / args.experiment / ("+".join(args.parent or []) or "all")
    if args.leaderboard:
        return write_leaderboard(df, args, out)
    if args.criteria:
        return write_criteria(df, args, out)
    with pd.option_context("display.float_format", "{:.4f}".format):
        text, left_out = tables.fitted(tables.whole_numbers(tables.printable(df, args.metric)), WIDTH)
    print(text + (f"\n({left_out} more columns, and every param, in summary.csv)" if left_out else ""))
    top = tables.best(df, args.metric)
    if top is not None:
        print(
            f"\nbest by {args.metric}: {top.run_name} ({top.run_id}) {args.metric}={top[args.metric]:.4f}"
            + "".join(f", {m}={top[m]:.3f}" for m in ("ari", "nmi", "purity") if m in top and pd.notna(top[m]))
        )
    files = summary.write_report(df, args.metric, out, args.embed_plotlyjs, client)
    print(f"wrote {len(files)} files to {out}")
    return 0


def write_leaderboard(df: pd.DataFrame, args: argparse.Namespace, out: Path) -> int:
    board = tables.leaderboard(df, args.metric)
    if board.empty:
        print(
            f"error: no FINISHED run with metrics.space=common and {args.metric} in {args.experiment!r}",
            file=sys.stderr,
        )
        return 2
    command = f"python scripts/compare.py --experiment {args.experiment} --leaderboard --metric {args.metric}"
    text = (
        f"{markdown.md_table(board)}\n\n*Generated by `{command}` on {date.today()}: each family's best run by"
        f" {args.metric} (label-free, common PCA space); ARI, NMI, purity and Hungarian ACC on the test set.*"
    )
    out.mkdir(parents=True, exist_ok=True)
    (out / "leaderboard.md").write_text(text + "\n")
    print(text)
    if args.into:
        doc = args.into.read_text()
        if BEGIN not in doc or END not in doc.split(BEGIN, 1)[1]:
            print(f"error: {args.into} has no {BEGIN} … {END} block to fill", file=sys.stderr)
            return 2
        before, rest = doc.split(BEGIN, 1)
        args.into.write_text(f"{before}{BEGIN}\n{text}\n{END}{rest.split(END, 1)[1]}")
        print(f"wrote the leaderboard into {args.into}")
    print(f"wrote {out / 'leaderboard.md'}")
    return 0


def write_criteria(df: pd.DataFrame, args: argparse.Namespace, out: Path) -> int:
    table = tables.criteria(df)
    if table.empty:
        print(f"error: fewer than 3 FINISHED runs with a label-free metric in {args.experiment!r}", file=sys.stderr)
        return 2
    scope = f"sweep {' + '.join(args.parent)}" if args.parent else f"experiment {args.experiment}"
    text = (
        f"{markdown.md_table(table)}\n\n*Each label-free metric as the objective over the {scope}: the run it picks,"
        " that run's NMI / Hungarian ACC / ARI on the test set, and how it ranks all the runs against NMI and ACC"
        " (Spearman; 1 = the same order as the labels).*"
    )
    out.mkdir(parents=True, exist_ok=True)
    (out / "criteria.md").write_text(text + "\n")
    print(text)
    print(f"wrote {out / 'criteria.md'}")
    return 0


BEGIN, END = "<!-- leaderboard:begin -->", "<!-- leaderboard:end -->"


if __name__ == "__main__":
    sys.exit(main())
