"""Entry point: `python run.py [overrides]` for one run, `python run.py -m …` for a sweep. See README.md."""

import hydra
from omegaconf import DictConfig

from clustersweep.app.cli import guarded, user_errors
from clustersweep.app.job import Outcome, job
from clustersweep.app.sweep import in_multirun
from clustersweep.errors import ConfigError
from clustersweep.tasks import cluster, eda, notebook

TASKS = {"cluster": cluster.run, "eda": eda.run, "notebook": notebook.run}


@hydra.main(version_base="1.3", config_path="conf", config_name="config")
def main(cfg: DictConfig) -> Outcome | None:
    if in_multirun():
        return job(cfg)  # a child run; a failure is recorded, not raised; the value steers a search
    with user_errors():
        if cfg.task not in TASKS:
            raise ConfigError(f"task={cfg.task!r} is not allowed: expected one of {', '.join(TASKS)}")
        TASKS[cfg.task](cfg)


if __name__ == "__main__":
    guarded(main)
