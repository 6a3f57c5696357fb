"""One job of a sweep or a search: a clustering run as a child of the sweep's parent (`app.sweep`).

A job never raises into Hydra (which would stop the sweep): its failure is recorded on its child run (FAILED, tag
`error`, artifact `error.txt`) — a run made for it when it failed before its run existed — and the next job runs.
A job whose identity (resolved config + data sha256 + code version) already FINISHED in the experiment is skipped
and listed on the parent. Its values are its `sweep.select_by` metrics: the objectives of a search.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any, NamedTuple

from hydra.core.hydra_config import HydraConfig
from mlflow.tracking import MlflowClient
from omegaconf import DictConfig

from clustersweep.app.cli import start_up, stopping_on_signals
from clustersweep.app.sweep import ENV_PARENT, ENV_START, ENV_TOTAL, TASK, UNLOGGED
from clustersweep.config.names import run_name
from clustersweep.errors import ConfigError, one_line
from clustersweep.stages.metrics import RANKED, REPLICATED, objectives
from clustersweep.tasks.cluster import execute, prepare
from clustersweep.tracking import runs
from clustersweep.tracking.identity import finished_twin
from clustersweep.tracking.redact import redact
from clustersweep.tracking.store import DEFAULT_URI, check_reachable, open_experiment, tracking_uri


class Outcome(NamedTuple):
    """What a job gives its sweeper: its `sweep.select_by` metrics by name, the objectives of a search (None when it
    failed or its clustering is degenerate, a metric None when the run has none: the search then marks the trial
    failed and goes on, never its best), and the run that holds them (None when it failed before its run
    existed)."""

    values: dict[str, float | None] | None
    run_id: str | None


def job(cfg: DictConfig) -> Outcome:
    """Run one job as a child run; records failures instead of raising (except Ctrl-C, SIGTERM and SIGHUP: the run
    closed KILLED, they stop the sweep)."""
    start_up()  # a launcher's worker process (Ray's, joblib's) starts bare
    with stopping_on_signals():  # in a launcher's worker process too (the sweep's own process has them already)
        return _job(cfg)


def _job(cfg: DictConfig) -> Outcome:
    parent = os.environ.get(ENV_PARENT) or None
    hc = HydraConfig.get()
    num, total = hc.job.num, os.environ.get(ENV_TOTAL, "?")
    label = _safe_name(cfg, hc)
    head = f"[{num + 1}/{total}] {label}"
    uri = tracking_uri(cfg) if "tracking" in cfg else DEFAULT_URI
    client = MlflowClient(uri)
    tags = {"sweep.job": str(num)}
    note = Path(hc.runtime.output_dir) / UNLOGGED
    note.unlink(missing_ok=True)  # a note from an earlier sweep in the same directory
    started = time.perf_counter()
    try:
        if cfg.get("task") != TASK:
            raise ConfigError(f"task={cfg.get('task')} cannot run as a sweep's job: expected task={TASK}")
        prep = prepare(cfg)
        done = None if cfg.sweep.rerun_finished else finished_twin(client, prep.experiment_id, prep.identity)
        if done is not None:
            if parent:
                client.set_tag(parent, f"skipped.{num}", done)
            print(f"{head} … skipped: identical run {done} already finished", flush=True)
            twin = client.get_run(done).data
            return Outcome(None if "degenerate" in twin.tags else _values(twin.metrics, cfg), done)
        print(f"{head} … started", flush=True)
        result = execute(prep, tags, parent=parent)
    except KeyboardInterrupt:
        print(f"{head} … killed", flush=True)
        raise
    except Exception as e:  # noqa: BLE001 - a failed job must not stop the sweep
        logged = _record_failure(cfg, uri, parent, tags, label, e)
        if not logged:
            note.write_text(label)
        said = redact(one_line(e))
        print(f"{head} … FAILED: {said}" + ("" if logged else " (not in the tracking store)"), flush=True)
        return Outcome(None, None)
    took = time.perf_counter() - started
    said = _selected_by(result.metrics, cfg)
    said += f", degenerate: {result.degenerate}" if result.degenerate else ""
    print(f"{head} … finished in {took:.1f} s{said}{_eta(num, total)}", flush=True)
    return Outcome(None if result.degenerate else _values(result.metrics, cfg), result.run_id)


def _values(scores: dict[str, float], cfg: DictConfig) -> dict[str, float | None]:
    """A run's value of each objective of `sweep.select_by`."""
    return {m: scores.get(m) for m in objectives(cfg.sweep.select_by)}


def _selected_by(scores: dict[str, float], cfg: DictConfig) -> str:
    """A finished job's part of its progress line: its value of each metric the sweep selects by (a criterion
    the parent computes over the jobs, said so, with the run's value it is made of)."""
    said = []
    for m in objectives(cfg.sweep.select_by):
        if m == REPLICATED:
            said.append(f"{m}: at the sweep's end, over the replicates")
            continue
        if m == RANKED:
            said.append(f"{m}: at the sweep's end, ranking by {_value(scores, str(cfg.sweep.ace_index))}")
            continue
        said.append(_value(scores, m))
    return "".join(f", {s}" for s in said)


def _value(scores: dict[str, float], m: str) -> str:
    v = scores.get(m)
    return f"no {m}" if v is None else f"{m} {v:.3f}" if abs(v) < 1000 else f"{m} {v:.0f}"


def _record_failure(
    cfg: DictConfig, uri: str, parent: str | None, tags: dict[str, str], label: str, e: Exception
) -> bool:
    """A job that failed before its run existed (bad value, missing data) still leaves a FAILED child; one whose
    run the tracking core could not close (the store went away meanwhile) has it closed now.

    False when the store cannot take it (a server that stopped answering): the caller leaves a note instead.
    """
    client = MlflowClient(uri)
    try:
        check_reachable(uri)
        if parent:
            exp_id = client.get_run(parent).info.experiment_id
            query = f"tags.`mlflow.parentRunId` = '{parent}' and tags.`sweep.job` = '{tags['sweep.job']}'"
            mine = client.search_runs([exp_id], query, max_results=1)
        else:
            (_, exp_id), mine = open_experiment(cfg), []
        if mine and mine[0].info.status != "RUNNING":  # the tracking core recorded it
            return True
        if mine:
            runs.Run(client, mine[0].info.run_id, mine[0].info.run_name).fail(e)
        else:
            overrides = {"hydra.overrides": redact(" ".join(HydraConfig.get().overrides.task))}
            runs.start(uri, exp_id, label, tags={**tags, **overrides}, parent=parent).fail(e)
    except Exception:  # noqa: BLE001 - the store is gone: the job's FAILED line and its note must still happen
        return False
    return True


def _safe_name(cfg: DictConfig, hc: Any) -> str:
    try:
        return run_name(cfg)
    except Exception:  # noqa: BLE001 - a broken config still needs a name for its FAILED run
        return " ".join(hc.overrides.task) or f"job{hc.job.num}"


def _eta(num: int, total: str) -> str:
    start = os.environ.get(ENV_START)
    if not start or not total.isdigit():
        return ""
    done, left = num + 1, int(total) - num - 1
    secs = (time.time() - float(start)) / done * left
    return f" · ETA {int(secs // 60)}m{int(secs % 60):02d}s" if left > 0 else ""
