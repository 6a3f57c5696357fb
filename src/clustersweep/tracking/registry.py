"""The Model Registry: a run's logged model registered under a name, as that name's next version."""

from __future__ import annotations

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


def register(client: MlflowClient, name: str, run_id: str, tags: Mapping[str, str]) -> str:
    """Register the run's model (`runs:/<run id>/model`) as a new version of `name`, creating the name when it is
    new (also when another process creates it at the same time); returns the version."""
    run = client.get_run(run_id)
    outputs = run.outputs.model_outputs if run.outputs else []
    if not outputs:
        raise ValueError(f"run {run.info.run_name} has no model to register: it ran with model.log=false")
    model_id = outputs[0].model_id
    try:
        client.create_registered_model(name)
    except MlflowException as e:
        if e.error_code != "RESOURCE_ALREADY_EXISTS":
            raise
    source = client.get_logged_model(model_id).artifact_location
    version = client.create_model_version(name, source=source, run_id=run_id, tags=dict(tags), model_id=model_id)
    return str(version.version)
