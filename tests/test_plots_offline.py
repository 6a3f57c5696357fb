"""Plots that draw offline without carrying plotly.js: each page loads the store's one copy (`tracking.assets`)
from the server that shows it. Checked in headless Chromium through MLflow's own UI — which opens an HTML artifact
from a `blob:` URL in an iframe sandboxed to `allow-scripts` — with every host but 127.0.0.1 unresolvable, so the
CDN cannot be what draws them; a page with the CDN alone (what `to_html` writes without a copy) stays blank there."""

from __future__ import annotations

import multiprocessing
import shutil
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from browser import needs_chromium
from conftest import MlflowServer
from mlflow.tracking import MlflowClient

from clustersweep.report.figures import classes
from clustersweep.report.figures.html import _CDN, to_html
from clustersweep.tracking import assets, runs
from clustersweep.tracking.store import experiment_id

# Plotly's drawing, read in the page: `.main-svg` is the SVG plotly.js draws into; the page's note when no source of
# plotly.js loaded.
STATE = """JSON.stringify({href: location.href, origin: self.origin, ready: document.readyState,
  plotly: typeof window.Plotly, drawn: !!document.querySelector(".main-svg"),
  gave_up: !!document.body && document.body.innerText.includes("plotly.js did not load"),
  scripts: Array.from(document.scripts, s => s.src).filter(Boolean)})"""


def ended(state: dict) -> bool:
    """The page drew, or no source of plotly.js loaded."""
    return state["drawn"] or state["gave_up"]


def figure():
    """A clustering run's contingency heatmap."""
    y = np.repeat(np.arange(3), 20)
    return classes.contingency_heatmaps(y, (y + np.arange(60) % 2) % 3, ["Top", "Trouser", "Bag"])[0]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, empty_store: Path):
    """This module's own `mlflow server`; its store is also used directly (SQLite), as `mlflow ui` shows a local
    store."""
    srv = MlflowServer(tmp_path_factory.mktemp("offline") / "mlruns")
    srv.store.mkdir()
    shutil.copy(empty_store, srv.store / "mlflow.db")
    srv.start()
    yield srv
    srv.stop()


def log_pages(uri: str, experiment: str, pages: dict[str, str]) -> tuple[str, str]:
    """One run with `pages` under plots/; returns (experiment id, run id)."""
    exp_id = experiment_id(uri, experiment)
    with runs.tracked(uri, exp_id, "plots") as run, run.artifacts("plots") as out:
        for name, html in pages.items():
            (out / f"{name}.html").write_text(html, encoding="utf-8")
    return exp_id, run.run_id


@needs_chromium
def test_default_plots_draw_in_the_mlflow_ui_and_from_disk_without_internet(server, chromium):
    local, remote = f"sqlite:///{server.store / 'mlflow.db'}", server.uri  # tracking=local, tracking=server
    js = assets.plotlyjs(local)
    assert js is not None and assets.plotlyjs(remote) == js  # one copy for the store, however it is reached
    fig = figure()
    pages = {"local": to_html(fig, False, js), "server": to_html(fig, False, js), "cdn_only": to_html(fig, False)}
    where = {
        "local": log_pages(local, "offline-local", {n: pages[n] for n in ("local", "cdn_only")}),
        "server": log_pages(remote, "offline-server", {"server": pages["server"]}),
    }
    where["cdn_only"] = where["local"]
    client = MlflowClient(local)
    tabs = {  # MLflow's UI page of each artifact, and the same pages opened from the store's folder
        name: chromium.open(
            f"{server.uri}/#/experiments/{where[name][0]}/runs/{where[name][1]}/artifacts/plots/{name}.html"
        )
        for name in pages
    }
    on_disk = {
        name: chromium.open(file_url(server.store, client.get_run(where[name][1]).info.artifact_uri, name))
        for name in ("local", "server")
    }
    in_ui = lambda s: s["href"].startswith(f"blob:{server.uri}/")  # noqa: E731
    for name in ("local", "server"):
        page = chromium.frame_until(tabs[name], STATE, in_ui, ended)
        assert page.get("drawn") and page["plotly"] == "object", (name, page)
        assert page["origin"] == "null"  # the UI's sandboxed iframe: an opaque origin
        assert chromium.evaluate(tabs[name], "document.querySelector('iframe.mlflow-html-iframe').sandbox + ''") == (
            "allow-scripts"
        )
        assert page["scripts"][0].startswith(f"{server.uri}/get-artifact?path={js.path}&run_uuid={js.run_id}")
    # The page as it was before: plotly.js from the CDN alone stays blank here.
    page = chromium.frame_until(tabs["cdn_only"], STATE, in_ui, lambda s: s["ready"] == "complete")
    assert page.get("ready") == "complete" and not page["drawn"] and page["plotly"] == "undefined", page
    for name, tab in on_disk.items():  # the copy found in the store's folder, beside the page's run
        page = chromium.frame_until(tab, STATE, lambda s: s["href"].startswith("file:"), ended)
        assert page.get("drawn") and page["scripts"][-1].endswith(f"/{js.run_id}/artifacts/{js.path}"), (name, page)
    assert len(pages["local"]) < 100_000 and _CDN in pages["local"]  # the CDN stays the last resort


def file_url(store: Path, artifact_uri: str, name: str) -> str:
    """A run's plots/<name>.html as a file: URL (a server keeps proxied artifacts under <store>/artifacts)."""
    if artifact_uri.startswith("mlflow-artifacts:"):
        artifact_uri = (store / "artifacts" / artifact_uri.split(":", 1)[1].lstrip("/")).as_uri()
    return f"{artifact_uri}/plots/{name}.html"


def test_pages_embed_plotlyjs_load_the_stores_copy_or_the_cdn():
    fig = figure()
    assert len(to_html(fig, True)) > 3_000_000 and "get-artifact" not in to_html(fig, True)  # as before
    assert f'<script charset="utf-8" src="{_CDN}"></script>' in to_html(fig, False)  # no copy: as before
    js = assets.PlotlyJs("7", "a" * 32, "plotly-x.min.mjs", "mlflow-artifacts:/7/" + "a" * 32 + "/artifacts")
    assert "get-artifact" not in to_html(fig, True, js)  # embed_plotlyjs wins
    page = to_html(fig, False, js)
    assert len(page) < 100_000 and page.count('<script type="text/x-plotly-figure">') == 1  # drawn once loaded
    assert '"run": "' + "a" * 32 in page and '"proxied": "7/' + "a" * 32 + '/artifacts/plotly-x.min.mjs"' in page


def test_the_store_keeps_one_copy_even_when_processes_race(store):
    with ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("fork")) as pool:  # two sweep workers
        got = list(pool.map(assets.plotlyjs, [store, store]))
    assert all(got)
    client = MlflowClient(store)
    copies = client.search_runs([got[0].experiment_id], f"tags.`{assets.TAG}` = '{assets.file_name()}'")
    assert 1 <= len(copies) <= 2 and {c.info.status for c in copies} == {"FINISHED"}  # a race may log two
    assert {g.run_id for g in got} <= {c.info.run_id for c in copies}
    oldest = min(copies, key=lambda c: c.info.start_time).info.run_id
    assert assets.plotlyjs(store).run_id == oldest  # from now on, everyone takes the oldest
    path = Path(client.download_artifacts(oldest, assets.file_name(), str(Path(store[10:]).parent)))
    assert path.stat().st_size > 3_000_000 and "plotly" in path.read_text()[:2000].lower()


def test_a_second_copy_from_a_race_is_harmless(store, monkeypatch):
    first = assets.plotlyjs(store)
    with monkeypatch.context() as m:  # a process that looked before the first copy was FINISHED
        m.setattr(MlflowClient, "search_runs", lambda *a, **k: [])
        second = assets._find_or_log(store)
    assert second.run_id != first.run_id
    assert {MlflowClient(store).get_run(r).info.status for r in (first.run_id, second.run_id)} == {"FINISHED"}
    assets._found.clear()
    assert assets.plotlyjs(store) == first


def test_a_deleted_assets_experiment_leaves_the_cdn(store, caplog):
    client = MlflowClient(store)
    client.delete_experiment(experiment_id(store, assets.EXPERIMENT))
    assert assets.plotlyjs(store) is None
    assert "deleted" in caplog.text and "CDN" in caplog.text
