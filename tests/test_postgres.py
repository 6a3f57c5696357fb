"""A team's store on PostgreSQL: `mlflow server` (scripts/serve_tracking.sh) on a throwaway PostgreSQL
(scripts/local_postgres.py), artifacts proxied into a folder; many writers at once lose nothing, and a sweep that
sees PostgreSQL restart fails only the jobs that could not log, which its rerun then does."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path
from unittest import mock

import optuna
import pytest
from conftest import ROOT, WAIT, MlflowServer, read_until, run_py, runs, start_run_py

SMALL = [
    "dataset=synthetic",
    "dataset.image_size=[8,8]",  # 64 pixels: fits of milliseconds, the store's share of a run the largest
    "reducer.k=4",
    "clusterer.n_init=2",
    "metrics.silhouette_sample_size=200",
    "plots.enabled=false",
]


def postgres(command: str, folder: Path) -> str:
    """scripts/local_postgres.py start|stop|restart; what it printed (the URI). pg_ctl waits up to WAIT s for the
    server to start or stop (PGCTLTIMEOUT), not its default 60 s."""
    cmd = [sys.executable, str(ROOT / "scripts" / "local_postgres.py"), command, str(folder)]
    env = {**os.environ, "PGCTLTIMEOUT": str(WAIT)}
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=WAIT, env=env)
    assert res.returncode == 0, res.stderr  # CI installs PostgreSQL (scripts/setup.sh --dev): never skipped
    return res.stdout.strip()


@pytest.fixture(scope="module")
def team(tmp_path_factory: pytest.TempPathFactory):
    """(the MLflow server, PostgreSQL's folder): PostgreSQL on a free loopback port, the server on it."""
    # Under /tmp itself: as root, PostgreSQL runs as the `postgres` user, who cannot enter pytest's folders.
    folder = Path(tempfile.mkdtemp(prefix="clustersweep-postgres-"))
    server = MlflowServer(tmp_path_factory.mktemp("team") / "server")
    try:
        uri = postgres("start", folder)
        store = {"MLFLOW_BACKEND_STORE_URI": uri, "MLFLOW_ARTIFACTS_DESTINATION": str(server.store / "proxied")}
        with mock.patch.dict(os.environ, store):
            server.start()
        yield server, folder
    finally:
        server.stop()
        postgres("stop", folder)
        shutil.rmtree(folder, ignore_errors=True)


def store_args(experiment: str, tmp_path: Path) -> list[str]:
    return ["tracking=server", f"tracking.experiment={experiment}", f"cache.dir={tmp_path / 'cache'}"]


def finished_names(server: MlflowServer, experiment: str, jobs: bool = False) -> tuple[list, Counter]:
    """(every run of the experiment, how often each run name FINISHED; only a sweep's jobs' given `jobs`)."""
    _, found = runs(server.uri, experiment)
    done = [r for r in found if r.info.status == "FINISHED" and (not jobs or "sweep.job" in r.data.tags)]
    return found, Counter(r.info.run_name for r in done)


def test_a_joblib_sweep_and_four_single_runs_at_once_lose_nothing(team, tmp_path):
    server, folder = team
    args = [*SMALL, *store_args("team-many", tmp_path)]
    joblib = ["hydra/launcher=joblib", "hydra.launcher.n_jobs=2"]
    sweep = start_run_py("-m", *joblib, "clusterer.K=2,3,4,5", *args, store=server.uri, out=tmp_path / "sweep")
    seeds = [11, 12, 13, 14]
    singles = [start_run_py(f"seed={s}", *args, store=server.uri, out=tmp_path / f"run{s}") for s in seeds]
    said = [p.communicate(timeout=WAIT)[0] for p in [sweep, *singles]]
    for proc, text in zip([sweep, *singles], said, strict=True):
        assert proc.returncode == 0, text
    assert "4 finished, 0 failed" in said[0]

    found, finished = finished_names(server, "team-many")
    (parent,) = [r for r in found if "sweep.overrides" in r.data.tags]
    children = [r for r in found if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    alone = [r for r in found if r not in [parent, *children]]
    assert parent.info.status == "FINISHED" and len(found) == 1 + 4 + len(seeds)
    assert sorted(c.data.params["clusterer.K"] for c in children) == ["2", "3", "4", "5"]
    assert sorted(int(r.data.params["seed"]) for r in alone) == seeds
    assert set(finished.values()) == {1} and len(finished) == len(found)  # each run FINISHED, once
    assert len({c.data.tags["process.pid"] for c in children}) == 2  # two joblib workers
    # It is PostgreSQL that holds them; their artifacts went through the server into its folder.
    import psycopg

    with psycopg.connect(postgres("start", folder)) as db:
        (count,) = db.execute(
            "SELECT count(*) FROM runs JOIN experiments USING (experiment_id)"
            " WHERE experiments.name = 'team-many' AND runs.status = 'FINISHED'"
        ).fetchone()
    assert count == len(found)
    assert len(list((server.store / "proxied").rglob(f"{parent.info.run_id}/artifacts/summary/summary.csv"))) == 1


def test_postgresql_restarting_mid_sweep_fails_the_jobs_that_cannot_log_and_a_rerun_does_only_those(
    team, tmp_path, monkeypatch
):
    server, folder = team
    # A job fails once its calls were refused for 2-4 s (the server answers 503 while PostgreSQL is down);
    # PostgreSQL is back within that, so the next job's calls get through.
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")
    grid = ["-m", *SMALL, "clusterer.K=2,3,4,5,6", *store_args("team-restart", tmp_path)]
    out = tmp_path / "hydra"
    proc = start_run_py(*grid, store=server.uri, out=out)
    try:
        seen = read_until(proc, lambda seen: "finished in" in seen)
        postgres("stop", folder)
        seen = read_until(proc, lambda seen: "FAILED" in seen, seen)
    finally:
        postgres("start", folder)  # the same folder and port
    rest, _ = proc.communicate(timeout=WAIT)
    text = seen + rest
    failed = [ln for ln in text.splitlines() if ln.startswith("[") and "FAILED" in ln]
    assert proc.returncode == 1 and failed, text
    assert failed[0].endswith("(not in the tracking store)"), text
    last = text.strip().splitlines()[-1]
    assert last.startswith(f"sweep failed: {5 - len(failed)} finished, {len(failed)} failed: "), text
    assert all(ln.split("] ")[1].split(" …")[0] in last for ln in failed), text
    assert "Traceback" not in text
    _, finished = finished_names(server, "team-restart", jobs=True)
    kept = sum(finished.values())
    assert kept + len(failed) == 5 and kept >= 1

    res = run_py(*grid, store=server.uri, out=out)
    assert res.returncode == 0, res.stdout + res.stderr
    assert res.stdout.count("skipped: identical run") == kept
    assert f"sweep finished: {len(failed)} finished, 0 failed; {kept} skipped" in res.stdout
    found, finished = finished_names(server, "team-restart", jobs=True)
    children = {r.info.run_name for r in found if "sweep.job" in r.data.tags}
    assert len(children) == 5 and {finished[name] for name in children} == {1}  # every job FINISHED, once
    assert "RUNNING" not in {r.info.status for r in found}


def test_a_search_in_the_team_database_resumes_from_a_second_process(team, tmp_path):
    server, folder = team
    database = postgres("start", folder)  # the server's own database: the study goes in its own schema
    search = [
        "-m",
        "search=pca_kmeans",
        "hydra.sweeper.n_trials=4",
        "reducer.k=range(2,6)",
        "clusterer.K=range(2,6)",
        f"search.storage={database}",
        *[a for a in SMALL if not a.startswith(("clusterer.n_init", "reducer.k", "dataset.image_size"))],
        "clusterer.n_init=100",  # long enough a fit to interrupt
        *store_args("team-search", tmp_path),
    ]
    proc = start_run_py(*search, store=server.uri, out=tmp_path / "first")
    seen = read_until(proc, lambda seen: "[2/?]" in seen)  # the first trial finished, the second started
    seen = read_until(proc, lambda seen: seen.rstrip().endswith("cluster …"), seen)  # and is fitting
    assert "in postgresql://mlflow:***@127.0.0.1:" in seen and "?options=-csearch_path%3Doptuna has 0" in seen, seen
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=WAIT)
    assert proc.returncode == 130, seen + out

    res = run_py(*search, store=server.uri, out=tmp_path / "second")  # another process (and Hydra folder)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "has 1 completed trial(s), 1 cut off by an interruption; 3 to run" in res.stdout, res.stdout
    study_url = database + "?options=-csearch_path%3Doptuna"
    (name,) = optuna.get_all_study_names(study_url)
    study = optuna.load_study(study_name=name, storage=study_url)
    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert len(complete) == 4 and len({tuple(sorted(t.params.items())) for t in complete}) == 4
    found, finished = finished_names(server, "team-search", jobs=True)
    (parent,) = [r for r in found if "sweep.study" in r.data.tags]
    children = [r for r in found if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    assert study.user_attrs["mlflow_parent_run_id"] == parent.info.run_id and parent.info.status == "FINISHED"
    assert {t.user_attrs["mlflow_run_id"] for t in complete} <= {c.info.run_id for c in children}
    assert sum(finished.values()) == 4 and set(finished.values()) == {1}
    import psycopg

    with psycopg.connect(database) as db:  # Optuna's tables beside MLflow's, each with its own alembic_version
        where = db.execute("SELECT table_schema FROM information_schema.tables WHERE table_name = 'alembic_version'")
        assert sorted(row[0] for row in where) == ["optuna", "public"]
