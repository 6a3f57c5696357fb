"""Label-free search: an Optuna study asked and told by clustersweep's own sweeper (`hydra/sweeper=study`), whose
trials Hydra's launcher runs as sweep jobs.

    python run.py -m search=umap_gmm          # conf/search/umap_gmm.yaml: space, budget, objective

- The space is Hydra's override grammar (`choice`, `range`, `interval`, `tag(log, interval(…))`), given in
  `hydra.sweeper.params` or on the command line; `range(a, b)` is a to b, both included.
- The objective is `sweep.select_by`, a label-free metric; the study's direction follows it (resolver
  `cs.direction`, config/resolvers.py). A list of them is a multi-objective study, a direction per objective: each
  trial is told a value per objective, and the parent run reports the Pareto front and its pick
  (report/pareto.py).
- The study is kept with the runs (`storage_url`: `optuna.db` beside a SQLite tracking store, schema `optuna` of
  a PostgreSQL one, or `search.storage`), so an interrupted search resumes, from any machine that reaches the
  storage: `n_trials` is the study's budget of completed trials, and a rerun asks only for those still missing.
  Trials the interruption cut off are marked failed.
- Trials run `n_jobs` at a time (all at once under a parallel launcher); each is an ordinary sweep job
  (`sweep.job`): a child run of the study's one parent run, skipped (its earlier value reused) when an identical
  run already finished.
- A configuration the study already has, or that another trial of the batch has, is not run again: an untried
  one is run instead, so the budget buys distinct configurations while there are any left.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import itertools
import json
import math
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import optuna
import pandas as pd
import sqlalchemy
from filelock import FileLock
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import ChoiceSweep, IntervalSweep, Override, RangeSweep, Transformer
from hydra.plugins.launcher import Launcher
from mlflow.tracking import MlflowClient
from omegaconf import DictConfig, OmegaConf
from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.trial import TrialState
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

from clustersweep.errors import ConfigError, one_line
from clustersweep.report import pareto, tables
from clustersweep.stages.metrics import REPLICATED, objectives, objectives_name
from clustersweep.tracking.identity import NOT_IDENTITY
from clustersweep.tracking.redact import redact
from clustersweep.tracking.store import local_dir, sqlite_path

SCHEMA = "optuna"  # a study's schema in a PostgreSQL database (`storage_url`)
RUN_ATTR, PARENT_ATTR = "mlflow_run_id", "mlflow_parent_run_id"  # a trial's run, the study's parent run (user attrs)
REPLICATES_ATTR = "mlflow_run_ids"  # a trial's replicates' runs (sweep.replicates > 1)
IDENTITY_ATTR = "identity"  # what the study searches (`study_identity`), a user attr of the study
REASKS = 20  # asks per trial before a repeat is run anyway (a space may be used up)
GRID_LIMIT = 100_000  # larger discrete spaces are not listed: a repeat is rare there, and asking again is enough


def storage_url(tracking_uri: str, given: str | None) -> str:
    """Where a search's study lives (a SQLAlchemy URL): `given` (search.storage) if set; else with the runs: in the
    tracking store's own PostgreSQL database, or `optuna.db` beside a SQLite store (the user's cache folder for a
    tracking server, whose database a client cannot see: give it as search.storage). In a PostgreSQL database the
    study has its own schema, `optuna` (MLflow's tables, alembic_version among them, stay in theirs)."""
    url = given or (tracking_uri if _postgres(tracking_uri) else None)
    if url is None:
        return f"sqlite:///{local_dir(tracking_uri) / 'optuna.db'}"
    parsed = make_url(url) if _postgres(url) else None
    if parsed is None or "options" in parsed.query:  # another database, or a search_path of the user's own
        return url
    return parsed.update_query_dict({"options": f"-csearch_path={SCHEMA}"}).render_as_string(hide_password=False)


def study_storage(url: str) -> optuna.storages.RDBStorage:
    """Optuna's storage at `url`, made by one process at a time (searches started at once into a new store): under
    a lock file beside a SQLite database, under an advisory lock in PostgreSQL (which also makes the study's
    schema). A storage that cannot be opened is a ConfigError: one line."""
    try:
        path = sqlite_path(url)
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            with FileLock(f"{path}.lock"):
                return optuna.storages.RDBStorage(url)
        if _postgres(url):
            with _schema_made(url):
                return optuna.storages.RDBStorage(url)
        return optuna.storages.RDBStorage(url)
    except (SQLAlchemyError, ImportError, ValueError, OSError) as e:
        raise ConfigError(f"search.storage={redact(url)} cannot be opened: {redact(one_line(e))}") from None


def _postgres(url: str) -> bool:
    return url.split(":", 1)[0].split("+", 1)[0] == "postgresql"


@contextlib.contextmanager
def _schema_made(url: str) -> Iterator[None]:
    """Hold PostgreSQL's advisory lock of clustersweep's studies; the first schema of the URL's search_path made."""
    engine = sqlalchemy.create_engine(url)
    try:
        with engine.connect() as conn:
            conn.execute(sqlalchemy.text("SELECT pg_advisory_lock(hashtext('clustersweep study storage'))"))
            try:
                first = conn.execute(sqlalchemy.text("SHOW search_path")).scalar_one().split(",")[0].strip()
                if first != '"$user"':
                    conn.execute(sqlalchemy.text(f"CREATE SCHEMA IF NOT EXISTS {first}"))
                    conn.commit()
                yield
            finally:
                conn.execute(sqlalchemy.text("SELECT pg_advisory_unlock(hashtext('clustersweep study storage'))"))
    finally:
        engine.dispose()


def study_identity(cfg: DictConfig, search: str, space: Space, data_sha256: str) -> str:
    """What a study searches: the search, its objective, its space, the data and the rest of the config (the
    searched keys and what never changes a result left out). Another of any is another study."""
    fixed = OmegaConf.to_container(cfg, resolve=True)
    for top in NOT_IDENTITY:
        fixed.pop(top, None)
    for dotted in space.distributions:
        *path, last = dotted.split(".")
        node = fixed
        for part in path:
            node = node.get(part, {}) if isinstance(node, dict) else {}
        if isinstance(node, dict):
            node.pop(last, None)
    searched = {k: optuna.distributions.distribution_to_json(d) for k, d in space.distributions.items()}
    chosen = objectives(cfg.sweep.select_by)
    objective = chosen[0] if len(chosen) == 1 else chosen  # one objective: the identity it always had
    what = {"search": search, "objective": objective, "space": searched, "data": data_sha256, "config": fixed}
    if cfg.sweep.replicates > 1:  # a trial's value is over its replicates
        what["replicates"] = int(cfg.sweep.replicates)
    return hashlib.sha256(json.dumps(what, sort_keys=True, default=str).encode()).hexdigest()


def open_study(
    name: str | None,
    search: str,
    chosen: Sequence[str],
    identity: str,
    direction: str | Sequence[str],
    storage: Any,
    sampler: Any,
) -> optuna.Study:
    """The study of this identity: `<search>-<objectives>-<identity>` unless `name` is given (the objectives joined
    by commas); a direction per objective, named by it (optuna-dashboard's axes and columns, a study made before
    it had names too); a named study that searches something else is refused (one line)."""
    name = name or f"{search}-{objectives_name(chosen)}-{identity[:8]}"
    directions = [direction] if isinstance(direction, str) else list(direction)
    study = optuna.create_study(
        study_name=name, storage=storage, sampler=sampler, directions=directions, load_if_exists=True
    )
    held = study.user_attrs.get(IDENTITY_ATTR)
    if held is None and not study.trials:
        study.set_user_attr(IDENTITY_ATTR, identity)
    elif held != identity:
        raise ConfigError(
            f"hydra.sweeper.study_name={name}: that study searched another space, data or config (identity "
            f"{str(held)[:8]}, this search {identity[:8]}); leave hydra.sweeper.study_name unset (a study per "
            "identity) or give this search a name of its own"
        )
    if study.metric_names != list(chosen):
        with warnings.catch_warnings():  # "set_metric_names is experimental": Optuna's since 3.2
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            study.set_metric_names(list(chosen))
    return study


def sampler(name: str, seed: int | None, n_startup_trials: int) -> optuna.samplers.BaseSampler:
    """TPE (the default), GP or random, seeded."""
    if name == "tpe":
        return optuna.samplers.TPESampler(seed=seed, n_startup_trials=n_startup_trials)
    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if name == "gp":
        if importlib.util.find_spec("torch") is None:  # Optuna imports it at the GP's first fit, mid-search
            raise ConfigError(
                "hydra.sweeper.sampler.name=gp needs PyTorch, which is not installed: pip install torch, "
                "or use tpe or random"
            )
        return optuna.samplers.GPSampler(seed=seed, n_startup_trials=n_startup_trials)
    raise ConfigError(f"hydra.sweeper.sampler.name={name!r} is not allowed: expected one of tpe, gp, random")


def distribution(override: Override) -> BaseDistribution:
    """Optuna's distribution for a swept override of Hydra's grammar."""
    value = override.value()
    if isinstance(value, ChoiceSweep) or (isinstance(value, RangeSweep) and value.shuffle):
        return CategoricalDistribution(list(override.sweep_iterator(transformer=Transformer.encode)))
    if isinstance(value, RangeSweep):  # a to b, both included
        if any(isinstance(v, float) for v in (value.start, value.stop, value.step)):
            return FloatDistribution(value.start, value.stop, step=value.step)
        return IntDistribution(int(value.start), int(value.stop), step=int(value.step))
    if isinstance(value, IntervalSweep):
        log = "log" in value.tags
        if isinstance(value.start, int) and isinstance(value.end, int):
            return IntDistribution(value.start, value.end, log=log)
        return FloatDistribution(value.start, value.end, log=log)
    raise ConfigError(f"{override.input_line}: a search takes choice(…), range(…) or interval(…)")


@dataclass
class Space:
    """The searched keys and their distributions, and the overrides every trial shares."""

    distributions: dict[str, BaseDistribution]
    fixed: list[str]

    @classmethod
    def parse(cls, parser: OverridesParser, params: dict | None, arguments: Sequence[str]) -> Space:
        """From the sweeper's `params` and the command line's overrides (which win)."""
        given = [f"{k}={v}" for k, v in (params or {}).items()]
        distributions, fixed = {}, []
        for o in parser.parse_overrides([*given, *arguments]):
            if o.is_sweep_override():
                distributions[o.get_key_element()] = distribution(o)
            else:
                fixed = [f for f in fixed if f.split("=")[0] != o.get_key_element()]
                distributions.pop(o.get_key_element(), None)
                fixed.append(o.input_line)
        return cls(distributions, fixed)

    def first(self) -> dict[str, Any]:
        """A configuration of the space: each key's first choice, or the low end of its range."""
        return {
            k: d.choices[0] if isinstance(d, CategoricalDistribution) else d.low for k, d in self.distributions.items()
        }

    def overrides(self, params: dict[str, Any]) -> list[str]:
        return [*self.fixed, *(f"{k}={v}" for k, v in params.items())]

    def untried(self, seen: set[tuple], rng: np.random.RandomState) -> dict | None:
        """A random configuration not in `seen`; None when the space is used up, too large to list, or
        continuous."""
        values = []
        for dist in self.distributions.values():
            if isinstance(dist, CategoricalDistribution):
                values.append(list(dist.choices))
            elif isinstance(dist, IntDistribution) and not dist.log:
                values.append(list(range(dist.low, dist.high + 1, dist.step)))
            else:
                return None
        if math.prod(len(v) for v in values) > GRID_LIMIT:
            return None
        new = [c for c in itertools.product(*values) if key(dict(zip(self.distributions, c, strict=True))) not in seen]
        return dict(zip(self.distributions, new[rng.randint(len(new))], strict=True)) if new else None


def key(params: dict) -> tuple:
    return tuple(sorted(params.items()))


def resume(study: optuna.Study, budget: int, where: str) -> tuple[int, int]:
    """Fail the trials an interruption cut off; says what the study (in the storage `where`) holds and returns
    (trials still to run, the next job's number)."""
    cut_off = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
    for t in cut_off:  # they never reported: each is run again first, its finished replicates skipped
        study.tell(t.number, state=TrialState.FAIL)
        if t.params:
            study.enqueue_trial(t.params)
    done = len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)))
    left = max(budget - done, 0)
    print(
        f"search: study {study.study_name!r} in {where} has {done} completed trial(s)"
        + (f", {len(cut_off)} cut off by an interruption" if cut_off else "")
        + f"; {left} to run",
        flush=True,
    )
    return left, len(study.trials)


def say_best(study: optuna.Study, chosen: Sequence[str]) -> None:
    """A complete study's result, for a rerun that has nothing left to run: its best trial; with several objectives,
    the pick of its Pareto front (`pareto.pick`, as the parent run's) and the front's trials."""
    done = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if not done:
        print(f"search: study {study.study_name!r} has no completed trial", flush=True)
        return
    values = pd.DataFrame([t.values for t in done], columns=list(chosen), index=[t.number for t in done])
    directions = [d.name.lower() for d in study.directions]
    best = {t.number: t for t in done}[pareto.pick(values, chosen, directions)]
    params = " ".join(f"{k}={v}" for k, v in best.params.items())
    scores = ", ".join(f"{m} {v:.6g}" for m, v in zip(chosen, best.values, strict=True))
    print(f"search: its best, trial {best.number}: {scores} with {params}", flush=True)
    if len(chosen) > 1:
        on = values.index[pareto.pareto_front(values, chosen, directions)]
        print(f"search: its Pareto front: trials {', '.join(map(str, on))} (its best: their pick)", flush=True)


def ask_distinct(study: optuna.Study, space: Space, n: int) -> list[optuna.Trial]:
    """`n` new trials whose configurations the study does not have yet (completed, or pending in this batch): once
    TPE has a favourite in a small discrete space it proposes it again and again, and a repeat would use budget to
    reproduce a value the study has. A repeat is told failed (the sampler ignores those) with `repeat_of` naming
    the first; then the study is given an untried configuration, drawn at random (seeded by the study's progress:
    a rerun draws the same), while the space has any; in a space that cannot be listed it is just asked again."""
    first = {key(t.params): t.number for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))}
    rng = np.random.RandomState(len(study.trials))
    trials = []
    for _ in range(n):
        trial = study.ask(space.distributions)
        for _ in range(REASKS):
            if key(trial.params) not in first:
                break
            trial.set_user_attr("repeat_of", first[key(trial.params)])
            study.tell(trial, state=TrialState.FAIL)
            new = space.untried(set(first), rng)
            if new is not None:
                study.enqueue_trial(new)  # the next ask takes it
            trial = study.ask(space.distributions)
        first.setdefault(key(trial.params), trial.number)  # pending: a later trial of the batch repeats it
        trials.append(trial)
    return trials


def run(
    study: optuna.Study,
    space: Space,
    launcher: Launcher,
    left: int,
    job_idx: int,
    n_jobs: int,
    chosen: Sequence[str],
    seeds: list[int] | None = None,
    client: MlflowClient | None = None,
) -> None:
    """Run `left` trials, `n_jobs` at a time through `launcher`, numbered from `job_idx`, and tell the study each
    one's value of each objective `chosen` (`value`). A trial is one job, or with `seeds` (sweep.replicates) one job
    per seed, its replicates; `client` reads their partitions for the objective `stability`."""
    per = [f"seed={s}" for s in seeds] if seeds else [None]
    while left > 0:
        trials = ask_distinct(study, space, min(n_jobs, left))
        jobs = [[*space.overrides(t.params), *([seed] if seed else [])] for t in trials for seed in per]
        returns = launcher.launch(jobs, initial_job_idx=job_idx)
        for i, trial in enumerate(trials):
            outcomes = [r.return_value for r in returns[i * len(per) : (i + 1) * len(per)]]
            ran = [o.run_id for o in outcomes]
            if ran[0]:
                trial.set_user_attr(RUN_ATTR, ran[0])
            if len(ran) > 1:
                trial.set_user_attr(REPLICATES_ATTR, ran)
            got = [value(outcomes, m, client) for m in chosen]
            if None in got:
                study.tell(trial, state=TrialState.FAIL)
            else:
                study.tell(trial, got)
        job_idx += len(jobs)
        left -= len(trials)


def value(outcomes: list[Any], objective: str, client: MlflowClient | None) -> float | None:
    """A trial's value from its replicates' outcomes (`app.job.Outcome`): the mean of their objective, or for
    `stability` the agreement of their partitions; None (the trial failed) when any replicate failed, has no
    value or is degenerate."""
    if objective == REPLICATED:
        ran = [o.run_id for o in outcomes]
        return tables.stability(client, ran) if client is not None and all(ran) else None
    values = [(o.values or {}).get(objective) for o in outcomes]
    if any(v is None or not math.isfinite(v) for v in values):
        return None
    return float(np.mean(values))
