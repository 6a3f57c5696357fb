"""A sweep's lifetime: a Hydra multirun is one MLflow parent run with a child run per job (`app.job`).

- The sweepers (`hydra_plugins.clustersweep_sweepers`: the grid of `-m`, and a search's study) check the sweep's
  settings when they are set up (`check_settings`) and run it inside `tracked_sweep`, which opens the parent and
  always closes it: FINISHED, or FAILED when a job failed or none reported (then `JobsFailed`: exit 1), KILLED on
  Ctrl-C, FAILED on a crash. Every job of a grid — a search's fixed values — is composed and checked against its
  data before the parent exists (`check_jobs`): one that a run would refuse is one line and no run. A sweep
  stopped before any job ran leaves no run: its parent is closed, then deleted.
- The parent, the job count and the sweep's start reach the jobs through environment variables, which launcher
  processes (joblib) inherit and Ray workers get through Ray's runtime_env.
- Runs left RUNNING by a dead process are marked KILLED when any run starts (`runs.reap_orphans`).
- A tracking server that stops answering fails the jobs that cannot log, visibly; as the store cannot hold those
  failures, each such job leaves a note in its Hydra output dir, which the parent's outcome counts.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Collection, Iterator
from contextlib import contextmanager
from pathlib import Path

from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import HydraException
from mlflow.entities import RunStatus
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from clustersweep.app import advice
from clustersweep.app.cli import JobsFailed
from clustersweep.config.validate import check_sweep, validate
from clustersweep.errors import ConfigError, DataError, one_line
from clustersweep.report import summary
from clustersweep.report.tables import Outcome, sweep_table, with_criteria
from clustersweep.stages.metrics import CRITERIA, RANKED, REPLICATED, lower_is_better, objectives, objectives_name
from clustersweep.tasks.cluster import checked
from clustersweep.tracking import assets, registry, runs, ui
from clustersweep.tracking.redact import redact
from clustersweep.tracking.store import check_reachable, open_experiment, store_errors, tracking_uri

ENV_PARENT, ENV_TOTAL, ENV_START = "CLUSTERSWEEP_PARENT_RUN", "CLUSTERSWEEP_SWEEP_TOTAL", "CLUSTERSWEEP_SWEEP_START"
# What a job on a Ray worker needs from the driver's environment besides the hand-off: where and how to log.
FORWARDED_ENV = ("MLFLOW_TRACKING_", "MLFLOW_HTTP_REQUEST_", "MLFLOW_DISABLE_TELEMETRY", "CLUSTERSWEEP_")
DONE = RunStatus.to_string(RunStatus.FINISHED)
UNLOGGED = "unlogged.txt"  # in a job's output dir: it failed and the tracking store could not record it
TASK = "cluster"  # the only task a sweep's jobs run


def in_multirun() -> bool:
    """This process runs a sweep's job: Hydra's multirun mode, or a job a sweep's parent launched (its hand-off,
    ENV_PARENT), whatever the mode (Hydra's own test runner, `hydra.test_utils`, sets none)."""
    from hydra.types import RunMode

    return HydraConfig.initialized() and (
        HydraConfig.get().mode == RunMode.MULTIRUN or bool(os.environ.get(ENV_PARENT))
    )


def is_search(config: DictConfig) -> bool:
    """A multirun config whose sweeper is a search's study (`hydra/sweeper=study`), not the grid."""
    return str(OmegaConf.select(config, "hydra.sweeper._target_")).endswith(".StudySweeper")


def job_overrides(config: DictConfig) -> list[list[str]]:
    """Every job's overrides for the grid (Hydra's basic sweeper); [] for a search (the count is its budget)."""
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper

    if is_search(config):
        return []
    params = [f"{k}={v}" for k, v in (config.hydra.sweeper.get("params") or {}).items()]
    parsed = _parser().parse_overrides(with_replicates(config, [*params, *config.hydra.overrides.task]))
    return [job for batch in BasicSweeper.split_arguments(parsed, None) for job in batch]


def with_replicates(config: DictConfig, arguments: list[str]) -> list[str]:
    """The sweep's overrides, the seed swept over its replicates: `sweep.replicates=N` runs each configuration
    with seeds seed … seed+N-1 (`seed` as given on the command line, else the config's)."""
    seeds = replicate_seeds(app_config(config))
    if seeds is None:
        return list(arguments)
    kept = [o.input_line for o in _parser().parse_overrides(list(arguments)) if o.key_or_group != "seed"]
    return [*kept, "seed=" + ",".join(map(str, seeds))]


def replicate_seeds(app: DictConfig) -> list[int] | None:
    """The seeds of each configuration's replicates, seed … seed+N-1 (`sweep.replicates=N`); None for one run."""
    n = int(app.sweep.get("replicates", 1))
    return [int(app.seed) + i for i in range(n)] if n > 1 else None


def _parser() -> OverridesParser:
    return OverridesParser.create(config_loader=GlobalHydra.instance().config_loader())


ONE_PER_SWEEP = ("sweep.", "tracking.", "hydra.")  # keys whose value is the whole sweep's, never a job's


def check_settings(config: DictConfig) -> None:
    """Refuse, before any run exists, a sweep whose jobs would not do what its settings say: a task other than a
    clustering run (EDA and the seed notebook are one command each, not jobs), a sweep-wide setting swept, or
    not allowed (its objective must be a label-free metric; its sweeper's and launcher's counts), or a search
    resumed under another objective than its study's."""
    app = app_config(config)
    tasks = {str(app.get("task"))}
    replicates = int(app.sweep.get("replicates", 1))
    for o in _parser().parse_overrides(list(config.hydra.overrides.task)):
        if o.key_or_group == "seed" and o.is_sweep_override() and replicates > 1:
            raise ConfigError(
                f"{o.input_line} cannot be swept with sweep.replicates={replicates}: the replicates are the seeds "
                f"seed … seed+{replicates - 1}; give one seed (the first), or sweep.replicates=1"
            )
        if o.key_or_group == "task":
            tasks |= set(o.sweep_string_iterator()) if o.is_sweep_override() else {str(o.value())}
        elif o.is_sweep_override() and o.key_or_group.startswith(ONE_PER_SWEEP):
            each = advice.one_sweep_per_value(list(config.hydra.overrides.task), o.key_or_group)
            raise ConfigError(
                f"{o.input_line} cannot be swept: {o.key_or_group} is one value for the whole sweep (its parent "
                f"run); run one sweep per value: {each}"
            )
    for task in sorted(tasks - {TASK}):
        why = {
            "eda": "it is one run per dataset: run `python run.py task=eda` (with dataset=… for another)",
            "notebook": "+experiment=seed_notebook runs its own sweeps under one parent: run it without -m",
        }.get(task, f"expected task={TASK}")
        raise ConfigError(f"task={task} cannot run under -m (a sweep's jobs are clustering runs): {why}")
    check_sweep(config)
    _check_criterion(config, app, replicates)
    if app.sweep.get("register_best") is not None:
        registry.check_name(str(app.sweep.register_best))
    study = OmegaConf.select(config, "hydra.sweeper.study_name")
    earlier = study and _study_parent(app, study)
    chosen = objectives_name(app.sweep.select_by)
    objective = earlier and earlier.data.tags.get("sweep.select_by", chosen)
    if earlier and objective != chosen:
        raise ConfigError(
            f"study {study!r} optimizes {objective}, not sweep.select_by={_given(app.sweep.select_by)}: its values "
            f"would mix; give this objective its own hydra.sweeper.study_name"
        )


def _given(select_by: object) -> str:
    """`sweep.select_by` as typed: a metric, or `[a,b]`."""
    return select_by if isinstance(select_by, str) else f"[{objectives_name(select_by)}]"


def _check_criterion(config: DictConfig, app: DictConfig, replicates: int) -> None:
    """What the sweep's criteria need: replicates for `stability`, more spaces and a grid for `ace`; a search
    with replicates draws no seed."""
    chosen, said = objectives(app.sweep.select_by), f"sweep.select_by={_given(app.sweep.select_by)}"
    if replicates > 1 and "seed" in (OmegaConf.select(config, "hydra.sweeper.params") or {}):
        raise ConfigError(
            f"hydra.sweeper.params.seed cannot be searched with sweep.replicates={replicates}: the replicates are "
            "the seeds seed … seed+N-1 of every trial; drop it from the space"
        )
    if REPLICATED in chosen and replicates < 2:
        raise ConfigError(
            f"{said} needs sweep.replicates ≥ 2, got {replicates}: {REPLICATED} is the agreement "
            "between a configuration's replicates (e.g. sweep.replicates=3)"
        )
    if RANKED in chosen and is_search(config):
        allowed = ", ".join(m for m in CRITERIA if m != RANKED)
        raise ConfigError(
            f"{said} cannot be a search's objective: {RANKED} ranks a grid's runs against each other, so a trial "
            f"has no value of its own; a search takes {allowed}, or a list of them (use {RANKED} in a grid sweep)"
        )
    if RANKED in chosen and not app.metrics.get("other_spaces"):
        raise ConfigError(
            f"{said} needs metrics.other_spaces, got []: {RANKED} averages a run's ranks over "
            f"metrics.space={app.metrics.space} and those (e.g. metrics.other_spaces=[embedding])"
        )


def _study_parent(cfg: DictConfig, study: str):
    """The parent run a search's study already has (an interrupted or finished search), if any."""
    uri, exp_id = open_experiment(cfg)
    with store_errors(uri):
        found = MlflowClient(uri).search_runs([exp_id], f"tags.`sweep.study` = '{study}'", max_results=1)
    return found[0] if found else None


def app_config(config: DictConfig) -> DictConfig:
    """The application part of the multirun config (without `hydra`), as a job would see it."""
    return OmegaConf.masked_copy(config, [k for k in config if k != "hydra"])


class Parent:
    """The parent run of the sweep this process runs, from `open` to `close` (or `abort`)."""

    def __init__(
        self, run: runs.Run, sweep: DictConfig, sweep_dir: Path, start: float, register_best: str | None = None
    ) -> None:
        self.run, self.objectives, self.ace_index = run, objectives(sweep.select_by), str(sweep.ace_index)
        self.sweep_dir, self.start, self.register_best = sweep_dir, start, register_best

    @classmethod
    def open(cls, config: DictConfig, jobs: int | None, study: str | None = None) -> Parent:
        """Open the sweep's parent run — or, for a search whose study already has one, reopen it — mark the
        store's orphans KILLED, and hand the parent to the jobs."""
        cfg = app_config(config)
        uri, exp_id = open_experiment(cfg)
        grammar = redact(" ".join(config.hydra.overrides.task))
        tags = {
            "sweep.overrides": grammar,
            "sweep.dir": str(config.hydra.sweep.dir),
            "sweep.jobs": str(jobs or "unknown"),
            "sweep.select_by": objectives_name(cfg.sweep.select_by),
        }
        earlier = study and _study_parent(cfg, study)
        if earlier:  # a resumed search (its objective checked by check_settings): its trials join its parent run
            run = runs.reopen(uri, earlier.info.run_id, tags)
        else:
            name = f"search {study}" if study else _sweep_name(grammar)
            run = runs.start(uri, exp_id, name, tags={**tags, **({"sweep.study": study} if study else {})})
        start = time.time()
        hand_off(config, {ENV_PARENT: run.run_id, ENV_TOTAL: str(jobs or "?"), ENV_START: str(start)})
        where = f"experiment {cfg.tracking.experiment!r}"
        print(f"sweep: {jobs or '?'} jobs → parent run {run.run_id} in {where} of {redact(uri)}", flush=True)
        register = cfg.sweep.get("register_best")
        return cls(run, cfg.sweep, Path(str(config.hydra.sweep.dir)), start, register and str(register))

    def close(self, status: str | None = None) -> Outcome:
        """Summarize and close the parent; status None means FINISHED unless a job failed.

        Jobs that failed without reaching the store (their notes) count as failed; a store that does not answer
        now leaves the parent RUNNING, and the next run's start marks it KILLED.
        """
        unlogged = self._unlogged()
        final = status or DONE
        outcome = None
        try:
            check_reachable(self.run.client.tracking_uri)
            table = with_criteria(self.run.client, sweep_table(self.run.client, self.run.run_id), self.ace_index)
            outcome = Outcome.of(table, unlogged)
            final = status or (DONE if outcome.ok else "FAILED")
            self.run.log(tags={"sweep.outcome": outcome.line()})
            js = assets.plotlyjs(self.run.client.tracking_uri)
            top = summary.log_report(self.run, table, self.objectives, outcome, js)
            if self.register_best:
                self._register(top)
        except Exception as e:  # noqa: BLE001 - the parent is closed whatever the report does
            outcome = outcome or Outcome(failed=unlogged, store_error=redact(one_line(e)))
            print(f"sweep: could not write the summary: {redact(one_line(e))}", file=sys.stderr, flush=True)
        try:
            if outcome.store_error is None:
                self.run.finish(final)
        except Exception as e:  # noqa: BLE001 - the outcome line below still says what happened
            print(f"sweep: could not close the parent run: {redact(one_line(e))}", file=sys.stderr, flush=True)
        finally:
            for key in (ENV_PARENT, ENV_TOTAL, ENV_START):
                os.environ.pop(key, None)
        if outcome.store_error is None:
            uri, first = self.run.client.tracking_uri, self.objectives[0]  # several: ordered by the first
            link = ui.runs_link(uri, self.run.experiment_id, first, lower_is_better(first), self.run.run_id)
            print(f"sweep: its runs in the MLflow UI{redact(ui.opening(uri))}: {link}", flush=True)
        print(f"sweep {('FAILED' if outcome.store_error else final).lower()}: {outcome.line()}", flush=True)
        return outcome

    def _register(self, top: object) -> None:
        """The best run's model as the next version of `sweep.register_best`, tagged with this sweep."""
        chosen = objectives_name(self.objectives)
        if top is None:
            print(f"sweep: no run to register as {self.register_best!r}: none finished with {chosen}")
            return
        tags = {
            "sweep.parent": self.run.run_id,
            "sweep.selected_by": chosen,
            **{m: f"{top[m]:.6g}" for m in self.objectives},
        }
        try:
            version = registry.register(self.run.client.tracking_uri, self.register_best, top.run_id, tags)
        except (ValueError, MlflowException) as e:
            print(
                f"sweep: could not register {top.run_name} as {self.register_best!r}: {redact(one_line(e))}",
                file=sys.stderr,
            )
            return
        self.run.log(tags={"best.registered": f"{self.register_best}/{version}"})
        print(f"sweep: registered {top.run_name} as models:/{self.register_best}/{version}", flush=True)

    def abort(self, status: str) -> None:
        """Close after Ctrl-C, SIGTERM or SIGHUP (KILLED) or a crash (FAILED); a parent with no job run yet is
        closed so, then deleted. The runs of jobs whose worker process the launcher ended (joblib's, killed) are
        marked KILLED first. Never raises."""
        try:
            client, run_id = self.run.client, self.run.run_id
            runs.reap_orphans(client)
            parent = client.get_run(run_id)
            children = client.search_runs(
                [parent.info.experiment_id], f"tags.`mlflow.parentRunId` = '{run_id}'", max_results=1
            )
            if not children and not any(k.startswith("skipped.") for k in parent.data.tags):
                self.run.finish(status)  # not left RUNNING in the experiment's deleted runs
                client.delete_run(run_id)
                return
            self.close(status)
        except Exception as e:  # noqa: BLE001 - closing must not hide the original error
            print(f"sweep: could not close the parent run: {redact(one_line(e))}", file=sys.stderr)

    def _unlogged(self) -> list[str]:
        """The jobs of this sweep that failed and could not say so in the store (their notes, newer than its
        start)."""
        notes = [p for p in self.sweep_dir.glob(f"**/{UNLOGGED}") if p.stat().st_mtime >= self.start]
        return [p.read_text().strip() for p in sorted(notes, key=lambda p: p.stat().st_mtime)]


def check_jobs(config: DictConfig, jobs: list[list[str]], searched: Collection[str] = ()) -> None:
    """Every job's config composes (Hydra's own check of a batch, done once for the whole grid) and passes what its
    run would check against its data (`tasks.cluster.checked`: the data loaded once per dataset config), before
    the sweep's parent run exists; else a ConfigError, one line naming the job. A refusal that names a `searched`
    key (a search's: its trials draw their own values) is not the job's fixed values' and is let through."""
    loader = GlobalHydra.instance().config_loader()
    composed = []
    for job in jobs:
        try:
            composed.append(app_config(loader.load_sweep_config(master_config=config, sweep_overrides=list(job))))
        except (HydraException, OmegaConfBaseException) as e:
            raise ConfigError(across_choices(config, e)) from None
    by_data = sorted(range(len(jobs)), key=lambda i: OmegaConf.to_yaml(composed[i].dataset))  # each data read once
    for i in by_data:
        try:
            validate(composed[i])
            checked(composed[i])
        except (ConfigError, DataError) as e:
            if any(f"{key}=" in str(e) for key in searched):
                continue
            own = [
                o for o in jobs[i] if not o.lstrip("+~").startswith(ONE_PER_SWEEP) and o.split("=")[0] not in searched
            ]
            where = "every trial of the search" if searched else f"the sweep's job {i + 1}/{len(jobs)}"
            raise ConfigError(f"{one_line(e)} — in {where} ({' '.join(own)}); no run was made") from None


def across_choices(config: DictConfig, e: BaseException) -> str:
    """A job's config that did not compose, in one line: for a key only some of the swept choices have, the
    sweeps that work (`advice`), made of the sweep's own overrides."""
    return advice.key_of_another_choice(e, list(config.hydra.overrides.task), multirun=True) or one_line(e)


@contextmanager
def tracked_sweep(config: DictConfig, study: str | None = None) -> Iterator[Parent]:
    """Open the sweep's parent run (a search's: that of its `study`, reopened when it has one), run the sweep, and
    close the parent however it ends (the sweepers have checked the sweep's settings in their setup:
    `check_settings`; a grid's jobs are composed first: `check_jobs`)."""
    jobs = job_overrides(config)
    check_jobs(config, jobs)
    with store_errors(tracking_uri(app_config(config))):
        parent = Parent.open(config, len(jobs) or None, study)
    try:
        yield parent
    except KeyboardInterrupt:
        parent.abort("KILLED")
        raise
    except (HydraException, OmegaConfBaseException) as e:  # a search trial's config did not compose
        parent.abort("FAILED")
        raise ConfigError(across_choices(config, e)) from None
    except BaseException:
        parent.abort("FAILED")
        raise
    if not parent.close().ok:
        raise JobsFailed


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


def _sweep_name(grammar: str) -> str:
    name = f"sweep {grammar}" if grammar else "sweep"  # grammar: already redacted
    return name if len(name) <= 200 else name[:199] + "…"
