"""What identifies a run's computation — its resolved config, its data and the code — and its params."""

from __future__ import annotations

import copy
import functools
import hashlib
import json
import re
import subprocess
from pathlib import Path
from typing import Any

from mlflow.tracking import MlflowClient
from omegaconf import DictConfig, OmegaConf

from clustersweep.tracking.redact import redact

PACKAGE = Path(__file__).resolve().parents[1]  # src/clustersweep
# Keys that say where or how a run is logged, not what it computes: left out of its identity.
NOT_IDENTITY = ("tracking", "search", "sweep", "cache", "model", "verbose")
PRINTING = ("verbose", "tqdm_kwds")  # an estimator's keys that change what its fit prints, never its numbers


def numbers_only(node: Any) -> Any:
    """A resolved config (or part) without the keys that only change what a fit prints (`PRINTING`), at any
    depth: what makes a computation, for its identity and its cache key."""
    if isinstance(node, dict):
        return {k: numbers_only(v) for k, v in node.items() if k not in PRINTING}
    if isinstance(node, list):
        return [numbers_only(v) for v in node]
    return node


def flat_params(cfg: DictConfig) -> dict[str, str]:
    """The resolved config as dotted keys (`reducer.k`, `clusterer.estimator._target_`, …), secrets masked."""
    out: dict[str, str] = {}

    def walk(node: Any, prefix: str) -> None:
        if isinstance(node, dict):
            for k, v in node.items():
                walk(v, f"{prefix}{k}.")
        else:
            out[prefix[:-1]] = redact(str(node))

    walk(OmegaConf.to_container(cfg, resolve=True), "")
    return out


@functools.cache
def git_state() -> dict[str, str]:
    """Commit and dirty flag of the project checkout, so a run can be tied to its code."""

    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=PACKAGE, capture_output=True, text=True, check=True).stdout

    try:
        commit = git("rev-parse", "HEAD").strip()
        dirty = bool(git("status", "--porcelain", "--untracked-files=no").strip())
    except (OSError, subprocess.CalledProcessError):
        return {"git.commit": "unknown", "git.dirty": "unknown"}
    return {"git.commit": commit, "git.dirty": str(dirty).lower()}


def _sources_sha256(files: list[Path]) -> str:
    h = hashlib.sha256()
    for path in files:
        h.update(path.relative_to(PACKAGE).as_posix().encode() + b"\0" + path.read_bytes())
    return h.hexdigest()


@functools.cache
def code_version() -> str:
    """sha256 of the package's source files: changes with the code, committed or not."""
    return _sources_sha256(sorted(PACKAGE.rglob("*.py")))


def targets_code(node: Any) -> str:
    """sha256 of this package's modules that a config's `_target_`s name (the patch codes' module, say); "" when
    it names none. A cached fit of one of our own estimators is stale once its code changes; a library's is not."""
    modules = sorted(set(re.findall(r"'clustersweep((?:\.\w+)+)\.\w+'", str(node))))
    files = [PACKAGE.joinpath(*m.strip(".").split(".")).with_suffix(".py") for m in modules]
    return _sources_sha256(files) if files else ""


def identity(cfg: DictConfig, data_sha256: str, *, replicates: bool = False) -> str:
    """What makes two runs the same computation: resolved config + data + code. With `replicates`, the same but
    for the seed: the configuration whose replicates (`sweep.replicates`) differ only by their seeds."""
    if replicates:  # the seed and every value interpolated from it (`random_state: ${seed}`) set aside
        cfg = copy.deepcopy(cfg)
        cfg.seed = "replicates"
    resolved = numbers_only(OmegaConf.to_container(cfg, resolve=True))
    conf = {k: v for k, v in resolved.items() if k not in NOT_IDENTITY}
    blob = json.dumps({"config": conf, "data": data_sha256, "code": code_version()}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


def finished_twin(client: MlflowClient, exp_id: str, identity: str) -> str | None:
    """The id of a FINISHED run of the same computation (tag `config.identity`) in the experiment, if any."""
    found = client.search_runs(
        [exp_id], f"tags.`config.identity` = '{identity}' and attributes.status = 'FINISHED'", max_results=1
    )
    return found[0].info.run_id if found else None
