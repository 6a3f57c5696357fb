"""Where runs go: the tracking store (the project's SQLite file, or a server), its experiments, and what belongs
beside it on this machine."""

from __future__ import annotations

import functools
import logging
import os
from pathlib import Path
from urllib.parse import urlparse

import requests
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient
from omegaconf import DictConfig, OmegaConf

from clustersweep.errors import ConfigError
from clustersweep.paths import PROJECT_ROOT
from clustersweep.tracking.redact import redact

DEFAULT_URI = f"sqlite:///{PROJECT_ROOT / 'mlruns' / 'mlflow.db'}"
PROBE_TIMEOUT_S = 5.0
# MLflow's settings as clustersweep wants them unless the environment says otherwise: runs stay on this machine;
# no progress bars for small report downloads; and a sweep against a server that went away fails its jobs in
# seconds and says so, where MLflow's default retries an HTTP call for ~4 minutes (rate-limited SaaS backends).
MLFLOW_ENV = {
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "3",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "60",
}


def configure() -> None:
    """Apply MLFLOW_ENV where the environment does not set a value, and quiet MLflow's "Creating initial tables"
    on every new store; called at start-up by every entry point (and by each sweep job: Ray workers start bare)."""
    for key, value in MLFLOW_ENV.items():
        os.environ.setdefault(key, value)
    logging.getLogger("mlflow.store.db.utils").setLevel(logging.WARNING)


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
    if urlparse(uri).scheme != "sqlite":
        return None
    return (Path(uri[len("sqlite:///") :]).parent / "artifacts").as_uri()


def experiment_id(uri: str, name: str) -> str:
    """Get or create the experiment (looked up once per process); a server is probed on every call, so each run
    or job fails fast once it stops answering."""
    check_reachable(uri)
    if redact(uri) != uri:  # MLflow prints each run's URL (`View run … at: http://…`), password and all
        os.environ["MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT"] = "true"
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
