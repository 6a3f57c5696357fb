"""A busy machine: eight busy loops on the cores while eight single runs and two sweeps start at once into one fresh
SQLite store — every run finishes, none is refused (the store's lock covers only its making)."""

from __future__ import annotations

import subprocess
import sys
import time
from collections import Counter

import pytest
from conftest import runs, start_run_py

TINY = [
    "dataset=synthetic",
    "reducer.k=4",
    "clusterer.n_init=2",
    "metrics.silhouette_sample_size=200",
    "plots.enabled=false",
    "model.log=false",
]
LOOPS = 8
BOUND_S = 600  # a busy loop stops by itself after this, or when its flag file appears
# A loop that stops by itself: when the flag file appears, or after BOUND_S.
BUSY = """
import os, sys, time
flag, end = sys.argv[1], time.monotonic() + float(sys.argv[2])
while not os.path.exists(flag) and time.monotonic() < end:
    sum(range(100_000))
"""


@pytest.fixture
def busy_machine(tmp_path):
    """Eight bounded busy loops for the test's length: started, then stopped (the flag, then for sure)."""
    flag = tmp_path / "stop-busy-loops"
    loops = [subprocess.Popen([sys.executable, "-c", BUSY, str(flag), str(BOUND_S)]) for _ in range(LOOPS)]
    try:
        yield loops
    finally:
        flag.touch()
        for p in loops:
            try:
                p.wait(timeout=60)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


def test_eight_runs_and_two_sweeps_at_once_into_a_fresh_store_on_a_busy_machine_all_finish(tmp_path, busy_machine):
    store = f"sqlite:///{tmp_path / 'fresh' / 'mlflow.db'}"  # no file, no folder: ten processes race to make it
    singles = [[f"clusterer.K={k}"] for k in range(2, 10)]
    sweeps = [["-m", "reducer=svd", "clusterer.K=2,3"], ["-m", "reducer=svd", "clusterer.K=4,5"]]
    started = time.monotonic()
    procs = [
        start_run_py(*args, *TINY, store=store, out=tmp_path / f"hydra{i}")
        for i, args in enumerate([*singles, *sweeps])
    ]
    try:
        outputs = [p.communicate(timeout=1200)[0] for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    took = time.monotonic() - started
    refused = [out for p, out in zip(procs, outputs, strict=True) if p.returncode != 0]
    _, found = runs(store)
    status = Counter(r.info.status for r in found)
    print(f"{len(procs) - len(refused)} of {len(procs)} processes succeeded, runs {dict(status)}, in {took:.0f} s")
    assert not refused, "\n---\n".join(refused)
    names = Counter(r.info.run_name.split("-n_init")[0] for r in found if "sweep.overrides" not in r.data.tags)
    expected = [f"pca-k4-kmeans-K{k}" for k in range(2, 10)] + [f"svd-k4-kmeans-K{k}" for k in range(2, 6)]
    assert sorted(names) == sorted(expected) and set(names.values()) == {1}  # each once
    assert len(found) == 14 and status == {"FINISHED": 14}  # 8 single runs, 2 × 2 jobs and their 2 parents
    _, assets = runs(store, "clustersweep-assets")  # the parents' one copy of plotly.js: at least one, all usable
    assert assets and {r.info.status for r in assets} == {"FINISHED"}
