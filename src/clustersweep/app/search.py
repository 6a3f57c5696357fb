"""Label-free search: hydra-optuna-sweeper with a study that lives beside the tracking store and resumes.

    python run.py -m search=umap_gmm          # conf/search/umap_gmm.yaml: space, budget, objective

- The objective is `sweep.select_by`, a label-free metric; the study's direction follows it (resolver
  `cs.direction`, config/resolvers.py).
- The study is kept in `optuna.db` beside a SQLite tracking store (`~/.cache/clustersweep/optuna.db` for a
  server), so an interrupted search resumes: `n_trials` is the study's budget of completed trials, and a rerun
  asks only for those still missing. Trials the interruption cut off are marked failed.
- Trials are ordinary sweep jobs (`sweep.job`): child runs of the study's one parent run, skipped (their earlier
  value reused) when an identical run already finished.
- A configuration the study already has is not run again: an untried one is run instead (`skip_repeats`), so
  the budget buys distinct configurations while there are any left.
"""

from __future__ import annotations

import itertools
import math
from pathlib import Path
from typing import Any

import alembic.migration
import numpy as np
import optuna
from filelock import FileLock
from optuna.distributions import CategoricalDistribution, IntUniformDistribution
from optuna.storages import RDBStorage
from optuna.storages._rdb import models
from optuna.storages._rdb.storage import _VersionManager
from sqlalchemy import create_engine

from clustersweep.tracking.store import DEFAULT_URI, local_dir


def study_path(tracking_uri: str | None) -> Path:
    """`optuna.db` beside a SQLite tracking store; in the user's cache folder for a tracking server."""
    return local_dir(tracking_uri or DEFAULT_URI) / "optuna.db"


def study_storage(tracking_uri: str | None) -> RDBStorage:
    """Optuna's SQLite storage for the study.

    hydra-optuna-sweeper needs optuna 2.x, whose schema stamp is never committed under SQLAlchemy 2 (then every
    open fails its version check); the stamp is written here in a committed transaction first.
    """
    path = study_path(tracking_uri)
    path.parent.mkdir(parents=True, exist_ok=True)
    url = f"sqlite:///{path}"
    engine = create_engine(url)
    try:  # made by one process at a time (searches started at once into a new store)
        with FileLock(f"{path}.lock"), engine.begin() as conn:
            context = alembic.migration.MigrationContext.configure(conn)
            if context.get_current_revision() is None:
                models.BaseModel.metadata.create_all(conn)
                versions = _VersionManager.__new__(_VersionManager)
                versions.url, versions.engine = url, engine
                context.stamp(versions._create_alembic_script(), versions.get_head_version())
    finally:
        engine.dispose()
    return RDBStorage(url)


REASKS = 20  # asks per trial before a repeat is run anyway (a space may be used up)
GRID_LIMIT = 100_000  # larger discrete spaces are not listed: a repeat is rare there, and asking again is enough


def skip_repeats(impl: Any) -> None:
    """Make a hydra-optuna-sweeper (its OptunaSweeperImpl) run a new configuration when a trial repeats the
    parameters of a completed or pending trial: once TPE has a favourite in a small discrete space it proposes it
    again and again, and a repeat would use up budget to reproduce a value the study has. A repeat is recorded as
    a failed trial (the sampler ignores those; counted as finished it would skew the model) with `repeat_of`
    naming the first; then the study is given a configuration it has not tried, drawn at random (seeded), while
    the space has any; in a space that cannot be listed (a float range) the sampler is just asked again."""
    configure = impl._configure_trials

    def distinct(trials: list, space: dict, fixed: dict) -> list:
        overrides = configure(trials, space, fixed)
        study = trials[0].study
        first = {_key(t.params): t.number for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE}
        rng = np.random.RandomState(len(study.trials))  # the study's progress: a rerun draws the same
        for i, trial in enumerate(trials):
            for _ in range(REASKS):
                if _key(trial.params) not in first:
                    break
                trial.set_user_attr("repeat_of", first[_key(trial.params)])
                study.tell(trial, state=optuna.trial.TrialState.FAIL)
                new = _untried(space, first, rng)
                if new is not None:
                    study.enqueue_trial(new)  # the next ask takes it
                trials[i] = trial = study.ask()  # the caller launches and reports the trials of this list
                overrides[i] = configure([trial], space, fixed)[0]
            first.setdefault(_key(trial.params), trial.number)  # pending: a later trial of the batch repeats it
        return overrides

    impl._configure_trials = distinct


def _untried(space: dict, seen: dict, rng: np.random.RandomState) -> dict | None:
    """A random configuration of a discrete search space that is not in `seen`; None when the space is used up,
    too large to list, or continuous."""
    values = []
    for dist in space.values():
        if isinstance(dist, CategoricalDistribution):
            values.append(list(dist.choices))
        elif isinstance(dist, IntUniformDistribution):
            values.append(list(range(dist.low, dist.high + 1, dist.step)))
        else:
            return None
    if math.prod(len(v) for v in values) > GRID_LIMIT:
        return None
    new = [c for c in itertools.product(*values) if _key(dict(zip(space, c, strict=True))) not in seen]
    return dict(zip(space, new[rng.randint(len(new))], strict=True)) if new else None


def _key(params: dict) -> tuple:
    return tuple(sorted(params.items()))


def resume(impl: Any) -> None:
    """Fit a hydra-optuna-sweeper (its OptunaSweeperImpl) to what its study already holds: run only the trials
    the budget still lacks, mark failed the trials an interruption cut off, and number jobs on from the last."""
    study = optuna.create_study(
        study_name=impl.study_name, storage=impl.storage, directions=impl._get_directions(), load_if_exists=True
    )
    cut_off = [t for t in study.trials if t.state == optuna.trial.TrialState.RUNNING]
    for t in cut_off:  # they never reported
        study._storage.set_trial_state(t._trial_id, optuna.trial.TrialState.FAIL)
    done = sum(t.state == optuna.trial.TrialState.COMPLETE for t in study.trials)
    impl.n_trials = max(impl.n_trials - done, 0)
    impl.job_idx = len(study.trials)
    print(
        f"search: study {impl.study_name!r} has {done} completed trial(s)"
        + (f", {len(cut_off)} cut off by an interruption" if cut_off else "")
        + f"; {impl.n_trials} to run",
        flush=True,
    )
