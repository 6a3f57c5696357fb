"""clustersweep's resumable Optuna sweeper, here because Hydra loads sweepers only from `hydra_plugins`.

The logic lives in clustersweep.search; this module stays light, since Hydra imports every plugin at startup.
"""

from __future__ import annotations

from hydra.types import HydraContext, TaskFunction
from hydra_plugins.hydra_optuna_sweeper.optuna_sweeper import OptunaSweeper
from omegaconf import DictConfig


class StudySweeper(OptunaSweeper):
    """hydra-optuna-sweeper whose `n_trials` is the study's budget of distinct configurations: a rerun asks only
    for the missing trials, and a repeat of a configuration is replaced by one not tried yet."""

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        super().setup(hydra_context=hydra_context, task_function=task_function, config=config)
        from clustersweep.search import resume, skip_repeats

        resume(self.sweeper)
        skip_repeats(self.sweeper)
