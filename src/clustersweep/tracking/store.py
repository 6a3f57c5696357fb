"""Where runs go: the tracking store (the project's SQLite file, or a server), its experiments, and what belongs
beside it on this machine."""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import sqlite3
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlparse

import mlflow
import mlflow.store
import requests
from filelock import FileLock, Timeout
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient
from omegaconf import DictConfig, OmegaConf

from clustersweep.errors import ConfigError, one_line
from clustersweep.paths import PROJECT_ROOT
from clustersweep.tracking.redact import redact

DEFAULT_URI = f"sqlite:///{PROJECT_ROOT / 'mlruns' / 'mlflow.db'}"
PROBE_TIMEOUT_S = 5.0
# How long a run waits, at most, for a SQLite store another process holds locked or is making (tracking.lock_timeout):
# far longer than a loaded machine takes to make one, so a waiter gives up only on a holder that hangs.
LOCK_TIMEOUT_S = 600.0
WAIT_NOTICE_S = 5.0  # a run waiting this long for the store's making says so, once
ALEMBIC = "alembic_version"  # the table where an MLflow database keeps its schema's revision
MOVE = "point tracking.uri at another store"
# MLflow 3's UI opens an experiment in the view this tag names; without it, its GenAI view (traces, evaluations).
# Experiments the project creates or uses get "Model training": the runs table, their metrics, models and datasets.
KIND_TAG, KIND = "mlflow.experimentKind", "custom_model_development"
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
    path = sqlite_path(uri)
    if path is not None:
        return path.parent
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "clustersweep"


def artifact_root(uri: str) -> str | None:
    """Artifacts of a SQLite store live beside its database; a server decides for itself."""
    path = sqlite_path(uri)
    return None if path is None else (path.parent / "artifacts").as_uri()


def open_experiment(cfg: DictConfig) -> tuple[str, str]:
    """The tracking URI of `cfg` and the id of its experiment, the store checked (and made, if new) first."""
    uri = tracking_uri(cfg)
    timeout = cfg.tracking.get("lock_timeout")
    return uri, experiment_id(uri, cfg.tracking.experiment, LOCK_TIMEOUT_S if timeout is None else float(timeout))


def experiment_id(uri: str, name: str, lock_timeout: float = LOCK_TIMEOUT_S) -> str:
    """Get or create the experiment (looked up once per process), the store checked first (`check_sqlite`); a
    server is probed on every call, so each run or job fails fast once it stops answering. A store MLflow cannot
    use is a ConfigError: one line."""
    check_reachable(uri)
    if redact(uri) != uri:  # MLflow prints each run's URL (`View run … at: http://…`), password and all
        os.environ["MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT"] = "true"
    with store_errors(uri):
        return _experiment_id(uri, name, lock_timeout)


@contextlib.contextmanager
def store_errors(uri: str) -> Iterator[None]:
    """What MLflow says of a store it cannot use, as one line (a ConfigError)."""
    try:
        yield
    except MlflowException as e:
        raise ConfigError(f"tracking store {redact(uri)} unusable: {one_line(e)}") from None


@functools.cache
def _experiment_id(uri: str, name: str, lock_timeout: float) -> str:
    """Safe when any number of processes race to a new store and experiment: a SQLite store that is ready (this
    MLflow's schema, the experiment in it) is used at once; else it is checked, made and its experiment created by
    one process at a time (`making`: an MLflow store being made is not yet usable by another); a server does all
    that itself."""
    path = sqlite_path(uri)
    if path is None:
        return _get_or_create(MlflowClient(uri), uri, name)
    check_folder(path)
    if _revision(path, lock_timeout) == _head():
        found = _existing(MlflowClient(uri), name)
        if found is not None:
            return found
    with making(path, lock_timeout):
        check_sqlite(path, lock_timeout)  # again: the store as the process that held the lock left it
        return _get_or_create(MlflowClient(uri), uri, name)


@contextlib.contextmanager
def making(path: Path, lock_timeout: float) -> Iterator[None]:
    """Hold the lock file beside a SQLite store (`<db>.lock`) while making the store or its experiment, the
    holder's pid in `<db>.lock.pid` meanwhile. A waiter waits as long as the holder lives, up to `lock_timeout`
    seconds (saying so once, after WAIT_NOTICE_S); the lock of a holder that died is freed by the kernel (flock),
    so it is taken over at once."""
    lock, holder = FileLock(f"{path}.lock"), Path(f"{path}.lock.pid")
    try:
        try:
            lock.acquire(timeout=min(WAIT_NOTICE_S, lock_timeout))
        except Timeout:
            if lock_timeout <= WAIT_NOTICE_S:
                raise
            print(
                f"tracking store {path}: waiting for {_holder(holder)} to finish making it (up to "
                f"{lock_timeout:g} s, tracking.lock_timeout)",
                file=sys.stderr,
                flush=True,
            )
            lock.acquire(timeout=lock_timeout - WAIT_NOTICE_S)
    except Timeout:
        raise ConfigError(
            f"tracking store {path}: {_holder(holder)} has held {path}.lock for over {lock_timeout:g} s "
            "(tracking.lock_timeout) making it: wait for it to finish, or raise tracking.lock_timeout"
        ) from None
    try:
        holder.write_text(f"{os.getpid()}\n")
        yield
    finally:
        holder.unlink(missing_ok=True)  # while the lock is held: the next holder's file is its own
        lock.release()


def _holder(holder: Path) -> str:
    """The process that holds the lock, as its side file names it."""
    with contextlib.suppress(OSError):
        pid = holder.read_text().strip()
        if pid.isdigit():
            return f"process {pid}"
    return "another process"


def _existing(client: MlflowClient, name: str) -> str | None:
    """The experiment's id, None when there is none of that name; it opens in the UI's Model training view
    (`KIND_TAG`), unless its kind was set otherwise."""
    exp = client.get_experiment_by_name(name)
    if exp is None:
        return None
    if KIND_TAG not in exp.tags:  # made by an earlier version, or by another tool
        client.set_experiment_tag(exp.experiment_id, KIND_TAG, KIND)
    return exp.experiment_id


def _get_or_create(client: MlflowClient, uri: str, name: str) -> str:
    """The experiment's id, made if new (`_existing`)."""
    found = _existing(client, name)
    if found is not None:
        return found
    try:
        return client.create_experiment(name, artifact_location=artifact_root(uri), tags={KIND_TAG: KIND})
    except MlflowException:  # a server: another client created it first
        found = _existing(client, name)
        if found is None:
            raise
        return found


def reader(uri: str) -> MlflowClient:
    """A client for a store to read from (reports, reruns, predictions), checked first: one that does not exist or
    that MLflow cannot use is a ConfigError, one line."""
    check_reachable(uri)
    path = sqlite_path(uri)
    if path is not None:
        if not path.is_file():
            raise ConfigError(f"tracking store {path} does not exist: nothing was logged there; check tracking.uri")
        check_sqlite(path, LOCK_TIMEOUT_S)
    return MlflowClient(uri)


def sqlite_path(uri: str) -> Path | None:
    """The database file of a SQLite store; None for any other store."""
    return Path(uri[len("sqlite:///") :]) if uri.startswith("sqlite:///") else None


def check_folder(path: Path) -> None:
    """The folder of a SQLite store exists, or is made, and takes files; else a ConfigError, one line."""
    where = f"tracking store {path}"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ConfigError(f"{where}: its folder {path.parent} cannot be created ({e.strerror}); {MOVE}") from None
    try:
        tempfile.NamedTemporaryFile(dir=path.parent).close()
    except OSError as e:
        raise ConfigError(f"{where}: its folder {path.parent} cannot be written ({e.strerror}); {MOVE}") from None


def check_sqlite(path: Path, lock_timeout: float) -> None:
    """Nothing when `path` is an MLflow store of this MLflow's schema, or none yet (no file, an empty one, no
    tables); a ConfigError, one line, when it is not an MLflow database, when a newer or an older MLflow wrote it,
    or when another process holds it locked for longer than `lock_timeout` seconds."""
    revision = _revision(path, lock_timeout)
    if revision is None:
        return
    where = f"tracking store {path}"
    if not revision:
        raise ConfigError(f"{where} is a SQLite database but not an MLflow store (no {ALEMBIC} table); {MOVE}")
    _check_schema(where, revision, path)


def _revision(path: Path, lock_timeout: float) -> str | None:
    """The schema revision of the store at `path`: None when there is no store yet (no file, an empty one, no
    tables), "" for a database without one; a ConfigError, one line, when it is no database, or when another
    process holds it locked for longer than `lock_timeout` seconds (a write lock is taken and given back: the store
    can take a run)."""
    where = f"tracking store {path}"
    if not path.exists() or path.stat().st_size == 0:
        return None
    try:
        with contextlib.closing(sqlite3.connect(path, timeout=lock_timeout, isolation_level=None)) as db:
            db.execute("BEGIN IMMEDIATE")
            tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            found = db.execute("SELECT version_num FROM alembic_version").fetchall() if ALEMBIC in tables else []
            db.execute("ROLLBACK")
    except sqlite3.OperationalError as e:
        if "locked" not in str(e):
            raise ConfigError(f"{where} cannot be read: {e}; {MOVE}") from None
        raise ConfigError(
            f"{where} stayed locked by another process for over {lock_timeout:g} s (tracking.lock_timeout): "
            "wait for it to finish, or raise tracking.lock_timeout"
        ) from None
    except sqlite3.DatabaseError as e:
        raise ConfigError(f"{where} is not an MLflow store: {e}; {MOVE}") from None
    if not tables:
        return None
    return str(found[0][0]) if found else ""


@functools.cache
def _migrations():
    """MLflow's schema migrations (alembic's scripts), read once."""
    from alembic.script import ScriptDirectory

    return ScriptDirectory(str(Path(mlflow.store.__file__).parent / "db_migrations"))


def _head() -> str:
    """This MLflow's schema revision."""
    return _migrations().get_current_head()


def _check_schema(where: str, revision: str, path: Path) -> None:
    """Nothing for this MLflow's schema; a ConfigError for another's."""
    from alembic.util import CommandError

    if revision == _head():
        return
    try:
        _migrations().get_revision(revision)
    except CommandError:
        raise ConfigError(
            f"{where} was written by a newer MLflow (schema {revision}, unknown to MLflow {mlflow.__version__}): "
            f"upgrade MLflow (pip install -U mlflow) or {MOVE}"
        ) from None
    raise ConfigError(
        f"{where} was written by an older MLflow (schema {revision}): back it up, then run "
        f"`mlflow db upgrade sqlite:///{path}`"
    )
