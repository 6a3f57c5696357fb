"""`hydra/launcher=ray`: a sweep as Ray tasks on a local Ray cluster (loopback, token authentication) that the
test starts and stops, with the same metrics as the basic launcher and the reducer cache shared with it."""

from __future__ import annotations

import itertools
import os
import secrets
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from conftest import free_port, loopback_only, run_py, stop_group, wait_for
from test_sweep import sweep_runs

from clustersweep.stages.metrics import is_cost


@pytest.fixture(scope="module")
def ray_cluster():
    """`ray start --head` on 127.0.0.1 with a token of its own; yields (address, the env a client needs)."""
    token_env = {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(16)}
    env = {**os.environ, **token_env, "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}  # loopback only (see sweep.hand_off)
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="ray") as tmp:  # short: Ray's socket paths live under it
        log = Path(tmp) / "start.log"
        cmd = [
            sys.executable,
            "-m",
            "ray.scripts.scripts",  # the `ray` command of this Python
            "start",
            "--head",
            "--block",
            "--node-ip-address=127.0.0.1",
            f"--port={port}",
            "--num-cpus=2",
            "--include-dashboard=false",
            "--disable-usage-stats",
            f"--temp-dir={tmp}",
        ]
        with log.open("wb") as f:
            proc = subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        try:
            wait_for(lambda: "Ray runtime started" in log.read_text() or proc.poll() is not None)
            assert "Ray runtime started" in log.read_text(), log.read_text()
            yield f"127.0.0.1:{port}", token_env
        finally:
            stop_group(proc, grace=5)


GRID = [
    "dataset=synthetic",
    "reducer=pca,svd",
    "reducer.k=4",
    "clusterer.K=3",
    "clusterer.n_init=2",
    "metrics.silhouette_sample_size=200",
    "plots.enabled=false",
]


def test_ray_launcher_gives_the_basic_launchers_metrics_and_reuses_its_cache(ray_cluster, store, tmp_path):
    address, token_env = ray_cluster
    assert loopback_only(int(address.rsplit(":", 1)[1]))  # Ray's GCS, bound to 127.0.0.1 only
    cache = f"cache.dir={tmp_path / 'cache'}"  # a path every worker reaches (on a real cluster: a shared one)
    # A process of its own, as the Ray workers are: joblib.Memory writes a cache folder's record of the function
    # only in the first process that uses it (this one may have used the function with another folder before).
    basic = run_py("-m", *GRID, cache, store=store, process=True)
    assert basic.returncode == 0, basic.stdout + basic.stderr
    res = run_py(
        "-m",
        "hydra/launcher=ray",
        f"hydra.launcher.ray.init.address={address}",
        *GRID,
        cache,
        "sweep.rerun_finished=true",
        store=store,
        env=token_env,
        process=True,  # Ray's driver in a process of its own, as a user runs it
    )
    assert res.returncode == 0, res.stdout + res.stderr
    assert "2 finished, 0 failed" in res.stdout
    client, parents, children = sweep_runs(store)
    assert len(parents) == 2 and {p.info.status for p in parents} == {"FINISHED"}
    ray_parent = max(parents, key=lambda p: p.info.start_time).info.run_id
    by_launcher: dict[str, dict[str, dict[str, float]]] = {"basic": {}, "ray": {}}
    for c in children:
        assert c.info.status == "FINISHED"
        which = "ray" if c.data.tags["mlflow.parentRunId"] == ray_parent else "basic"
        scores = {k: v for k, v in c.data.metrics.items() if not is_cost(k)}
        by_launcher[which][c.info.run_name] = scores
    assert len(by_launcher["ray"]) == 2 and by_launcher["ray"].keys() == by_launcher["basic"].keys()
    for name, scores in by_launcher["ray"].items():
        # Every fit and score on compute.threads threads, in a Ray worker as in this process: the same numbers.
        assert scores == pytest.approx(by_launcher["basic"][name], rel=1e-9, abs=1e-9), name
    ray_children = [c for c in children if c.data.tags["mlflow.parentRunId"] == ray_parent]
    driver_pids = {p.data.tags["process.pid"] for p in parents}
    assert not driver_pids & {c.data.tags["process.pid"] for c in ray_children}  # the jobs ran in Ray workers
    assert {c.data.tags["cache.reducer"] for c in ray_children} == {"hit"}  # fitted once, by the basic sweep


def test_a_search_runs_its_batches_of_trials_at_once_as_ray_tasks(ray_cluster, store, tmp_path):
    address, token_env = ray_cluster
    res = run_py(
        "-m",
        "search=pca_kmeans",
        "hydra.sweeper.n_trials=4",
        "hydra.sweeper.n_jobs=2",
        "hydra/launcher=ray",
        f"hydra.launcher.ray.init.address={address}",
        "dataset=synthetic",
        "reducer.k=range(2,6)",
        "clusterer.K=range(2,6)",
        "metrics.silhouette_sample_size=200",
        "plots.enabled=false",
        f"cache.dir={tmp_path / 'cache'}",
        store=store,
        env=token_env,
        process=True,  # Ray's driver in a process of its own, as a user runs it
    )
    assert res.returncode == 0, res.stdout + res.stderr
    client, parents, children = sweep_runs(store)
    (parent,) = parents
    assert parent.info.status == "FINISHED" and "sweep.study" in parent.data.tags
    assert len(children) == 4 and {c.info.status for c in children} == {"FINISHED"}
    assert len({(c.data.params["reducer.k"], c.data.params["clusterer.K"]) for c in children}) == 4  # distinct
    assert not {parent.data.tags["process.pid"]} & {c.data.tags["process.pid"] for c in children}  # Ray workers
    spans = sorted((c.info.start_time, c.info.end_time) for c in children)
    assert any(b[0] < a[1] for a, b in itertools.pairwise(spans)), spans  # two trials of a batch ran at once
