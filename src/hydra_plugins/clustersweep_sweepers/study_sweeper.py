"""clustersweep's resumable Optuna sweeper (the sweeper of `search=…`), here because Hydra loads sweepers only from
`hydra_plugins`. The logic lives in clustersweep.app.search and clustersweep.app.sweep; this module stays light,
since Hydra imports every plugin at startup."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from hydra.types import HydraContext, TaskFunction
from hydra_plugins.hydra_optuna_sweeper.optuna_sweeper import OptunaSweeper
from omegaconf import DictConfig


class StudySweeper(OptunaSweeper):
    """hydra-optuna-sweeper whose `n_trials` is the study's budget of distinct configurations: a rerun asks only
    for the missing trials, and a repeat of a configuration is replaced by one not tried yet. The trials are child
    runs of the study's one parent run."""

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        from clustersweep.app.search import resume, skip_repeats
        from clustersweep.app.sweep import check_settings

        check_settings(config)  # before the study is opened: a refused search leaves nothing behind
        self.config = config
        super().setup(hydra_context=hydra_context, task_function=task_function, config=config)
        resume(self.sweeper)
        skip_repeats(self.sweeper)

    def sweep(self, arguments: Sequence[str]) -> Any:
        from clustersweep.app.sweep import tracked_sweep

        with tracked_sweep(self.config):
            return self.sweeper.sweep(arguments)
