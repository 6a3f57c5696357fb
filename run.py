"""Entry point: `python run.py [overrides]`, or `python run.py -m …` for a sweep. See README.md."""

import hydra
from omegaconf import DictConfig

from clustersweep import sweep
from clustersweep.cli import guarded, user_errors
from clustersweep.pipeline import run


@hydra.main(version_base="1.3", config_path="conf", config_name="config")
def main(cfg: DictConfig) -> None:
    if sweep.in_multirun():
        sweep.job(cfg)  # a child run; a failure is recorded, not raised
    else:
        with user_errors():
            run(cfg)


if __name__ == "__main__":
    guarded(main)
