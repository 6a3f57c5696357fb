"""Sweeps: parent/child runs, failures that do not stop the sweep, resume, parallel jobs, summary, cache."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import WAIT, python, read_until, run_py, runs, start_run_py

from clustersweep.stages.metrics import is_cost

GRID = [
    "dataset=synthetic",
    "reducer=pca,svd",
    "reducer.k=4,8",
    "clusterer.K=3",
    "clusterer.n_init=2",
    "metrics.silhouette_sample_size=200",
    "plots.scatter_points=100",
]


def sweep_runs(store: str, experiment: str = "synthetic"):
    client, found = runs(store, experiment)
    parents = [r for r in found if "sweep.overrides" in r.data.tags]
    children = [r for r in found if "mlflow.parentRunId" in r.data.tags]
    return client, parents, children


def test_grid_sweep_makes_a_parent_with_named_children_and_a_summary(store):
    res = run_py("-m", *GRID, store=store)
    assert res.returncode == 0, res.stderr
    client, (parent,), children = sweep_runs(store)
    assert parent.info.status == "FINISHED"
    assert "reducer=pca,svd" in parent.data.tags["sweep.overrides"] and parent.data.tags["sweep.dir"]
    assert {c.data.tags["mlflow.parentRunId"] for c in children} == {parent.info.run_id}
    suffix = "-n_init2-metrics.silhouette_sample_size200-plots.scatter_points100"  # GRID's values no label shows
    assert sorted(c.info.run_name for c in children) == [
        f"pca-k4-kmeans-K3{suffix}",
        f"pca-k8-kmeans-K3{suffix}",
        f"svd-k4-kmeans-K3{suffix}",
        f"svd-k8-kmeans-K3{suffix}",
    ]
    assert {c.info.status for c in children} == {"FINISHED"}
    assert "[4/4]" in res.stdout and "4 finished, 0 failed" in res.stdout
    files = {a.path for a in client.list_artifacts(parent.info.run_id, "summary")}
    assert "summary/summary.csv" in files and "summary/silhouette_vs_reducer.k.html" in files
    assert "summary/heatmap_silhouette.html" in files
    assert {"summary/reconstruction_mse_vs_k.html", "summary/explained_variance_by_reducer.html"} <= files
    csv = Path(client.download_artifacts(parent.info.run_id, "summary/summary.csv", str(Path(store[10:]).parent)))
    lines = csv.read_text().splitlines()
    assert len(lines) == 5 and "silhouette" in lines[0] and "reducer.k" in lines[0]
    read = pd.read_csv(csv, dtype=str)
    assert list(read.columns[:3]) == ["run_name", "status", "silhouette"]  # what a reader compares first
    assert set(read.n_clusters) == {"3"} and set(read["reducer.k"]) == {"4", "8"}  # not 3.0
    shown = python("scripts/compare.py", "--experiment", "synthetic", "--tracking-uri", store, "--out", str(csv.parent))
    table = shown.stdout.split("\n\nbest by")[0].splitlines()
    assert shown.returncode == 0 and max(map(len, table)) <= 120, shown.stdout
    assert table[-1].endswith("more columns, and every param, in summary.csv)") and "…" in table[1]  # a long name
    assert parent.data.tags["best.selected_by"] == "silhouette"
    assert parent.data.tags["best.run_id"] in {c.info.run_id for c in children}


def test_a_failing_job_does_not_stop_the_sweep(store):
    """A job that fails only when it fits (K-Means given 3 initial centres for K=4; every value passes the sweep's
    checks before its parent opens) is FAILED; the others go on."""
    init = "+clusterer.estimator.init=[[0,0,0,0],[1,1,1,1],[2,2,2,2]]"
    res = run_py("-m", "dataset=synthetic", "reducer.k=4", "clusterer.K=3,4", init, store=store, process=True)
    assert res.returncode == 1
    _, (parent,), children = sweep_runs(store)
    status = {c.data.params["clusterer.K"]: c.info.status for c in children}
    assert status == {"3": "FINISHED", "4": "FAILED"}
    failed = next(c for c in children if c.info.status == "FAILED")
    assert "does not match the number of clusters 4" in failed.data.tags["error"]
    assert parent.info.status == "FAILED"
    assert f"1 finished, 1 failed: {failed.info.run_name}" in res.stdout


def test_rerun_skips_finished_jobs_and_rerun_finished_forces_them(store):
    """(A rerun skips every finished job: the README's 28-run sweep, test_readme.py.)"""
    assert run_py("-m", *GRID, store=store).returncode == 0
    forced = run_py("-m", *GRID, "sweep.rerun_finished=true", store=store)
    assert forced.returncode == 0 and "4 finished" in forced.stdout and "skipped" not in forced.stdout
    _, parents, children = sweep_runs(store)
    assert len(parents) == 2 and len(children) == 8


def test_kill_9_then_rerun_finishes_exactly_the_missing_jobs(store, tmp_path):
    grid = [
        "dataset=synthetic",
        "reducer=pca",
        "reducer.k=4",
        "clusterer.K=2,3,4,5,6,7",
        "clusterer.n_init=20",
        "metrics.silhouette_sample_size=200",
    ]
    suffix = "-n_init20-metrics.silhouette_sample_size200"
    proc = start_run_py("-m", *grid, store=store, out=tmp_path / "hydra", new_session=True)
    read_until(proc, lambda seen: seen.count("finished in") >= 2)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    _, _, before = sweep_runs(store)
    assert 2 <= sum(c.info.status == "FINISHED" for c in before) < 6
    res = run_py("-m", *grid, store=store)
    assert res.returncode == 0, res.stdout + res.stderr
    _, parents, children = sweep_runs(store)
    finished = [c.info.run_name for c in children if c.info.status == "FINISHED"]
    assert sorted(finished) == sorted(f"pca-k4-kmeans-K{k}{suffix}" for k in range(2, 8))  # all six, none twice
    assert "RUNNING" not in {r.info.status for r in [*parents, *children]}


def test_the_launcher_changes_no_metric(store):
    """The thread count changes randomized PCA's last digits and K-Means' optimum; every fit runs on
    `compute.threads`, however many jobs run at once, so the launcher changes nothing."""
    args = ["dataset=synthetic", "reducer.k=8", "clusterer.n_init=2", "plots.enabled=false"]
    assert run_py(*args, "clusterer.K=4", store=store).returncode == 0
    again = ["clusterer.K=4,5", "sweep.rerun_finished=true"]
    basic = run_py("-m", *args, *again, store=store)
    assert basic.returncode == 0, basic.stdout + basic.stderr
    joblib = run_py("-m", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2", *args, *again, store=store, process=True)
    assert joblib.returncode == 0, joblib.stdout + joblib.stderr
    assert "locked" not in joblib.stdout + joblib.stderr
    _, parents, children = sweep_runs(store)
    newest = max(parents, key=lambda p: p.info.start_time).info.run_id
    assert len({c.data.tags["process.pid"] for c in children if c.data.tags["mlflow.parentRunId"] == newest}) == 2
    same = [r for r in runs(store)[1] if r.info.run_name == "pca-k8-kmeans-K4-n_init2-plots.enabled=false"]
    assert len(same) == 3 and len({r.data.tags["config.identity"] for r in same}) == 1
    scores = [{k: v for k, v in r.data.metrics.items() if not is_cost(k)} for r in same]
    for other in scores[1:]:
        assert other == pytest.approx(scores[0], rel=1e-9, abs=1e-9)


def test_second_sweep_hits_the_reducer_cache(store):
    first = ["dataset=synthetic", "reducer.k=4", "clusterer.K=3,4"]
    assert run_py("-m", *first, store=store).returncode == 0
    _, _, children = sweep_runs(store)
    assert sorted(c.data.tags["cache.reducer"] for c in children) == ["hit", "miss"]  # one fit, two runs
    assert run_py("-m", "dataset=synthetic", "reducer.k=4", "clusterer.K=5", store=store).returncode == 0
    _, _, children = sweep_runs(store)
    newest = max(children, key=lambda c: c.info.start_time)
    assert newest.info.run_name == "pca-k4-kmeans-K5" and newest.data.tags["cache.reducer"] == "hit"
    # What it holds, and emptied: the next run fits again.
    size = python("-m", "clustersweep.cache", "size", "--tracking-uri", store)
    folder = Path(store[len("sqlite:///") :]).parent / "cache"
    assert size.returncode == 0 and size.stdout.startswith(f"cache {folder}: "), size.stdout + size.stderr
    assert "2 reducer fits" in size.stdout  # pca-k4, and the common space's PCA-50 the scores are computed in
    cleared = python("-m", "clustersweep.cache", "clear", "--tracking-uri", store)
    assert cleared.returncode == 0 and "cleared" in cleared.stdout
    assert python("-m", "clustersweep.cache", "size", "--tracking-uri", store).stdout.endswith("0.0 MB (empty)\n")
    assert run_py("dataset=synthetic", "reducer.k=4", "clusterer.K=5", store=store).returncode == 0
    newest = max(runs(store)[1], key=lambda r: r.info.start_time)
    assert newest.data.tags["cache.reducer"] == "miss"


def test_a_key_missing_from_one_choice_is_refused_before_any_run(store):
    res = run_py("-m", "dataset=synthetic", "clusterer=kmeans,dbscan", "clusterer.K=6,7", store=store, process=True)
    assert res.returncode == 2
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and "clusterer.K" in lines[0] and "run one sweep per choice" in lines[0]
    assert "parent run" not in res.stdout and runs(store)[1] == []  # no parent, not even a deleted one


def test_ctrl_c_marks_the_running_job_and_the_parent_killed(store, tmp_path):
    grid = [
        "dataset=synthetic",
        "reducer.k=4",
        "clusterer.K=2,3,4,5,6,7",
        "clusterer.n_init=50",
        "metrics.silhouette_sample_size=200",
    ]
    suffix = "-n_init50-metrics.silhouette_sample_size200"
    proc = start_run_py("-m", *grid, store=store, out=tmp_path / "hydra")
    seen = read_until(proc, lambda seen: f"[2/6] pca-k4-kmeans-K3{suffix} … started" in seen)
    seen = read_until(proc, lambda seen: seen.rstrip().endswith("cluster …"), seen)  # job 2 is fitting
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=WAIT)
    assert proc.returncode == 130, seen + out
    _, (parent,), children = sweep_runs(store)
    assert parent.info.status == "KILLED"
    status = {c.info.run_name: c.info.status for c in children}
    assert status[f"pca-k4-kmeans-K2{suffix}"] == "FINISHED" and status[f"pca-k4-kmeans-K3{suffix}"] == "KILLED"
    assert "RUNNING" not in status.values() and len(status) == 2  # nothing launched after Ctrl-C


def test_a_lower_is_better_objective_names_the_same_best_run_everywhere(store):
    """Davies–Bouldin: lower is better. The printed summary, the parent's report.md and its best.* tags all name
    the child with the lowest value."""
    args = ["dataset=synthetic", "reducer.k=8", "clusterer.n_init=2", "plots.enabled=false"]
    res = run_py("-m", *args, "sweep.select_by=davies_bouldin", "clusterer.K=2,3,4,5,6", store=store)
    assert res.returncode == 0, res.stdout + res.stderr
    client, (parent,), children = sweep_runs(store)
    values = {c.info.run_name: c.data.metrics["davies_bouldin"] for c in children}
    lowest = min(values, key=values.get)
    assert lowest != max(values, key=values.get)
    assert parent.data.tags["best.run_name"] == lowest and parent.data.tags["best.selected_by"] == "davies_bouldin"
    assert parent.data.metrics["best_davies_bouldin"] == values[lowest]
    report = Path(client.download_artifacts(parent.info.run_id, "report.md", str(Path(store[10:]).parent))).read_text()
    said = f"**Best by davies_bouldin** (label-free): {lowest} — davies_bouldin {values[lowest]:.3f}"
    assert said in report and said in res.stdout
    k = next(c for c in children if c.info.run_name == lowest).data.params["clusterer.K"]
    assert f"## kmeans: best K by davies_bouldin = {k}" in report
    assert "### " + lowest in report  # the best run's own report


def test_a_grid_by_several_objectives_picks_from_their_pareto_front_by_the_rule(store):
    """`sweep.select_by=[modularity,davies_bouldin]` in a grid: the same front and pick as a search (one function,
    `report.pareto`), on the children's metrics; the report and summary.csv mark the front."""
    from clustersweep.report import pareto

    both = ["modularity", "davies_bouldin"]
    args = ["dataset=synthetic", "reducer.k=8", "clusterer.n_init=1", "plots.enabled=false", "clusterer.K=2,3,4,5,6"]
    res = run_py("-m", *args, f"sweep.select_by=[{','.join(both)}]", store=store)
    assert res.returncode == 0, res.stdout + res.stderr
    client, (parent,), children = sweep_runs(store)
    table = pd.DataFrame([{"name": c.info.run_name, **{m: c.data.metrics[m] for m in both}} for c in children])
    table = table.set_index("name")
    front = pareto.pareto_front(table, both, ["maximize", "minimize"])
    assert parent.data.tags["best.run_name"] == pareto.pick(table, both, ["maximize", "minimize"])
    assert sorted(parent.data.tags["sweep.pareto_front"].split(", ")) == sorted(table.index[front])
    assert parent.data.tags["best.selected_by"] == "modularity,davies_bouldin"
    assert f"## Pareto front of modularity, davies_bouldin: {front.sum()} of 5 configurations" in res.stdout


def test_degenerate_clusterings_are_tagged_said_and_never_the_best(store, make_cfg):
    """One DBSCAN cluster, an all-noise HDBSCAN: each finishes, tagged `degenerate`, its report says so first and
    has no per-class figures; a sweep's best is a real clustering."""
    from clustersweep.tasks.cluster import run

    args = ["dataset=synthetic", "reducer.k=8", "clusterer=dbscan", "plots.enabled=false"]
    res = run_py("-m", *args, "clusterer.eps=0.8,100", store=store)
    assert res.returncode == 0, res.stdout + res.stderr
    one, real = "pca-k8-dbscan-eps100-m5-plots.enabled=false", "pca-k8-dbscan-eps0.8-m5-plots.enabled=false"
    assert f"{one} is degenerate: one cluster" in res.stdout + res.stderr
    client, (parent,), children = sweep_runs(store)
    by_name = {c.info.run_name: c for c in children}
    assert by_name[one].data.tags["degenerate"] == "one cluster"
    assert "degenerate" not in by_name[real].data.tags
    assert parent.data.tags["best.run_name"] == real
    folder = str(Path(store[10:]).parent)
    report = Path(client.download_artifacts(by_name[one].info.run_id, "report.md", folder))
    text = report.read_text()
    assert (
        text.splitlines()[2]
        == "**Degenerate clustering: one cluster.** Not a clustering to interpret; no sweep picks it."
    )
    assert "Best separated" not in text and "1 cluster;" in text
    noise = run(make_cfg("clusterer=hdbscan", "clusterer.min_cluster_size=400", "plots.enabled=false"))
    tags = client.get_run(noise.run_id).data.tags
    assert tags["degenerate"] == "no cluster: every point is noise"
    assert (
        noise.report.splitlines()[2].startswith("**Degenerate clustering: no cluster")
        and "eps = nan" not in noise.report
    )


REPLICATED = [
    "dataset=synthetic",
    "reducer.k=4",
    "clusterer.K=2,3",
    "clusterer.n_init=1",
    "metrics.silhouette_sample_size=200",
    "plots.enabled=false",
]


def test_replicates_run_each_configuration_with_n_seeds_and_the_best_is_the_best_mean(store):
    res = run_py("-m", *REPLICATED, "seed=7", "sweep.replicates=3", store=store)
    assert res.returncode == 0, res.stdout + res.stderr
    client, (parent,), children = sweep_runs(store)
    assert len(children) == 6 and {c.info.status for c in children} == {"FINISHED"}
    by_group: dict[str, list] = {}
    for c in children:
        by_group.setdefault(c.data.tags["config.group"], []).append(c)
    assert len(by_group) == 2  # one group per K, whatever the seed
    for group in by_group.values():
        assert sorted(int(c.data.params["seed"]) for c in group) == [7, 8, 9]
        assert len({c.data.params["clusterer.K"] for c in group}) == 1
        assert len({c.data.tags["config.identity"] for c in group}) == 3  # each replicate its own computation
    means = {g: np.mean([c.data.metrics["silhouette"] for c in runs]) for g, runs in by_group.items()}
    top = max(means, key=means.get)
    (first,) = [c for c in by_group[top] if c.data.params["seed"] == "7"]
    assert parent.data.tags["best.run_id"] == first.info.run_id and parent.data.tags["best.replicates"] == "3"
    assert parent.data.metrics["best_silhouette"] == pytest.approx(means[top], abs=1e-12)
    assert "(mean ± sd of 3 replicates, seeds 7–9)" in res.stdout

    more = run_py("-m", *REPLICATED, "seed=7", "sweep.replicates=4", store=store)  # per replicate: 2 new runs
    assert more.returncode == 0, more.stdout + more.stderr
    assert "sweep finished: 2 finished, 0 failed; 6 skipped (already finished)" in more.stdout
    assert "(mean ± sd of 4 replicates, seeds 7–10)" in more.stdout


@pytest.mark.parametrize(
    "args, said",
    [
        (["seed=1,2", "sweep.replicates=2"], "error: seed=1,2 cannot be swept with sweep.replicates=2: the replicates"),
        (["sweep.replicates=0"], "error: sweep.replicates=0 is not allowed: expected an integer in 1..100"),
        (["sweep.select_by=stability"], "error: sweep.select_by=stability needs sweep.replicates ≥ 2, got 1"),
        (["sweep.select_by=ace"], "error: sweep.select_by=ace needs metrics.other_spaces, got []"),
        (["sweep.select_by=[ace,silhouette]"], "error: sweep.select_by=[ace,silhouette] needs metrics.other_spaces"),
        (
            ["search=pca_kmeans", "sweep.select_by=ace", "metrics.other_spaces=[embedding]"],
            "error: sweep.select_by=ace cannot be a search's objective",
        ),
        (
            ["search=pca_kmeans", "sweep.replicates=2", "+hydra.sweeper.params.seed='choice(1,2)'"],
            "error: hydra.sweeper.params.seed cannot be searched with sweep.replicates=2",
        ),
    ],
)
def test_replicates_that_cannot_run_are_one_line_before_any_run(store, args, said):
    res = run_py("-m", *REPLICATED, *args, store=store)
    assert res.returncode == 2 and res.stderr.count("\n") == 1 and res.stderr.startswith(said), res.stderr
    assert runs(store)[1] == []


def test_a_grid_by_stability_or_ace_picks_the_configuration_those_criteria_rank_first(store):
    """stability: the agreement of each configuration's replicates' test partitions; ace: each configuration's
    rank by modularity in the common space and in its own, averaged. The summary reports both, beside the means."""
    from clustersweep.report.tables import sweep_table, with_criteria

    args = ["-m", *REPLICATED, "sweep.replicates=2", "metrics.other_spaces=[embedding]"]
    res = run_py(*args, "sweep.select_by=stability", store=store)
    assert res.returncode == 0, res.stdout + res.stderr
    client, (parent,), children = sweep_runs(store)
    assert all("modularity.embedding" in c.data.metrics for c in children)
    table = with_criteria(client, sweep_table(client, parent.info.run_id), "modularity")
    stab = table.groupby("group").stability.first()
    assert stab.between(-1, 1).all() and stab.notna().all()
    top = table.loc[table.group == stab.idxmax()].sort_values("seed").iloc[0]
    assert parent.data.tags["best.run_id"] == top.run_id and parent.data.metrics["best_stability"] == stab.max()

    res = run_py(*args, "sweep.select_by=ace", store=store)  # every run skipped: the same runs, chosen by ace
    assert res.returncode == 0, res.stdout + res.stderr
    client, found = runs(store)
    (again,) = [r for r in found if "sweep.overrides" in r.data.tags and r.info.run_id != parent.info.run_id]
    ace = with_criteria(client, sweep_table(client, again.info.run_id), "modularity").groupby("group").ace.first()
    assert set(ace) == {0.75, 1.0} or set(ace) == {1.0, 0.5}  # two configurations ranked in two spaces
    top = table.loc[table.group == ace.idxmax()].sort_values("seed").iloc[0]
    assert again.data.tags["best.run_id"] == top.run_id and again.data.tags["best.selected_by"] == "ace"


def test_ace_over_the_three_spaces_ranks_each_configuration_in_pixels_embedding_and_patches(store):
    """With metrics.other_spaces=[embedding,patches] every run is scored in the common space of the pixels, its
    own and the common space of the patch codes; ace is each configuration's percentile rank by modularity in
    each of the three, averaged; the parent's report follows it."""
    from clustersweep.report.tables import replicated, sweep_table, with_criteria

    grid = ["dataset=digits", "dataset.n_train=300", "dataset.n_test=100", "reducer.k=8", "clusterer.K=8,10"]
    tiny = ["clusterer.n_init=1", "plots.enabled=false", "model.log=false", "sweep.replicates=2"]
    args = [*grid, *tiny, "metrics.other_spaces=[embedding,patches]", "sweep.select_by=ace"]
    res = run_py("-m", *args, store=store)
    assert res.returncode == 0 and "could not" not in res.stderr, res.stdout + res.stderr
    client, (parent,), children = sweep_runs(store, "digits")
    assert len(children) == 4 and all("modularity.patches" in c.data.metrics for c in children)
    table = with_criteria(client, sweep_table(client, parent.info.run_id), "modularity")
    per = replicated(table).set_index("group")
    spaces = per[["modularity", "modularity.embedding", "modularity.patches"]]
    assert spaces.notna().all().all() and len(per) == 2
    np.testing.assert_allclose(per.ace, spaces.rank(pct=True).mean(axis=1))  # the mean over 3 spaces
    top = table.loc[table.group == per.ace.idxmax()].sort_values("seed").iloc[0]
    assert parent.data.tags["best.run_id"] == top.run_id and parent.data.tags["best.selected_by"] == "ace"
    assert parent.data.metrics["best_ace"] == pytest.approx(per.ace.max())
    files = {a.path for a in client.list_artifacts(parent.info.run_id)}
    assert "report.md" in files and "summary" in files, files
