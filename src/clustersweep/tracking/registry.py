"""The Model Registry: a run's logged model registered under a name, as that name's next version, linked both
ways (the version's source is `models:/<model id>`; the logged model lists its versions)."""

from __future__ import annotations

import contextlib
import io
from collections.abc import Mapping

from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient
from mlflow.utils.validation import _validate_model_name

from clustersweep.errors import ConfigError


def check_name(name: str) -> None:
    """A registered model name MLflow accepts, or a ConfigError saying why not."""
    try:
        _validate_model_name(name)
    except MlflowException as e:
        raise ConfigError(f"sweep.register_best={name!r} is not allowed: {e.message}") from None


def register(uri: str, name: str, run_id: str, tags: Mapping[str, str]) -> str:
    """Register the run's logged model as a new version of `name` in the store at `uri` — creating the name when it
    is new (also when another process creates it at the same time) — and return the version.

    Through `mlflow.register_model` with the source `models:/<model id>`: the version links to the logged model,
    whose page then shows it registered (its tag `mlflow.modelVersions`). MLflow resolves that source with the
    process's tracking URI, so it is the store's for the call, and its progress lines are not printed."""
    import mlflow
    from mlflow.tracking._tracking_service.utils import _use_tracking_uri

    run = MlflowClient(uri).get_run(run_id)
    outputs = run.outputs.model_outputs if run.outputs else []
    if not outputs:
        raise ValueError(f"run {run.info.run_name} has no model to register: it ran with model.log=false")
    with _use_tracking_uri(uri), contextlib.redirect_stderr(io.StringIO()):
        version = mlflow.register_model(f"models:/{outputs[0].model_id}", name, tags=dict(tags))
    return str(version.version)
