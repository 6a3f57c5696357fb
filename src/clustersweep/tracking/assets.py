"""What a store holds once for every run's pages: plotly.js, one copy per tracking store and plotly version, as the
artifact of one run in the experiment `clustersweep-assets`, for the plots to load from the server that shows them
(`report.figures.html`).

The file is named `plotly-<version>.min.mjs`: an MLflow server sends a `.js` artifact as `text/plain` with
`X-Content-Type-Options: nosniff`, which no browser runs as a script, and a `.mjs` one as JavaScript. It is a
classic script all the same (the `.mjs` is for the Content-Type alone).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import plotly
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from clustersweep.errors import one_line
from clustersweep.tracking import runs
from clustersweep.tracking.redact import redact
from clustersweep.tracking.store import experiment_id

log = logging.getLogger(__name__)

EXPERIMENT = "clustersweep-assets"
TAG = "clustersweep.asset"  # on the run that holds the copy: the file's name
NOTE = (
    "plotly.js for the plots of every clustersweep run in this store: their pages load it from here. Deleting this "
    "run or experiment leaves those plots to load plotly.js from its CDN (blank without internet)."
)


@dataclass(frozen=True)
class PlotlyJs:
    """Where a store's copy of plotly.js is: what a page needs to load it (`report.figures.html.to_html`)."""

    experiment_id: str
    run_id: str
    path: str  # the artifact's path in the run
    artifact_uri: str  # the run's artifact root


_found: dict[str, PlotlyJs] = {}  # by tracking URI: one look-up per process and store


def file_name() -> str:
    return f"plotly-{plotly.offline.get_plotlyjs_version()}.min.mjs"


def plotlyjs(uri: str) -> PlotlyJs | None:
    """The store's copy of this plotly's plotly.js, logged first if there is none; None (the pages then load it
    from the CDN, with a warning) when the store cannot hold it. Safe when processes race: each may log a copy,
    every copy works and later look-ups all take the oldest."""
    if uri not in _found:
        try:
            found = _find_or_log(uri)
        except MlflowException as e:
            log.warning("plots load plotly.js from its CDN: its copy in %s failed: %s", redact(uri), one_line(e))
            return None
        if found is None:
            return None
        _found[uri] = found
    return _found[uri]


def _find_or_log(uri: str) -> PlotlyJs | None:
    exp_id = experiment_id(uri, EXPERIMENT)
    client = MlflowClient(uri)
    if client.get_experiment(exp_id).lifecycle_stage != "active":
        log.warning(
            "plots load plotly.js from its CDN: the experiment %r of %s is deleted (`mlflow experiments restore "
            "--experiment-id %s` brings their copy back)",
            EXPERIMENT,
            redact(uri),
            exp_id,
        )
        return None
    name = file_name()
    query = f"tags.`{TAG}` = '{name}' AND attributes.status = 'FINISHED'"
    found = client.search_runs([exp_id], query, order_by=["attributes.start_time ASC"], max_results=1)
    if found:
        run_id = found[0].info.run_id
    else:
        tags = {TAG: name, "mlflow.note.content": NOTE}
        with runs.tracked(uri, exp_id, name.removesuffix(".min.mjs"), tags=tags) as run, run.artifacts() as out:
            (out / name).write_text(plotly.offline.get_plotlyjs(), encoding="utf-8")
        run_id = run.run_id
    return PlotlyJs(exp_id, run_id, name, client.get_run(run_id).info.artifact_uri)
