"""Many writers, one SQLite store: a fresh store is made under a lock that a live holder keeps and a dead one loses at
once (the race to it on a busy machine: test_load.py); a store that cannot take runs is one line and exit 2 before
any run; a run left RUNNING by a dead process is marked KILLED by the next run's start, in any experiment."""

from __future__ import annotations

import contextlib
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT, WAIT, python, read_until, run_py, runs, start_run_py
from filelock import FileLock

TINY_ARGS = ["dataset=synthetic", "reducer.k=4", "clusterer.n_init=2", "metrics.silhouette_sample_size=200"]


def test_a_dead_holder_of_the_stores_lock_is_taken_over_at_once(tmp_path):
    db = tmp_path / "fresh" / "mlflow.db"  # no store yet: a writer must take the lock to make it
    db.parent.mkdir()
    holder = _hold_store_lock(db)
    holder.kill()  # -9, while it holds the lock
    holder.wait()
    assert Path(f"{db}.lock.pid").read_text().strip() == str(holder.pid)  # it died holding it
    lock = FileLock(f"{db}.lock")
    lock.acquire(timeout=0)  # free at once: the kernel let go of a dead process's lock
    lock.release()
    res = run_py(*TINY_ARGS, "clusterer.K=2", "tracking.lock_timeout=3000", store=f"sqlite:///{db}")
    assert res.returncode == 0, res.stdout + res.stderr
    assert "waiting for" not in res.stderr and {r.info.status for r in runs(f"sqlite:///{db}")[1]} == {"FINISHED"}


def test_a_live_holder_keeps_writers_waiting_up_to_lock_timeout(tmp_path):
    db = tmp_path / "fresh" / "mlflow.db"
    db.parent.mkdir()
    store = f"sqlite:///{db}"
    holder = _hold_store_lock(db)
    try:
        refused = run_py(*TINY_ARGS, "clusterer.K=2", "tracking.lock_timeout=2", store=store)
        lines = refused.stderr.strip().splitlines()
        assert refused.returncode == 2 and len(lines) == 1, refused.stdout + refused.stderr
        said = f"error: tracking store {db}: process {holder.pid} has held {db}.lock for over 2 s (tracking.lock_t"
        assert lines[0].startswith(said), lines[0]
        assert not db.exists()  # no store, no run
        waiter = start_run_py(*TINY_ARGS, "clusterer.K=2", store=store, out=tmp_path / "hydra")
        seen = read_until(waiter, lambda seen: "waiting for" in seen, timeout=600)
        assert f"tracking store {db}: waiting for process {holder.pid} to finish making it" in seen, seen
        holder.stdin.close()  # it lets go
        out = seen + waiter.communicate(timeout=600)[0]
    finally:
        holder.kill()
        holder.wait()
    assert waiter.returncode == 0 and out.count("waiting for") == 1, out  # said once
    assert {r.info.status for r in runs(store)[1]} == {"FINISHED"}


def _hold_store_lock(db: Path) -> subprocess.Popen:
    """A process that holds the lock a store is made under until its stdin closes."""
    command = [sys.executable, "-c", HOLD_STORE_LOCK, str(db)]
    holder = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=ROOT)
    assert holder.stdout.readline().strip() == "held"
    return holder


HOLD_STORE_LOCK = """
import sys
from pathlib import Path
from clustersweep.tracking.store import making
with making(Path(sys.argv[1]), 60):
    print("held", flush=True)
    sys.stdin.read()
"""


def _mlflow_store(tmp_path: Path, empty_store: Path) -> Path:
    db = tmp_path / "s" / "mlflow.db"
    db.parent.mkdir()
    db.write_bytes(empty_store.read_bytes())
    return db


def _set_schema(db: Path, revision: str) -> None:
    with contextlib.closing(sqlite3.connect(db)) as c, c:
        c.execute("UPDATE alembic_version SET version_num = ?", (revision,))


FAULTS = {
    "uncreatable folder": "its folder /proc/clustersweep-nope cannot be created",
    "unwritable folder": "its folder /proc cannot be written",
    "not a database": "is not an MLflow store: file is not a database",
    "newer MLflow": "was written by a newer MLflow (schema ffff00000000, unknown to MLflow",
    "older MLflow": "was written by an older MLflow (schema 0a8213491aaa): back it up, then run `mlflow db",
    "locked": "stayed locked by another process for over 1 s (tracking.lock_timeout)",
}


@pytest.mark.parametrize(
    ("fault", "sweep"),
    [*((f, False) for f in FAULTS), ("not a database", True), ("locked", True)],
    ids=lambda v: {False: "run", True: "sweep"}.get(v, v),
)
def test_a_store_that_cannot_take_runs_is_one_line_exit_2_and_no_run(tmp_path, empty_store, fault, sweep):
    expect = FAULTS[fault]
    db = _mlflow_store(tmp_path, empty_store)
    holder = None
    if fault == "uncreatable folder":
        db = Path("/proc/clustersweep-nope/mlflow.db")
    elif fault == "unwritable folder":
        db = Path("/proc/mlflow.db")
    elif fault == "not a database":
        db.write_bytes(b"these are not the bytes of a database\n" * 200)
    elif fault == "newer MLflow":
        _set_schema(db, "ffff00000000")
    elif fault == "older MLflow":
        _set_schema(db, "0a8213491aaa")  # MLflow 2.x's schema of 2024
    else:  # another process holds a write lock and does not let go
        holder = subprocess.Popen(
            [sys.executable, "-c", HOLD_LOCK, str(db)], stdout=subprocess.PIPE, text=True, cwd=ROOT
        )
        assert holder.stdout.readline().strip() == "locked"
    store = f"sqlite:///{db}"
    args = ["-m", "clusterer.K=2,3"] if sweep else ["clusterer.K=2"]
    try:
        res = run_py(*args, *TINY_ARGS, "tracking.lock_timeout=1", store=store, out=tmp_path / "hydra")
    finally:
        if holder:
            holder.kill()
            holder.wait()
    lines = res.stderr.strip().splitlines()
    assert res.returncode == 2 and len(lines) == 1, res.stdout + res.stderr
    assert lines[0].startswith(f"error: tracking store {db}") and expect in lines[0], lines[0]
    if fault in ("locked", "older MLflow", "newer MLflow"):
        with contextlib.closing(sqlite3.connect(db)) as c:
            assert c.execute("SELECT count(*) FROM runs").fetchone() == (0,)


HOLD_LOCK = """
import sqlite3, sys, time
db = sqlite3.connect(sys.argv[1], isolation_level=None)
db.execute("BEGIN EXCLUSIVE")
print("locked", flush=True)
time.sleep(600)
"""


@pytest.mark.parametrize("experiment", ["synthetic", "other"], ids=["same experiment", "another experiment"])
def test_a_single_run_killed_with_9_is_marked_killed_by_the_next_run(store, experiment):
    # A process opens a run through the tracking core and dies without closing it (as under kill -9).
    orphan = subprocess.run(
        [sys.executable, "-c", OPEN_AND_DIE, store, experiment], capture_output=True, text=True, cwd=ROOT, timeout=300
    )
    assert orphan.returncode == 0, orphan.stderr
    _, (left,) = runs(store, experiment)
    assert left.info.status == "RUNNING"
    res = run_py(*TINY_ARGS, "clusterer.K=2", store=store)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "marked 1 orphaned run(s) KILLED (their process is gone): orphan" in res.stdout + res.stderr
    client, found = runs(store)
    status = {r.info.run_name: r.info.status for r in [*found, *runs(store, "other")[1]]}
    assert status == {"orphan": "KILLED", "pca-k4-kmeans-K2-n_init2-metrics.silhouette_sample_size200": "FINISHED"}
    assert "killed" in client.get_run(left.info.run_id).data.tags["error"]


OPEN_AND_DIE = """
import os, sys
from clustersweep.app.cli import start_up
from clustersweep.tracking import runs, store
start_up()
runs.start(sys.argv[1], store.experiment_id(sys.argv[1], sys.argv[2]), "orphan")
os._exit(0)
"""


def test_a_run_of_a_live_process_is_not_reaped(store):
    from clustersweep.tracking import runs as tracking_runs
    from clustersweep.tracking.store import experiment_id

    exp_id = experiment_id(store, "synthetic")
    alive = tracking_runs.start(store, exp_id, "alive")  # this process: alive
    res = run_py(*TINY_ARGS, "clusterer.K=2", store=store)
    assert res.returncode == 0, res.stdout + res.stderr
    assert alive.client.get_run(alive.run_id).info.status == "RUNNING"
    alive.finish()


@pytest.mark.parametrize(
    "command",
    [
        ["scripts/compare.py", "--experiment", "synthetic"],
        ["scripts/reproduce.py", "0123abcd"],
        ["-m", "clustersweep.predict", "runs:/0123abcd/model", "rows.npy"],
    ],
    ids=["compare", "reproduce", "predict"],
)
@pytest.mark.parametrize("fault", ["missing", "not a database"])
def test_the_readers_of_a_store_say_what_is_wrong_with_it_in_one_line(tmp_path, command, fault):
    db = tmp_path / "mlflow.db"
    if fault == "not a database":
        db.write_bytes(b"these are not the bytes of a database\n" * 200)
    res = python(*command, "--tracking-uri", f"sqlite:///{db}")
    lines = res.stderr.strip().splitlines()
    assert res.returncode == 2 and len(lines) == 1, res.stdout + res.stderr
    said = "does not exist: nothing was logged there" if fault == "missing" else "is not an MLflow store"
    assert lines[0].startswith(f"error: tracking store {db}") and said in lines[0], lines[0]
    if fault == "missing":
        assert not db.exists()  # a reader makes no store


def test_searches_started_at_once_make_the_study_storage_once(tmp_path):
    store = f"sqlite:///{tmp_path / 'fresh' / 'mlflow.db'}"
    procs = [
        subprocess.Popen([sys.executable, "-c", OPEN_STUDIES, store], cwd=ROOT, stderr=subprocess.PIPE, text=True)
        for _ in range(8)  # without the lock, 16 of 40 such starts failed (`table studies already exists`, …)
    ]
    errors = [p.communicate(timeout=WAIT)[1] for p in procs]
    assert [p.returncode for p in procs] == [0] * 8, "\n".join(errors)


OPEN_STUDIES = """
import sys
from clustersweep.app.search import storage_url, study_storage
study_storage(storage_url(sys.argv[1], None)).get_all_studies()
"""
