"""The one way a run is opened, filled and closed. Every run clustersweep makes — a single run, a sweep's or a
search's children and their parent, an EDA run, the seed notebook's runs — is opened by `start` (or `tracked`, its
context manager), so every run carries the same standard tags:

- `STANDARD_TAGS`: the code (`git.commit`, `git.dirty`, `code.version`), the `command`, the process that owns
  the run (`process.host`, `process.pid`), which tells a live RUNNING run from an orphan (`is_orphaned`), and the
  machine its numbers depend on (`machine.cpu`, `.cores`, `.blas`, `.threads`); plus MLflow's own context tags
  (`mlflow.user`, `mlflow.source.*`);
- `COMPUTATION_TAGS`, on a run that computes from data (every run but a parent): what makes it the computation it
  is (`config.identity`, `data.sha256`) and the command line's overrides (`hydra.overrides`).

A failure is recorded the same way everywhere (`Run.fail`): tag `error`, artifact `error.txt`, status FAILED
(KILLED on Ctrl-C). Artifacts go up as one folder per call (`Run.artifacts`).
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import tempfile
import time
import traceback
import warnings
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from mlflow.entities import Metric, Param, RunTag
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient
from mlflow.tracking.context.registry import resolve_tags
from mlflow.utils.time import get_current_time_millis
from omegaconf import DictConfig

from clustersweep.errors import one_line
from clustersweep.tracking import machine
from clustersweep.tracking.identity import code_version, flat_params, git_state
from clustersweep.tracking.redact import command_line, redact

STANDARD_TAGS = (
    *("git.commit", "git.dirty", "code.version", "command", "process.host", "process.pid"),
    *("machine.cpu", "machine.cores", "machine.blas", "machine.threads"),
)
COMPUTATION_TAGS = ("config.identity", "data.sha256", "hydra.overrides")
GROUP_TAG = "config.group"  # a clustering run's configuration but for its seed: the runs of one are its replicates
PARTITION = "test_clusters.npy"  # a clustering run's artifact: the test rows' clusters, in order
ERROR_CHARS = 5000  # MLflow's limit on a tag value
INPUT_ATTEMPTS = 3  # `Run.log_input`: tries when runs race to log the same new dataset
DIGEST_CHARS = 36  # of a dataset's digest: what MLflow keeps

log = logging.getLogger(__name__)


def process_tags() -> dict[str, str]:
    """Which process owns a RUNNING run, so a later sweep can tell a live run from one whose process died."""
    return {"process.host": socket.gethostname(), "process.pid": str(os.getpid())}


def standard_tags() -> dict[str, str]:
    return {
        **git_state(),
        "code.version": code_version(),
        "command": command_line(),
        **process_tags(),
        **machine.tags(),
    }


def command_overrides() -> list[str]:
    """The overrides of this Hydra job, as typed on the command line ([] outside Hydra)."""
    from hydra.core.hydra_config import HydraConfig

    return list(HydraConfig.get().overrides.task) if HydraConfig.initialized() else []


def computation_tags(identity: str, data_sha256: str, overrides: list[str], group: str | None = None) -> dict[str, str]:
    """The tags of a run that computes from data; `overrides` are those that recreate its config with
    `python run.py` (secrets masked); `group`: its configuration's identity but for the seed (its replicates')."""
    tags = {"config.identity": identity, "data.sha256": data_sha256, "hydra.overrides": redact(" ".join(overrides))}
    return {**tags, **({GROUP_TAG: group} if group else {})}


def is_orphaned(tags: Mapping[str, str]) -> bool:
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


def describe(e: BaseException) -> str:
    """An error as its `error` tag says it: type and message in one line, secrets masked."""
    message = one_line(e)
    text = type(e).__name__ if message == type(e).__name__ else f"{type(e).__name__}: {message}"
    return redact(text)[:ERROR_CHARS]


@dataclass(frozen=True)
class Run:
    """An MLflow run this process opened (or reopened): everything is logged through it."""

    client: MlflowClient
    run_id: str
    name: str
    experiment_id: str = ""  # "" when not known: looked up where needed

    def log(
        self,
        metrics: Mapping[str, float] | None = None,
        tags: Mapping[str, str] | None = None,
        params: Mapping[str, str] | None = None,
    ) -> int:
        """Metrics, tags and params in one call (MLflow splits it into batches; each is one transaction); returns
        the time the metrics carry (ms)."""
        now = get_current_time_millis()
        self.client.log_batch(
            self.run_id,
            metrics=[Metric(k, float(v), now, 0) for k, v in (metrics or {}).items()],
            params=[Param(k, str(v)) for k, v in (params or {}).items()],
            tags=[RunTag(k, str(v)) for k, v in (tags or {}).items()],
        )
        return now

    def score_model(self, model_id: str, metrics: Mapping[str, float], at: int, dataset: tuple[str, str]) -> None:
        """Metrics this run logged at time `at`, on its logged model too, as measured on `dataset` (name, digest):
        the Models tab sorts by them and shows the dataset. Logged again with their time, MLflow keeps them once
        in the run."""
        name, digest = dataset
        scores = [Metric(k, float(v), at, 0, model_id, name, digest[:DIGEST_CHARS]) for k, v in metrics.items()]
        self.client.log_batch(self.run_id, metrics=scores)

    @contextlib.contextmanager
    def artifacts(self, path: str | None = None) -> Iterator[Path]:
        """A temporary folder to write files into; on leaving the block, all of it goes up (under `path`)."""
        with tempfile.TemporaryDirectory() as tmp:
            yield Path(tmp)
            self.client.log_artifacts(self.run_id, tmp, path)

    def log_model(
        self,
        model: object,
        example: np.ndarray,
        metadata: Mapping[str, object],
        requirements: list[str],
        params: Mapping[str, str],
    ) -> tuple[str, int]:
        """A scikit-learn model as this run's MLflow model `model` — `runs:/<run id>/model`, the runs table's Models
        column — pickled with cloudpickle, with `example` as its input example and the run's `params` as its own;
        returns its model id and size in bytes. No
        signature: MLflow enforces a tensor signature's one dtype exactly (float64 rows refused by a float32
        model), where the model casts the numbers a user has itself; its width is in `metadata`. Nothing predicts
        while it is logged (MLflow's inference of a signature would, and reload the model to do so)."""
        import mlflow.sklearn
        from mlflow.entities import LoggedModelOutput, LoggedModelStatus
        from mlflow.models import Model

        experiment = self.experiment_id or self.client.get_run(self.run_id).info.experiment_id
        logged = self.client.create_logged_model(experiment, "model", self.run_id, params=dict(params))
        description = Model(
            artifact_path=logged.artifact_location,
            model_uuid=logged.model_id,
            run_id=self.run_id,
            metadata=dict(metadata),
            model_id=logged.model_id,
        )
        quiet = logging.getLogger("mlflow.sklearn")  # its warning on pickles, once per run: docs/reference.md says it
        level = quiet.level
        quiet.setLevel(logging.ERROR)
        with tempfile.TemporaryDirectory() as tmp:
            try:
                mlflow.sklearn.save_model(
                    model,
                    Path(tmp) / "model",
                    mlflow_model=description,
                    signature=False,
                    input_example=example,
                    pip_requirements=requirements,
                    serialization_format=mlflow.sklearn.SERIALIZATION_FORMAT_CLOUDPICKLE,
                )
            finally:
                quiet.setLevel(level)
            size = sum(f.stat().st_size for f in Path(tmp).rglob("*") if f.is_file())
            self.client.log_model_artifacts(logged.model_id, str(Path(tmp) / "model"))
        self.client.finalize_logged_model(logged.model_id, LoggedModelStatus.READY)
        self.client.log_outputs(self.run_id, [LoggedModelOutput(logged.model_id, step=0)])
        return logged.model_id, size

    def log_input(self, name: str, digest: str, source: str, X: np.ndarray, y: np.ndarray | None) -> None:
        """The run's dataset as its input (the runs table's Dataset column): `digest` (its first 36 characters),
        where it came from, its shape and whether it has labels (its targets)."""
        import mlflow.data
        from mlflow.entities import DatasetInput, InputTag

        with warnings.catch_warnings():  # "can be interpreted in multiple ways": two resolvers of local paths
            warnings.simplefilter("ignore", UserWarning)
            dataset = mlflow.data.from_numpy(X, source=source, targets=y, name=name, digest=digest[:DIGEST_CHARS])
        tags = [InputTag("mlflow.data.context", "train"), InputTag("labels", str(y is not None).lower())]
        for attempt in range(INPUT_ATTEMPTS):
            try:
                self.client.log_inputs(self.run_id, [DatasetInput(dataset._to_mlflow_entity(), tags)])
                return
            except MlflowException:
                # Runs logging the same new dataset at the same moment: MLflow looks it up, then inserts it, and
                # all but one insert break its unique key (or SQLite's lock); it exists now, so once more links it.
                if attempt == INPUT_ATTEMPTS - 1:
                    raise
                time.sleep(0.2 * (attempt + 1))

    def finish(self, status: str = "FINISHED") -> None:
        self.client.set_terminated(self.run_id, status)

    def fail(self, error: BaseException) -> None:
        """Record the error (tag `error`, `error.txt` with the traceback) and end the run FAILED, or KILLED when
        it was Ctrl-C."""
        self.client.set_tag(self.run_id, "error", describe(error))
        self.client.log_text(self.run_id, redact("".join(traceback.format_exception(error))), "error.txt")
        self.finish("KILLED" if isinstance(error, KeyboardInterrupt) else "FAILED")


def start(
    uri: str,
    experiment_id: str,
    name: str,
    *,
    tags: Mapping[str, str] | None = None,
    params: DictConfig | None = None,
    parent: str | None = None,
) -> Run:
    """Open a run with the standard tags, the given ones (`computation_tags` for a run that computes), under
    `parent` if given, with `params` (a config) flattened; first, the store's orphans are marked KILLED."""
    client = MlflowClient(uri)
    reap_orphans(client)
    all_tags = resolve_tags({**standard_tags(), **(tags or {})})
    if parent:
        all_tags["mlflow.parentRunId"] = parent
    created = client.create_run(experiment_id, run_name=redact(name), tags=all_tags)
    run = Run(client, created.info.run_id, name, experiment_id)
    try:
        if params is not None:
            run.log(params=flat_params(params))
    except BaseException as e:  # Ctrl-C or SIGTERM while its params go up: the run exists, so it is closed
        with contextlib.suppress(Exception):
            run.fail(e)
        raise
    return run


def reopen(uri: str, run_id: str, tags: Mapping[str, str] | None = None) -> Run:
    """A run opened earlier (a search's parent, resumed), RUNNING again and owned by this process."""
    client = MlflowClient(uri)
    reap_orphans(client)
    client.update_run(run_id, status="RUNNING")
    info = client.get_run(run_id).info
    run = Run(client, run_id, info.run_name, info.experiment_id)
    run.log(tags={**standard_tags(), **(tags or {})})
    return run


@contextlib.contextmanager
def tracked(uri: str, experiment_id: str, name: str, **kwargs) -> Iterator[Run]:
    """`start` as a block: the run is FINISHED when the block ends, FAILED (KILLED on Ctrl-C) with the error
    recorded when it raises; the error goes on — also when the store cannot take the record (it went away): the
    run then stays RUNNING until its process is gone and the next run's start marks it KILLED."""
    run = start(uri, experiment_id, name, **kwargs)
    try:
        yield run
    except BaseException as e:
        with contextlib.suppress(Exception):
            run.fail(e)
        raise
    run.finish()


def reap_orphans(client: MlflowClient) -> list[str]:
    """Mark KILLED the runs of this host left RUNNING by a process that no longer exists (kill -9, power loss), in
    any experiment of the store — one query for its experiments, one for their RUNNING runs of this host; says so
    and returns their names."""
    query = f"attributes.status = 'RUNNING' AND tags.`process.host` = '{socket.gethostname()}'"
    reaped = []
    for r in client.search_runs(_experiment_ids(client), query, max_results=5000):
        if is_orphaned(r.data.tags):
            client.set_tag(r.info.run_id, "error", "its process ended without closing the run (killed)")
            client.set_terminated(r.info.run_id, "KILLED")
            reaped.append(r.info.run_name)
    if reaped:
        log.warning("marked %d orphaned run(s) KILLED (their process is gone): %s", len(reaped), ", ".join(reaped))
    return reaped


def _experiment_ids(client: MlflowClient) -> list[str]:
    """Every active experiment of the store (MLflow gives them a page of at most 1000 at a time)."""
    ids, token = [], None
    while True:
        page = client.search_experiments(max_results=1000, page_token=token)
        ids += [e.experiment_id for e in page]
        token = page.token
        if not token:
            return ids
