"""clustersweep's grid sweeper (the sweeper of `python run.py -m …`), here because Hydra loads sweepers only from
`hydra_plugins`: Hydra's basic sweeper run inside one tracked parent run (the logic is clustersweep.app.sweep)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig


class GridSweeper(BasicSweeper):
    """Every combination of the swept values, each job a child run of the sweep's one parent run."""

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        from clustersweep.app.sweep import check_settings

        check_settings(config)  # a sweep that would not do what it says is refused before any run
        super().setup(hydra_context=hydra_context, task_function=task_function, config=config)

    def validate_batch_is_legal(self, batch: Sequence[Sequence[str]]) -> None:
        """Nothing: every job of the grid was composed before its parent run opened (`tracked_sweep`)."""

    def sweep(self, arguments: Sequence[str]) -> Any:
        from clustersweep.app.sweep import tracked_sweep, with_replicates

        with tracked_sweep(self.config):
            return super().sweep(with_replicates(self.config, list(arguments)))
