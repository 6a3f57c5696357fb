"""Figures as HTML for MLflow's artifact viewer, and how each page finds plotly.js.

MLflow's UI shows an HTML artifact by fetching it and opening it from a `blob:` URL in an iframe sandboxed to
`allow-scripts`: the page has an opaque origin (relative links do not resolve, `fetch` to the server is refused by
CORS), but `location.href` (`blob:http://HOST:PORT/…`) and `document.referrer` (the UI's page) say which server
shows it, and a `<script src>` to that server loads when the file comes with a JavaScript Content-Type.

So a page is given one copy of plotly.js per tracking store (`ServedPlotlyJs`, logged by `tracking.assets`) and
tries, in order: that copy from the server that shows the page (`get-artifact`, then the proxied-artifacts
endpoint), the same file beside the page's run in the store's artifact folder (a page opened from disk), then the
CDN. It draws as soon as one loads. Without a copy, a page loads plotly.js from the CDN alone; `embed_plotlyjs`
puts all of plotly.js (~4.6 MB) in each page.
"""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path
from typing import Protocol

import plotly
import plotly.graph_objects as go

log = logging.getLogger(__name__)

_CDN = f"https://cdn.plot.ly/plotly-{plotly.offline.get_plotlyjs_version()}.min.js"  # the bundled version
# Plotly's own figure script, after the figure's div; set aside until plotly.js is there.
_FIGURE_SCRIPT = re.compile(
    r'(<div id="[^"]+" class="plotly-graph-div"[^>]*></div>\s*)<script(?: type="text/javascript")?>'
)
_DEFERRED = "text/x-plotly-figure"

# Loads the first source that works, then runs the figure scripts (once the page is parsed).
_LOADER = """<script>
window.PlotlyConfig = {MathJaxConfig: 'local'};
(function () {
  var js = %s, here = location.href, sources = [];
  function add(url) { if (sources.indexOf(url) < 0) sources.push(url); }
  var origin = new URL(here).origin;
  var served = "get-artifact?path=" + encodeURIComponent(js.path) + "&run_uuid=" + js.run;
  if (/^https?:/.test(origin)) {  // shown by a tracking server (MLflow's UI: a blob: URL of its origin)
    if (document.referrer && new URL(document.referrer).origin === origin) add(new URL(served, document.referrer).href);
    add(origin + "/" + served);
    if (js.proxied) add(origin + "/ajax-api/2.0/mlflow-artifacts/artifacts/" + js.proxied);
  }
  var m = /^((?:file|https?):.*\\/)[0-9a-f]{32}\\/artifacts\\//.exec(here);
  if (m) {  // opened from the store's artifact folder: the copy's run is in <root>/<run> or <root>/<experiment>/<run>
    var own = js.run + "/artifacts/" + js.path, nested = js.experiment + "/" + own;
    [own, nested, "../" + own, "../" + nested].forEach(function (p) { add(m[1] + p); });
  }
  add(js.cdn);
  function draw() {
    var figures = document.querySelectorAll('script[type="%s"]');
    for (var i = 0; i < figures.length; i++) {
      var s = document.createElement("script");
      s.text = figures[i].text;
      figures[i].parentNode.replaceChild(s, figures[i]);
    }
  }
  function load(i) {
    if (i >= sources.length) {
      var note = document.createElement("p");
      note.textContent = "plotly.js did not load from the tracking server, the store's folder or " + js.cdn;
      document.body.insertBefore(note, document.body.firstChild);
      return;
    }
    var s = document.createElement("script");
    s.charset = "utf-8";
    s.src = sources[i];
    s.onload = function () {
      if (!window.Plotly) return load(i + 1);
      if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", draw);
      else draw();
    };
    s.onerror = function () { s.remove(); load(i + 1); };
    document.head.appendChild(s);
  }
  load(0);
})();
</script>
"""


class ServedPlotlyJs(Protocol):
    """One copy of plotly.js logged as an artifact (`tracking.assets.PlotlyJs` is one): the run that holds it, its
    path in the run (a name MLflow serves as JavaScript: `.mjs`) and the run's artifact root."""

    @property
    def experiment_id(self) -> str: ...
    @property
    def run_id(self) -> str: ...
    @property
    def path(self) -> str: ...
    @property
    def artifact_uri(self) -> str: ...


def to_html(fig: go.Figure, embed_plotlyjs: bool, plotlyjs: ServedPlotlyJs | None = None) -> str:
    """A full HTML page of `fig`. plotly.js: embedded (`embed_plotlyjs`, ~4.6 MB a page); else from the copy
    `plotlyjs` where the page is shown, with the CDN as the last resort; without a copy, from the CDN."""
    if embed_plotlyjs:
        return fig.to_html(include_plotlyjs=True, full_html=True)
    if plotlyjs is None:
        return fig.to_html(include_plotlyjs=_CDN, full_html=True)
    page, found = _FIGURE_SCRIPT.subn(rf'\1<script type="{_DEFERRED}">', fig.to_html(include_plotlyjs=False))
    if not found or "</head>" not in page:  # another plotly's page layout: the page it would have written
        log.warning("plotly %s writes pages this module does not know: plotly.js from the CDN", plotly.__version__)
        return fig.to_html(include_plotlyjs=_CDN, full_html=True)
    return page.replace("</head>", _loader(plotlyjs) + "</head>", 1)


def write_html(fig: go.Figure, path: Path, embed_plotlyjs: bool, plotlyjs: ServedPlotlyJs | None = None) -> Path:
    path.write_text(to_html(fig, embed_plotlyjs, plotlyjs), encoding="utf-8")
    return path


def _loader(js: ServedPlotlyJs) -> str:
    proxied = None
    if js.artifact_uri.startswith("mlflow-artifacts:"):  # the server proxies the run's artifacts
        proxied = re.sub(r"^mlflow-artifacts:(//[^/]*)?/*", "", js.artifact_uri).rstrip("/") + "/" + js.path
    where = {"run": js.run_id, "experiment": js.experiment_id, "path": js.path, "proxied": proxied, "cdn": _CDN}
    return _LOADER % (json.dumps(where).replace("</", "<\\/"), _DEFERRED)
