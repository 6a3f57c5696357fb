"""MLflow plumbing: where runs go, the experiment, and what identifies a run (params, tags)."""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
import re
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import mlflow
import requests
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient
from omegaconf import DictConfig, OmegaConf

from clustersweep.config import ConfigError

PROJECT_ROOT = Path(__file__).resolve().parents[2]
logging.getLogger("mlflow.store.db.utils").setLevel(logging.WARNING)  # "Creating initial tables" on every new store
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")  # runs stay on this machine
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # no bars for small report downloads
# MLflow retries an HTTP call for ~4 minutes by default (rate-limited SaaS backends); a sweep against a server that
# went away should fail its jobs in seconds and say so. Set the variables to change it.
os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "3")
os.environ.setdefault("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "1")
os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "60")
DEFAULT_URI = f"sqlite:///{PROJECT_ROOT / 'mlruns' / 'mlflow.db'}"
PROBE_TIMEOUT_S = 5.0
# Secrets that must never reach a param, tag, artifact or printed line; their values are masked by `redact`.
SECRET_ENV = ("MLFLOW_TRACKING_TOKEN", "MLFLOW_TRACKING_PASSWORD", "RAY_AUTH_TOKEN")
# user:password@ after a scheme, to the host's last @; also as Hydra logs overrides (`http\://u\:pw@host`)
_URI_PASSWORD = re.compile(r"(?P<head>[A-Za-z][A-Za-z0-9+.-]*\\?://[^:/@\s\\]*)(?P<colon>\\?:)[^/\s]+@")


def redact(text: str) -> str:
    """`text` with every URI password (`http://user:***@host`) and secret environment value masked."""
    text = _URI_PASSWORD.sub(r"\g<head>\g<colon>***@", text)
    for name in SECRET_ENV:
        secret = os.environ.get(name)
        if secret:
            text = text.replace(secret, "***")
    return text


def redact_logs() -> None:
    """Mask secrets in every log record of this process from now on: Hydra logs each job's overrides,
    `tracking.uri=…` among them, and configures its handlers anew for every job (so no handler filter)."""
    make = logging.getLogRecordFactory()
    if getattr(make, "redacting", False):
        return

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = make(*args, **kwargs)
        message = record.getMessage()
        clean = redact(message)
        if clean != message:
            record.msg, record.args = clean, None
        return record

    factory.redacting = True  # type: ignore[attr-defined]
    logging.setLogRecordFactory(factory)


def check_reachable(uri: str) -> None:
    """An HTTP tracking server that does not answer is one line at once, not minutes of MLflow's retries."""
    if urlparse(uri).scheme not in ("http", "https"):
        return
    try:
        requests.get(f"{uri.rstrip('/')}/health", timeout=PROBE_TIMEOUT_S)
    except requests.exceptions.SSLError:
        return  # it answers; TLS settings (MLFLOW_TRACKING_INSECURE_TLS, …) are MLflow's to apply
    except requests.RequestException as e:
        if isinstance(e, requests.Timeout):
            why = f"no answer within {PROBE_TIMEOUT_S:g} s"
        else:
            why = "connection refused" if "refused" in str(e).lower() else type(e).__name__
        raise ConfigError(
            f"tracking.uri={redact(uri)} does not answer ({why}): start the server (scripts/serve_tracking.sh) "
            "or point tracking.uri at one that runs"
        ) from None


def tracking_uri(cfg: DictConfig) -> str:
    """`tracking.uri` (which defaults to $MLFLOW_TRACKING_URI) or the project's own SQLite store."""
    return cfg.tracking.get("uri") or DEFAULT_URI


def default_cfg() -> DictConfig:
    """The tracking part of the config for scripts that run outside Hydra (uri from the environment)."""
    return OmegaConf.create({"tracking": {"uri": os.environ.get("MLFLOW_TRACKING_URI")}})


def local_dir(uri: str) -> Path:
    """Where this machine keeps what belongs with a store (stage cache, Optuna studies): beside a SQLite store's
    database; in the user's cache folder for a tracking server."""
    if uri.startswith("sqlite:///"):
        return Path(uri[len("sqlite:///") :]).parent
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "clustersweep"


def artifact_root(uri: str) -> str | None:
    """Artifacts of a SQLite store live beside its database; a server decides for itself."""
    parsed = urlparse(uri)
    if parsed.scheme != "sqlite":
        return None
    db = Path(uri[len("sqlite:///") :])
    return (db.parent / "artifacts").as_uri()


def experiment_id(uri: str, name: str) -> str:
    """Point MLflow at `uri` and get or create the experiment (looked up once per process); a server is probed
    on every call, so each run or job fails fast once it stops answering."""
    check_reachable(uri)
    if redact(uri) != uri:  # MLflow prints each run's URL (`View run … at: http://…`), password and all
        os.environ["MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT"] = "true"
    mlflow.set_tracking_uri(uri)  # every call: a process may switch stores and come back
    return _experiment_id(uri, name)


@functools.cache
def _experiment_id(uri: str, name: str) -> str:
    """Safe when parallel jobs race to create the experiment."""
    if uri.startswith("sqlite:///"):
        Path(uri[len("sqlite:///") :]).parent.mkdir(parents=True, exist_ok=True)
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name(name)
    if exp is not None:
        return exp.experiment_id
    try:
        return client.create_experiment(name, artifact_location=artifact_root(uri))
    except MlflowException:
        exp = client.get_experiment_by_name(name)
        if exp is None:
            raise
        return exp.experiment_id


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
        return subprocess.run(["git", *args], cwd=PROJECT_ROOT, capture_output=True, text=True, check=True).stdout

    try:
        commit = git("rev-parse", "HEAD").strip()
        dirty = bool(git("status", "--porcelain", "--untracked-files=no").strip())
    except (OSError, subprocess.CalledProcessError):
        return {"git.commit": "unknown", "git.dirty": "unknown"}
    return {"git.commit": commit, "git.dirty": str(dirty).lower()}


# Keys that say where or how a run is logged, not what it computes: left out of its identity.
NOT_IDENTITY = ("tracking", "sweep", "cache")


@functools.cache
def code_version() -> str:
    """sha256 of the package's source files: changes with the code, committed or not."""
    h = hashlib.sha256()
    for path in sorted(Path(__file__).parent.rglob("*.py")):
        h.update(path.relative_to(Path(__file__).parent).as_posix().encode() + b"\0" + path.read_bytes())
    return h.hexdigest()


def targets_code(node: Any) -> str:
    """sha256 of this package's modules that a config's `_target_`s name (features.py for patch codes); "" when it
    names none. A cached fit of one of our own estimators is stale once its code changes; a library's is not."""
    names = sorted(set(re.findall(r"'clustersweep\.(\w+)\.\w+'", str(node))))
    h = hashlib.sha256()
    for name in names:
        h.update(name.encode() + b"\0" + (Path(__file__).parent / f"{name}.py").read_bytes())
    return h.hexdigest() if names else ""


def identity(cfg: DictConfig, data_sha256: str) -> str:
    """What makes two runs the same computation: resolved config + data + code."""
    conf = {k: v for k, v in OmegaConf.to_container(cfg, resolve=True).items() if k not in NOT_IDENTITY}
    blob = json.dumps({"config": conf, "data": data_sha256, "code": code_version()}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


def finished_twin(client: MlflowClient, exp_id: str, identity: str) -> str | None:
    """The id of a FINISHED run of the same computation (tag `config.identity`) in the experiment, if any."""
    found = client.search_runs(
        [exp_id], f"tags.`config.identity` = '{identity}' and attributes.status = 'FINISHED'", max_results=1
    )
    return found[0].info.run_id if found else None


def process_tags() -> dict[str, str]:
    """Which process owns a RUNNING run, so a later sweep can tell a live run from one whose process died."""
    return {"process.host": socket.gethostname(), "process.pid": str(os.getpid())}


def is_orphaned(tags: dict[str, str]) -> bool:
    """True for a run whose process was on this host and is gone (kill -9, power loss)."""
    if tags.get("process.host") != socket.gethostname() or not tags.get("process.pid", "").isdigit():
        return False
    try:
        os.kill(int(tags["process.pid"]), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def command_line() -> str:
    return redact(" ".join([Path(sys.argv[0]).name, *sys.argv[1:]]))
