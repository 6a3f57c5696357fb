"""Several objectives at once (`sweep.select_by` a list): the Pareto front of a table of configurations, and the one
rule that picks one of them, used by a grid sweep and a search alike.

- The front: the rows no other row dominates, i.e. is at least as good on every objective and better on one (each
  objective in its own direction). Equal rows are all on it.
- The pick: the front's row with the best mean percentile rank over the objectives, the ranks taken over all the
  rows (ties share their mean rank); a tie is broken by the first objective, then by the table's order.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd


def oriented(df: pd.DataFrame, objectives: Sequence[str], directions: Sequence[str]) -> pd.DataFrame:
    """The objectives' columns, each turned so that higher is better (`minimize` ones negated)."""
    signs = [-1.0 if d == "minimize" else 1.0 for d in directions]
    return df[list(objectives)].astype(float) * signs


def pareto_front(df: pd.DataFrame, objectives: Sequence[str], directions: Sequence[str]) -> pd.Series:
    """True for the rows of `df` on the Pareto front of `objectives` (no missing values expected)."""
    v = oriented(df, objectives, directions).to_numpy()
    # row by row (memory linear in the rows: an experiment's table may hold thousands): is some row at least as
    # good everywhere and better somewhere?
    dominated = [bool(((v >= row).all(axis=1) & (v > row).any(axis=1)).any()) for row in v]
    return pd.Series(~np.array(dominated, dtype=bool), index=df.index)


def mean_rank(df: pd.DataFrame, objectives: Sequence[str], directions: Sequence[str]) -> pd.Series:
    """Each row's percentile rank (1 = the best) in each objective over all the rows, averaged over them."""
    return oriented(df, objectives, directions).rank(pct=True).mean(axis=1).round(12)


def pick(df: pd.DataFrame, objectives: Sequence[str], directions: Sequence[str]) -> Any:
    """The index of the chosen row: on the front, best mean rank, then best first objective, then first listed."""
    front = df[pareto_front(df, objectives, directions)]
    order = pd.DataFrame(
        {
            "rank": mean_rank(df, objectives, directions)[front.index],
            "first": oriented(front, objectives[:1], directions[:1]).iloc[:, 0],
            "position": np.arange(len(front)),
        }
    )
    return order.sort_values(["rank", "first", "position"], ascending=[False, False, True]).index[0]
