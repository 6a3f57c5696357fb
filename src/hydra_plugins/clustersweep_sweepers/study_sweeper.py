"""clustersweep's search sweeper (the sweeper of `search=…`), here because Hydra loads sweepers only from
`hydra_plugins`: an Optuna study asked and told through Optuna's public API, its trials launched by whatever Hydra
launcher is configured. The logic lives in clustersweep.app.search and clustersweep.app.sweep; this module stays
light, since Hydra imports every plugin at startup."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig


class StudySweeper(Sweeper):
    """A study whose `n_trials` is its budget of completed, distinct configurations: a rerun asks only for the
    missing trials. The trials are child runs of the study's one parent run."""

    def __init__(
        self,
        study_name: str | None,
        n_trials: int,
        n_jobs: int,
        direction: str | Sequence[str],
        sampler: DictConfig,
        params: DictConfig | None = None,
    ) -> None:
        self.study_name, self.n_trials, self.n_jobs, self.direction = study_name, n_trials, n_jobs, direction
        self.sampler, self.params = sampler, params

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        from hydra.core.plugins import Plugins

        from clustersweep.app.sweep import check_settings

        check_settings(config)  # before the study is opened: a refused search leaves nothing behind
        self.config, self.hydra_context = config, hydra_context
        self.launcher = Plugins.instance().instantiate_launcher(
            hydra_context=hydra_context, task_function=task_function, config=config
        )

    def sweep(self, arguments: Sequence[str]) -> Any:
        import optuna
        from hydra.core.override_parser.overrides_parser import OverridesParser

        from clustersweep.app import search
        from clustersweep.app.sweep import app_config, check_jobs, replicate_seeds, tracked_sweep
        from clustersweep.data.dataset import load
        from clustersweep.stages import metrics
        from clustersweep.tracking.redact import redact
        from clustersweep.tracking.store import tracking_uri

        parser = OverridesParser.create(config_loader=self.hydra_context.config_loader)
        space = search.Space.parse(parser, self.params, arguments)
        check_jobs(self.config, [space.overrides(space.first())], searched=space.distributions)  # its fixed values
        s = self.sampler
        chosen = search.sampler(s.name, s.seed, s.n_startup_trials)  # first: a sampler that cannot run reads no data
        cfg = app_config(self.config)
        name = str(self.config.hydra.runtime.choices.get("search") or "search")
        identity = search.study_identity(cfg, name, space, load(cfg.dataset, cfg.seed).sha256)
        storage = search.study_storage(search.storage_url(tracking_uri(cfg), cfg.search.storage))
        optuna.logging.set_verbosity(optuna.logging.WARNING)  # its "A new study created" / "Using an existing study"
        objectives = metrics.objectives(cfg.sweep.select_by)
        study = search.open_study(self.study_name, name, objectives, identity, self.direction, storage, chosen)
        left, job_idx = search.resume(study, self.n_trials, redact(storage.url))
        if left == 0:  # a complete study: its result, and its parent run left as it is
            search.say_best(study, objectives)
            return None
        with tracked_sweep(self.config, study.study_name) as parent:
            study.set_user_attr(search.PARENT_ATTR, parent.run.run_id)
            seeds = replicate_seeds(cfg)
            search.run(study, space, self.launcher, left, job_idx, self.n_jobs, objectives, seeds, parent.run.client)
