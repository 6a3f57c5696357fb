"""Every way a run ends is recorded by its own process: SIGTERM and SIGHUP close the running job's run and the
sweep's parent KILLED, as Ctrl-C does, and exit 128 + the signal's number (a run a dead process left RUNNING:
test_store.py)."""

from __future__ import annotations

import signal
import subprocess

import pytest
from conftest import WAIT, runs, start_run_py, wait_for

# Long enough for the signal to find the run at work: its K-Means restarts take minutes.
SLOW = [
    "dataset=synthetic",
    "reducer.k=4",
    "clusterer.n_init=20000",
    "plots.enabled=false",
    "model.log=false",
]


def _start(*args: str, store: str, out) -> subprocess.Popen:
    return start_run_py(*args, store=store, out=out, stderr=subprocess.PIPE)


def _wait_running(proc: subprocess.Popen, store: str, count: int = 1) -> None:
    """Until `count` runs that compute (not a sweep's parent) are RUNNING in the store; the process must live on."""

    def running() -> bool:
        found = runs(store)[1]
        return proc.poll() is not None or (
            sum(r.info.status == "RUNNING" and "sweep.overrides" not in r.data.tags for r in found) >= count
        )

    wait_for(running)
    if proc.poll() is not None or not running():
        proc.kill()
        raise AssertionError(f"no {count} RUNNING run(s) while the process lived: {proc.communicate()}")


def _stopped(proc: subprocess.Popen, sig: signal.Signals) -> tuple[str, str]:
    try:
        out, err = proc.communicate(timeout=WAIT)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 128 + sig, out + err
    assert f"stopped by {sig.name}" in err.splitlines()[-1], err
    return out, err


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP], ids=lambda s: s.name)
def test_a_single_run_stopped_by_a_signal_is_killed_and_exits_128_plus_its_number(store, tmp_path, sig):
    proc = _start(*SLOW, "clusterer.K=3", store=store, out=tmp_path / "hydra")
    _wait_running(proc, store)
    proc.send_signal(sig)
    _stopped(proc, sig)
    client, (run,) = runs(store)
    assert run.info.status == "KILLED"
    assert client.get_run(run.info.run_id).data.tags["error"] == f"Stopped: stopped by {sig.name}"


@pytest.mark.parametrize(
    "launcher", [[], ["hydra/launcher=joblib", "hydra.launcher.n_jobs=2"]], ids=["basic", "joblib"]
)
def test_a_sweep_stopped_by_sigterm_leaves_no_run_running(store, tmp_path, launcher):
    """Under joblib the signal reaches the sweep's own process alone (`kill PID`): joblib kills its workers, and
    the parent marks their runs KILLED before it closes."""
    proc = _start("-m", *launcher, *SLOW, "clusterer.K=2,3", store=store, out=tmp_path / "hydra")
    _wait_running(proc, store, count=2 if launcher else 1)
    proc.send_signal(signal.SIGTERM)
    out, _ = _stopped(proc, signal.SIGTERM)
    _, found = runs(store)
    parents = [r for r in found if "sweep.overrides" in r.data.tags]
    children = [r for r in found if "mlflow.parentRunId" in r.data.tags]
    assert len(parents) == 1 and parents[0].info.status == "KILLED", out
    assert children and {c.info.status for c in children} == {"KILLED"}, out  # the job(s) at work; none after
