"""Entry point: `python run.py [overrides]`, or `python run.py -m …` for a sweep. See README.md."""

import hydra
from omegaconf import DictConfig

from clustersweep.cli import guarded, user_errors
from clustersweep.pipeline import run


@hydra.main(version_base="1.3", config_path="conf", config_name="config")
def main(cfg: DictConfig) -> None:
    with user_errors():
        run(cfg)


if __name__ == "__main__":
    guarded(main)
