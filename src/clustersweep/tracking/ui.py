"""Links into the MLflow UI that open where a user wants to look: the runs table, sorted by the score that
chooses, in the "Model training" view.

MLflow 3.17's UI opens every experiment in its GenAI view (traces, tokens, cost) unless the link asks for
`workflowType=machine_learning`; earlier 3.x releases read the experiment tag `mlflow.experimentKind`, which
`store` sets. The sort and a filter travel in the link; the columns a user adds stay in that browser.
"""

from __future__ import annotations

from urllib.parse import quote, urlencode, urlparse

MLFLOW_UI = "http://127.0.0.1:5000"  # where `mlflow ui` serves by default
VIEW = {"workflowType": "machine_learning"}


def address(uri: str) -> str:
    """The UI's address for a store: an MLflow server's own (without credentials), else `mlflow ui`'s."""
    parts = urlparse(uri)
    if parts.scheme not in ("http", "https"):
        return MLFLOW_UI
    host = parts.hostname or ""
    host = f"[{host}]" if ":" in host else host
    return f"{parts.scheme}://{host}{f':{parts.port}' if parts.port else ''}{parts.path.rstrip('/')}"


def runs_link(uri: str, experiment_id: str, metric: str, ascending: bool, parent: str | None = None) -> str:
    """The experiment's runs table (a sweep's runs, with `parent`), sorted by `metric`."""
    query = {**VIEW, "orderByKey": f"metrics.`{metric}`", "orderByAsc": str(ascending).lower()}
    if parent:
        query["searchFilter"] = f"tags.mlflow.parentRunId = '{parent}'"
    return f"{address(uri)}/#/experiments/{experiment_id}/runs?{urlencode(query, quote_via=quote)}"


def run_link(uri: str, experiment_id: str, run_id: str) -> str:
    return f"{address(uri)}/#/experiments/{experiment_id}/runs/{run_id}?{urlencode(VIEW)}"


def opening(uri: str) -> str:
    """What opens the UI on that store: nothing for a server; `mlflow ui` with the store for a local one."""
    return "" if address(uri) != MLFLOW_UI else f" (after `mlflow ui --backend-store-uri {uri}`)"
