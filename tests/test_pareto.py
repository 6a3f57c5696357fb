"""Several objectives: the Pareto front of a table and the one rule that picks among it, on tables whose answer is
known by hand."""

from __future__ import annotations

import pandas as pd
import pytest

from clustersweep.config.resolvers import direction
from clustersweep.report import pareto, tables

# silhouette: higher is better; davies_bouldin: lower is better.
POINTS = pd.DataFrame(
    {
        "silhouette": [0.50, 0.40, 0.30, 0.50, 0.20, 0.45],
        "davies_bouldin": [1.00, 0.60, 0.50, 1.20, 0.40, 0.80],
    },
    index=list("abcdef"),
)
BOTH, DIRECTIONS = ["silhouette", "davies_bouldin"], ["maximize", "minimize"]


def test_the_front_is_the_points_no_other_is_at_least_as_good_as_everywhere_and_better_somewhere():
    front = pareto.pareto_front(POINTS, BOTH, DIRECTIONS)
    # d: as good a silhouette as a, a worse Davies–Bouldin: dominated by a. Every other point trades one for the other.
    assert front[front].index.tolist() == ["a", "b", "c", "e", "f"]
    assert not pareto.pareto_front(POINTS, BOTH, ["maximize", "maximize"])["e"]  # the direction matters: b beats e


def test_equal_points_are_all_on_the_front_and_a_tie_goes_to_the_first_objective():
    twins = pd.DataFrame({"silhouette": [0.5, 0.5, 0.1], "davies_bouldin": [1.0, 1.0, 2.0]})
    assert pareto.pareto_front(twins, BOTH, DIRECTIONS).tolist() == [True, True, False]
    assert pareto.pick(twins, BOTH, DIRECTIONS) == 0  # the same everywhere: the first listed
    # x and y have the same mean rank (1 and 0.5 against 0.5 and 1): the better silhouette wins, wherever it stands
    swap = pd.DataFrame({"silhouette": [0.4, 0.6], "davies_bouldin": [0.5, 0.9]}, index=["x", "y"])
    assert pareto.mean_rank(swap, BOTH, DIRECTIONS).tolist() == [0.75, 0.75]
    assert pareto.pick(swap, BOTH, DIRECTIONS) == "y"
    assert pareto.pick(swap, ["davies_bouldin", "silhouette"], ["minimize", "maximize"]) == "x"


def test_the_pick_is_the_fronts_best_mean_percentile_rank_over_all_the_rows():
    ranks = pareto.mean_rank(POINTS, BOTH, DIRECTIONS)
    # silhouette ranks (pct, ties averaged): a, d 11/12; f 4/6; b 3/6; c 2/6; e 1/6. Davies–Bouldin's, reversed:
    # e 1; c 5/6; b 4/6; f 3/6; a 2/6; d 1/6.
    assert ranks.round(4).to_dict() == pytest.approx(
        {"a": 0.625, "b": 0.5833, "c": 0.5833, "d": 0.5417, "e": 0.5833, "f": 0.5833}, abs=1e-4
    )
    assert pareto.pick(POINTS, BOTH, DIRECTIONS) == "a"
    # without a, d joins the front (no silhouette beats its own) and all five tie at a mean rank of 0.6: d has the
    # best silhouette of them; without d too, f does
    rest = POINTS.drop(index="a")
    assert pareto.pareto_front(rest, BOTH, DIRECTIONS).all() and set(pareto.mean_rank(rest, BOTH, DIRECTIONS)) == {0.6}
    assert pareto.pick(rest, BOTH, DIRECTIONS) == "d"
    assert pareto.pick(rest.drop(index="d"), BOTH, DIRECTIONS) == "f"
    # a dominated point may rank well, yet is never picked
    dominated = pd.DataFrame({"silhouette": [0.9, 0.8, 0.1], "davies_bouldin": [0.1, 0.2, 9.0]}, index=list("pqr"))
    assert pareto.pareto_front(dominated, BOTH, DIRECTIONS).tolist() == [True, False, False]
    assert pareto.pick(dominated, BOTH, DIRECTIONS) == "p"


def test_one_objective_picks_its_best_value():
    assert pareto.pick(POINTS, ["davies_bouldin"], ["minimize"]) == "e"
    assert pareto.pick(POINTS, ["silhouette"], ["maximize"]) == "a"  # a and d tie: the first


def test_a_sweeps_best_by_several_objectives_is_the_pick_over_its_finished_configurations():
    """The table of a sweep: a failed and a degenerate run never count; replicates count as one configuration,
    their means; the front marks every replicate of its configurations."""
    runs = pd.DataFrame(
        {
            "run_id": ["r1", "r2", "r3", "r4", "r5", "r6", "r7"],
            "run_name": ["a42", "a43", "b", "c", "d", "e", "f"],
            "status": ["FINISHED"] * 5 + ["FAILED", "FINISHED"],
            "degenerate": [None] * 6 + ["one cluster"],
            "group": ["a", "a", None, None, None, None, None],
            "seed": [42, 43, 42, 42, 42, 42, 42],
            "silhouette": [0.6, 0.4, 0.40, 0.30, 0.50, 0.99, 0.99],
            "davies_bouldin": [0.9, 1.1, 0.60, 0.50, 1.20, 0.01, 0.01],
        }
    )
    assert [direction(m) for m in BOTH] == DIRECTIONS
    top = tables.best(runs, BOTH)  # a's means (0.5, 1.0) as in POINTS, with b, c and d
    assert top.run_id == "r1" and top.silhouette == pytest.approx(0.5)
    on = tables.front(runs, BOTH)
    assert on.run_name.tolist()[0] == "a42" and sorted(on.run_name) == ["a42", "b", "c"]
    marked = tables.with_front(runs, BOTH)
    assert marked.loc[marked.pareto_front, "run_name"].tolist() == ["a42", "a43", "b", "c"]
    assert tables.best(runs, ["silhouette"]).run_id == "r1" and tables.best(runs, "silhouette").run_id == "r1"
    assert tables.best(runs, ["silhouette", "modularity"]) is None  # no run has modularity
