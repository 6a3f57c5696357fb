"""Sweeps: a Hydra multirun is one MLflow parent run with a child run per job.

- The parent is opened by `SweepCallback.on_multirun_start` and always closed: by `on_multirun_end`
  (FINISHED, or FAILED when a job failed), or by `cli.guarded` through `abort()` on Ctrl-C or a crash.
- A job never raises into Hydra (which would stop the sweep and skip `on_multirun_end`): its failure
  is recorded on its child run (FAILED, tag `error`, artifact `error.txt`) and the next job runs.
- A job whose identity (resolved config + data sha256 + code version) already FINISHED in the
  experiment is skipped and listed; runs left RUNNING by a dead process are marked KILLED and redone.
The parent, the total job count and the sweep's start reach the jobs through environment variables,
which launcher processes (joblib) inherit and Ray workers get through Ray's runtime_env. Hydra composes every
job's config before launching any; a key that only some choices have (`clusterer.K` with
`clusterer=kmeans,dbscan`) stops the sweep there, with one line.
- A tracking server that stops answering fails the jobs that cannot log, visibly; as the store cannot hold
  those failures, each such job leaves a note in its Hydra output dir, which the sweep's summary counts.
"""

from __future__ import annotations

import os
import sys
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.experimental.callback import Callback
from mlflow.entities import RunStatus
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient
from omegaconf import DictConfig, OmegaConf
from threadpoolctl import threadpool_limits

from clustersweep import summary, tracking
from clustersweep.cli import USER_ERRORS, fail, one_line
from clustersweep.config import ConfigError
from clustersweep.pipeline import execute, prepare, run_name

ENV_PARENT, ENV_TOTAL, ENV_START = "CLUSTERSWEEP_PARENT_RUN", "CLUSTERSWEEP_SWEEP_TOTAL", "CLUSTERSWEEP_SWEEP_START"
# What a job on a Ray worker needs from the driver's environment besides the hand-off: where and how to log.
FORWARDED_ENV = ("MLFLOW_TRACKING_", "MLFLOW_HTTP_REQUEST_", "CLUSTERSWEEP_")
DONE, KILLED = RunStatus.to_string(RunStatus.FINISHED), RunStatus.to_string(RunStatus.KILLED)
UNLOGGED = "unlogged.txt"  # in a job's output dir: it failed and the tracking store could not record it


@dataclass
class Outcome:
    """How the last sweep of this process ended; `cli.guarded` turns failures into a non-zero exit."""

    finished: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    interrupted: list[str] = field(default_factory=list)  # KILLED by Ctrl-C: a resumed search's earlier trials
    store_error: str | None = None  # the store did not answer at the end: the other jobs' outcome is unknown

    @property
    def ok(self) -> bool:
        return not self.failed and self.store_error is None

    def line(self) -> str:
        if self.store_error is not None:
            text = f"{len(self.failed)} failed" + (": " + ", ".join(self.failed) if self.failed else "")
            return f"{text}; the other jobs unknown: {self.store_error}"
        text = f"{len(self.finished)} finished, {len(self.failed)} failed"
        if self.failed:
            text += ": " + ", ".join(self.failed)
        text += f"; {len(self.skipped)} skipped (already finished)" if self.skipped else ""
        return text + (f"; {len(self.interrupted)} interrupted" if self.interrupted else "")


_open: dict[str, str] = {}  # the parent run this process opened: {"run_id", "uri", "dir", "start"}
last_outcome: Outcome | None = None


def is_open() -> bool:
    """Whether this process has a sweep's parent run open."""
    return bool(_open)


def in_multirun() -> bool:
    from hydra.types import RunMode

    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


def job_overrides(config: DictConfig) -> list[list[str]]:
    """Every job's overrides for the basic (grid) sweeper; [] for other sweepers (counts unknown)."""
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper

    if not config.hydra.sweeper._target_.endswith("BasicSweeper"):
        return []
    params = [f"{k}={v}" for k, v in (config.hydra.sweeper.get("params") or {}).items()]
    parser = OverridesParser.create(config_loader=GlobalHydra.instance().config_loader())
    parsed = parser.parse_overrides([*params, *config.hydra.overrides.task])
    return [job for batch in BasicSweeper.split_arguments(parsed, None) for job in batch]


class SweepCallback(Callback):
    """Opens the parent run before the first job and closes it, with the sweep's summary, after the last."""

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        # Hydra turns a callback's exception into a warning and goes on; a sweep that cannot start must stop.
        tracking.redact_logs()  # before the launcher logs each job's overrides
        try:
            self._start(config)
        except USER_ERRORS as e:
            fail(e)
        except MlflowException as e:
            uri = tracking.redact(tracking.tracking_uri(_app_config(config)))
            fail(ConfigError(f"tracking store {uri} unusable: {one_line(e)}"))

    def _start(self, config: DictConfig) -> None:
        global last_outcome
        last_outcome = None
        jobs = job_overrides(config)
        cfg = _app_config(config)
        uri = tracking.tracking_uri(cfg)
        exp_id = tracking.experiment_id(uri, cfg.tracking.experiment)
        client = MlflowClient(uri)
        reap_orphans(client, exp_id)
        grammar = tracking.redact(" ".join(config.hydra.overrides.task))
        tags = {
            "sweep.overrides": grammar,
            "sweep.dir": str(config.hydra.sweep.dir),
            "sweep.jobs": str(len(jobs) or "unknown"),
            "command": tracking.command_line(),
            **tracking.git_state(),
            **tracking.process_tags(),
        }
        study = OmegaConf.select(config, "hydra.sweeper.study_name")
        if study:
            tags.update({"sweep.study": study, "sweep.select_by": cfg.sweep.select_by})
        earlier = study and client.search_runs([exp_id], f"tags.`sweep.study` = '{study}'", max_results=1)
        if earlier:  # a resumed search: its trials join the study's parent run
            parent = earlier[0]
            objective = parent.data.tags.get("sweep.select_by", cfg.sweep.select_by)
            if objective != cfg.sweep.select_by:
                raise ConfigError(
                    f"study {study!r} optimizes {objective}, not sweep.select_by={cfg.sweep.select_by}: its values "
                    f"would mix; give this objective its own hydra.sweeper.study_name"
                )
            client.update_run(parent.info.run_id, status="RUNNING")
            for key, value in tags.items():
                client.set_tag(parent.info.run_id, key, value)
        else:
            name = f"search {study}" if study else _sweep_name(grammar)
            parent = client.create_run(exp_id, run_name=name, tags=tags)
        start = str(time.time())
        _open.update(run_id=parent.info.run_id, uri=uri, dir=str(config.hydra.sweep.dir), start=start)
        hand_off(config, {ENV_PARENT: parent.info.run_id, ENV_TOTAL: str(len(jobs) or "?"), ENV_START: start})
        print(
            f"sweep: {len(jobs) or '?'} jobs → parent run {parent.info.run_id} in experiment "
            f"{cfg.tracking.experiment!r}",
            flush=True,
        )

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        close(_app_config(config).sweep.select_by)


def hand_off(config: DictConfig, env: dict[str, str]) -> None:
    """Give the jobs the parent run and the sweep's counts: launcher processes (basic, joblib) inherit this
    process's environment; Ray workers do not, so Ray is started here, from the launcher's own `ray.init`
    config, with the environment in its runtime_env (the Ray launcher then finds Ray running and uses it)."""
    os.environ.update(env)
    launcher = config.hydra.launcher
    if not str(launcher.get("_target_", "")).endswith(".RayLauncher"):
        return
    init = OmegaConf.to_container(launcher.ray.init, resolve=True) or {}
    if str(init.get("address") or "127.0.0.1").split(":")[0] in ("127.0.0.1", "localhost"):
        # Ray on this machine alone (started here, or a loopback cluster): Ray's switch for "no remote nodes"
        # keeps it on 127.0.0.1; otherwise Ray swaps loopback for the machine's address and listens there.
        os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    import ray

    runtime_env = dict(init.pop("runtime_env", None) or {})
    forwarded = {k: v for k, v in os.environ.items() if k.startswith(FORWARDED_ENV)}
    runtime_env["env_vars"] = {**forwarded, **runtime_env.get("env_vars", {}), **env}
    if ray.is_initialized():
        ray.shutdown()
    ray.init(**init, runtime_env=runtime_env)


def _app_config(config: DictConfig) -> DictConfig:
    """The application part of the multirun config (without `hydra`), as a job would see it."""
    return OmegaConf.masked_copy(config, [k for k in config if k != "hydra"])


def _sweep_name(grammar: str) -> str:
    name = f"sweep {grammar}" if grammar else "sweep"  # grammar: already redacted
    return name if len(name) <= 200 else name[:199] + "…"


def reap_orphans(client: MlflowClient, exp_id: str) -> list[str]:
    """Mark KILLED the runs left RUNNING by a process that no longer exists (e.g. after kill -9)."""
    reaped = []
    for r in client.search_runs([exp_id], "attributes.status = 'RUNNING'", max_results=5000):
        if tracking.is_orphaned(r.data.tags):
            client.set_tag(r.info.run_id, "error", "its process ended without closing the run (killed)")
            client.set_terminated(r.info.run_id, "KILLED")
            reaped.append(r.info.run_name)
    if reaped:
        print(f"sweep: marked {len(reaped)} orphaned run(s) KILLED: {', '.join(reaped)}", flush=True)
    return reaped


def close(select_by: str, status: str | None = None) -> Outcome | None:
    """Summarize and close the parent this process opened; status None means FINISHED unless a job failed.

    Jobs that failed without reaching the store (their notes) count as failed; a store that does not answer now
    leaves the parent RUNNING, and the next sweep marks it KILLED.
    """
    global last_outcome
    if not _open:
        return None
    parent, uri, sweep_dir, start = (_open.pop(k) for k in ("run_id", "uri", "dir", "start"))
    unlogged = _unlogged(Path(sweep_dir), float(start))
    client = MlflowClient(uri)
    final = status or "FINISHED"
    try:
        tracking.check_reachable(uri)
        table = summary.sweep_table(client, parent)
        done = table.status == DONE
        last_outcome = Outcome(
            finished=table.loc[done & ~table.skipped, "run_name"].tolist(),
            failed=list(dict.fromkeys([*table.loc[~done & (table.status != KILLED), "run_name"], *unlogged])),
            skipped=table.attrs["skipped_jobs"],
            interrupted=table.loc[table.status == KILLED, "run_name"].tolist(),
        )
        final = status or ("FAILED" if last_outcome.failed else "FINISHED")
        client.set_tag(parent, "sweep.outcome", last_outcome.line())
        summary.log_report(client, parent, table, select_by)
    except Exception as e:  # noqa: BLE001 - the parent is closed whatever the report does
        if last_outcome is None:
            last_outcome = Outcome(failed=unlogged, store_error=one_line(e))
        print(f"sweep: could not write the summary: {one_line(e)}", file=sys.stderr, flush=True)
    try:
        if last_outcome.store_error is None:
            client.set_terminated(parent, final)
    except Exception as e:  # noqa: BLE001 - the outcome line below still says what happened
        print(f"sweep: could not close the parent run {parent}: {one_line(e)}", file=sys.stderr, flush=True)
    finally:
        for key in (ENV_PARENT, ENV_TOTAL, ENV_START):
            os.environ.pop(key, None)
    if last_outcome.store_error is not None:
        final = "FAILED"
    print(f"sweep {final.lower()}: {last_outcome.line()}", flush=True)
    return last_outcome


def _unlogged(sweep_dir: Path, since: float) -> list[str]:
    """The jobs of this sweep that failed and could not say so in the store (their notes, newer than its start)."""
    notes = [p for p in sweep_dir.glob(f"**/{UNLOGGED}") if p.stat().st_mtime >= since]
    return [p.read_text().strip() for p in sorted(notes, key=lambda p: p.stat().st_mtime)]


def abort(status: str) -> None:
    """Close an open parent after Ctrl-C (KILLED) or a crash (FAILED); never raises.

    A sweep stopped before any job ran (a job's config did not compose) leaves no run: its parent is deleted.
    """
    if not _open:
        return
    try:
        client = MlflowClient(_open["uri"])
        parent = client.get_run(_open["run_id"])
        children = client.search_runs(
            [parent.info.experiment_id], f"tags.`mlflow.parentRunId` = '{parent.info.run_id}'", max_results=1
        )
        if not children and not any(k.startswith("skipped.") for k in parent.data.tags):
            client.delete_run(_open.pop("run_id"))
            _open.clear()
            return
        close("silhouette", status)
    except Exception as e:  # noqa: BLE001 - closing must not hide the original error
        print(f"sweep: could not close the parent run: {one_line(e)}", file=sys.stderr)


def job(cfg: DictConfig) -> float | None:
    """One sweep job as a child run; records failures instead of raising (except Ctrl-C).

    Returns the job's `sweep.select_by` metric, the objective of a search; None when it failed or has none (the
    Optuna sweeper then marks the trial failed and goes on)."""
    parent = os.environ.get(ENV_PARENT, "")
    hc = HydraConfig.get()
    num, total = hc.job.num, os.environ.get(ENV_TOTAL, "?")
    label = _safe_name(cfg, hc)
    head = f"[{num + 1}/{total}] {label}"
    uri = tracking.tracking_uri(cfg) if "tracking" in cfg else tracking.DEFAULT_URI
    client = MlflowClient(uri)
    tags = {"mlflow.parentRunId": parent, "sweep.job": str(num)}
    note = Path(hc.runtime.output_dir) / UNLOGGED
    note.unlink(missing_ok=True)  # a note from an earlier sweep in the same directory
    started = time.perf_counter()
    try:
        with threadpool_limits(limits=_threads_per_job(hc)):
            prep = prepare(cfg)
            done = (
                None if cfg.sweep.rerun_finished else tracking.finished_twin(client, prep.experiment_id, prep.identity)
            )
            if done is not None:
                client.set_tag(parent, f"skipped.{num}", done)
                print(f"{head} … skipped: identical run {done} already finished", flush=True)
                return client.get_run(done).data.metrics.get(cfg.sweep.select_by)
            print(f"{head} … started", flush=True)
            result = execute(prep, tags)
    except KeyboardInterrupt:
        print(f"{head} … killed", flush=True)
        raise
    except Exception as e:  # noqa: BLE001 - a failed job must not stop the sweep
        logged = _record_failure(client, uri, tags, label, e)
        if not logged:
            note.write_text(label)
        print(f"{head} … FAILED: {one_line(e)}" + ("" if logged else " (not in the tracking store)"), flush=True)
        return None
    took = time.perf_counter() - started
    nmi = result.metrics.get("nmi")
    print(
        f"{head} … finished in {took:.1f} s" + (f", nmi {nmi:.2f}" if nmi is not None else "") + _eta(num, total),
        flush=True,
    )
    return result.metrics.get(cfg.sweep.select_by)


def _record_failure(client: MlflowClient, uri: str, tags: dict[str, str], label: str, e: Exception) -> bool:
    """A job that failed before its run existed (bad value, missing data) still leaves a FAILED child.

    False when the store cannot take it (a server that stopped answering): the caller leaves a note instead.
    """
    parent, num = tags["mlflow.parentRunId"], tags["sweep.job"]
    try:
        tracking.check_reachable(uri)
        exp_id = client.get_run(parent).info.experiment_id
        mine = client.search_runs(
            [exp_id], f"tags.`mlflow.parentRunId` = '{parent}' and tags.`sweep.job` = '{num}'", max_results=1
        )
        if mine and mine[0].info.status != "RUNNING":  # pipeline.execute already marked it FAILED
            return True
        run_id = mine[0].info.run_id if mine else None
        if run_id is None:
            run_id = client.create_run(
                exp_id,
                run_name=label,
                tags={
                    **tags,
                    **tracking.process_tags(),
                    "hydra.overrides": tracking.redact(" ".join(HydraConfig.get().overrides.task)),
                },
            ).info.run_id
        client.set_tag(run_id, "error", one_line(e)[:5000])
        client.log_text(run_id, tracking.redact(traceback.format_exc()), "error.txt")
        client.set_terminated(run_id, "FAILED")
    except Exception:  # noqa: BLE001 - the store is gone: the job's FAILED line and its note must still happen
        return False
    return True


def _safe_name(cfg: DictConfig, hc: Any) -> str:
    try:
        return run_name(cfg)
    except Exception:  # noqa: BLE001 - a broken config still needs a name for its FAILED run
        return " ".join(hc.overrides.task) or f"job{hc.job.num}"


def _threads_per_job(hc: Any) -> int | None:
    """BLAS/OpenMP threads per job: the cores shared among parallel jobs (None: no limit)."""
    n_jobs = hc.launcher.get("n_jobs") if "launcher" in hc else None
    if not n_jobs:
        return None
    cores = os.cpu_count() or 1
    n_jobs = cores if n_jobs < 0 else n_jobs
    return max(1, cores // n_jobs)


def _eta(num: int, total: str) -> str:
    start = os.environ.get(ENV_START)
    if not start or not total.isdigit():
        return ""
    done, left = num + 1, int(total) - num - 1
    secs = (time.time() - float(start)) / done * left
    return f" · ETA {int(secs // 60)}m{int(secs % 60):02d}s" if left > 0 else ""
