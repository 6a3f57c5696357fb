"""The label-free Optuna search: a trial is a child run of the study's one parent, the objective's direction
follows the metric, and an interrupted study resumes with exactly the missing trials."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import signal
from pathlib import Path
from wsgiref.util import setup_testing_defaults

import numpy as np
import optuna
import optuna_dashboard
import pandas as pd
import pytest
from conftest import ROOT, WAIT, read_until, run_py, runs, start_run_py
from hydra import compose, initialize_config_dir
from hydra.core.override_parser.overrides_parser import OverridesParser

from clustersweep.app.search import key, storage_url, study_storage
from clustersweep.errors import ConfigError

SEARCH = [
    "-m",
    "search=pca_kmeans",
    "hydra.sweeper.n_trials=3",
    "dataset=synthetic",
    "reducer.k=range(2,12)",  # on the command line: the search space (Optuna's grammar)
    "clusterer.K=range(2,8)",
    "clusterer.n_init=100",  # long enough a fit to interrupt
    "metrics.silhouette_sample_size=200",
    "plots.enabled=false",
]


def _compose(*overrides: str):
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        return compose("config", overrides=list(overrides), return_hydra_config=True)


def test_the_direction_follows_the_objective_metric():
    assert _compose("search=umap_gmm").hydra.sweeper.direction == "maximize"
    assert _compose("search=umap_gmm", "sweep.select_by=davies_bouldin").hydra.sweeper.direction == "minimize"
    several = _compose("search=umap_gmm", "sweep.select_by=[stability,davies_bouldin]").hydra.sweeper.direction
    assert list(several) == ["maximize", "minimize"]  # a direction per objective
    assert _compose("search=umap_gmm", "sweep.select_by=[davies_bouldin]").hydra.sweeper.direction == "minimize"


def test_a_search_sets_its_objective():
    cfg = _compose("search=umap_gmm")
    assert cfg.sweep.select_by == "modularity" and cfg.hydra.sweeper.study_name is None  # named by what it searches
    patches = _compose("search=patches_umap_gmm")
    assert (patches.sweep.select_by, patches.reducer.name) == ("modularity", "patches_umap")
    assert patches.hydra.sweeper == cfg.hydra.sweeper  # umap_gmm's sweeper, space and budget, whole
    for search in (ROOT / "conf" / "search").glob("*.yaml"):
        sweeper = _compose(f"search={search.stem}").hydra.sweeper
        assert sweeper._target_.endswith("Sweeper"), search.name  # each can run with -m
        assert search.stem == "grid" or sweeper.params, search.name  # a search has its space
    assert _compose().sweep.select_by == "silhouette"  # outside a search, the default stays
    assert _compose("search=umap_gmm", "sweep.select_by=silhouette").sweep.select_by == "silhouette"  # the command


def test_a_named_study_refuses_another_objective_or_space(store):
    args = [a for a in SEARCH if not a.startswith(("hydra.sweeper.n_trials", "clusterer.n_init"))]
    args += ["clusterer.n_init=1", "hydra.sweeper.study_name=mine"]
    first = run_py(*args, "hydra.sweeper.n_trials=1", store=store)
    assert first.returncode == 0, first.stdout + first.stderr
    for other, said in [
        (["sweep.select_by=davies_bouldin"], "error: study 'mine' optimizes silhouette, not sweep.select_by=davies"),
        (["clusterer.K=range(2,5)"], "error: hydra.sweeper.study_name=mine: that study searched another space"),
    ]:
        res = run_py(*args, "hydra.sweeper.n_trials=2", *other, store=store)
        assert res.returncode == 2 and res.stderr.count("\n") == 1, res.stdout + res.stderr
        assert res.stderr.startswith(said), res.stderr
    assert len(_study(store).trials) == 1  # nothing was asked or run
    _, found = runs(store)
    assert len(found) == 2 and all(r.info.status == "FINISHED" for r in found)  # the parent and its one trial


def test_another_space_or_other_data_is_another_study_and_parent(store):
    args = [a for a in SEARCH if not a.startswith(("hydra.sweeper.n_trials", "clusterer.n_init"))]
    args += ["clusterer.n_init=1", "hydra.sweeper.n_trials=1"]
    for other in [[], ["clusterer.K=range(2,5)"], ["dataset.n_train=150"]]:
        res = run_py(*args, *other, store=store)
        assert res.returncode == 0 and "has 0 completed trial(s); 1 to run" in res.stdout, res.stdout + res.stderr
    names = optuna.get_all_study_names(study_storage(storage_url(store, None)))
    assert len(names) == 3 and all(re.fullmatch(r"pca_kmeans-silhouette-[0-9a-f]{8}", n) for n in names), names
    _, found = runs(store)
    assert sorted(r.data.tags["sweep.study"] for r in found if "sweep.study" in r.data.tags) == sorted(names)


def _study(store: str) -> optuna.Study:
    """The one study of the store's optuna.db."""
    storage = study_storage(storage_url(store, None))
    (name,) = optuna.get_all_study_names(storage)
    return optuna.load_study(study_name=name, storage=storage)


def test_the_gp_sampler_without_pytorch_is_one_line_before_any_run(store, monkeypatch):
    from clustersweep.app import search

    assert isinstance(search.sampler("tpe", 0, 5), optuna.samplers.TPESampler)
    find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "torch" else find_spec(name, *a))
    with pytest.raises(ConfigError, match="^hydra.sweeper.sampler.name=gp needs PyTorch, which is not installed"):
        search.sampler("gp", 0, 5)
    if find_spec("torch") is None:  # as in CI: the command itself
        res = run_py(*SEARCH, "hydra.sweeper.sampler.name=gp", store=store)
        assert res.returncode == 2 and res.stderr.startswith("error: hydra.sweeper.sampler.name=gp needs PyTorch")
        assert runs(store)[1] == []


def test_the_study_lives_with_the_runs(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}"
    url = storage_url(uri, None)
    assert url == f"sqlite:///{tmp_path / 'mlruns' / 'optuna.db'}"
    storage = study_storage(url)  # opens twice: the schema stamp written the first time is read back
    optuna.create_study(study_name="s", storage=storage).optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=1)
    assert len(optuna.load_study(study_name="s", storage=study_storage(url)).trials) == 1
    team = "postgresql://u:pw@db.example:5432/mlflow"  # the runs' own database: the study in its own schema
    assert storage_url(team, None) == team + "?options=-csearch_path%3Doptuna"
    assert storage_url("http://127.0.0.1:5000", team) == team + "?options=-csearch_path%3Doptuna"  # search.storage
    assert storage_url(uri, team + "?options=-csearch_path%3Dmine") == team + "?options=-csearch_path%3Dmine"
    assert storage_url(uri, "sqlite:////tmp/o.db") == "sqlite:////tmp/o.db"
    assert storage_url("http://127.0.0.1:5000", None).endswith("clustersweep/optuna.db")  # this machine's cache


@pytest.mark.parametrize(
    "storage, said",
    [
        ("nonsense", "error: search.storage=nonsense cannot be opened: Could not parse SQLAlchemy URL"),
        ("mysql://u:pw@127.0.0.1:1/db", "error: search.storage=mysql://u:***@127.0.0.1:1/db cannot be opened: "),
        ("postgresql://u:pw@127.0.0.1:1/db", "error: search.storage=postgresql://u:***@127.0.0.1:1/db?options="),
    ],
)
def test_a_storage_that_cannot_be_opened_is_one_line_before_any_run(store, storage, said):
    res = run_py(*SEARCH, f"search.storage={storage}", store=store)
    assert res.returncode == 2 and res.stderr.count("\n") == 1, res.stdout + res.stderr
    assert res.stderr.startswith(said) and "pw" not in res.stderr, res.stderr
    assert runs(store)[1] == []


def _interrupted_in_second_job(search: list[str], store: str, tmp_path: Path) -> str:
    """Start the search and press Ctrl-C while its second job fits (the first finished); returns what it said."""
    proc = start_run_py(*search, store=store, out=tmp_path / "h")
    seen = read_until(proc, lambda seen: "[2/?]" in seen)  # the first job finished, the second started
    seen = read_until(proc, lambda seen: seen.rstrip().endswith("cluster …"), seen)  # and is fitting
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=WAIT)
    assert proc.returncode == 130, seen + out
    return seen + out


def test_an_interrupted_search_resumes_with_only_the_missing_trials(store, tmp_path):
    search = [*(a for a in SEARCH if not a.startswith("hydra.sweeper.n_trials")), "hydra.sweeper.n_trials=6"]
    seen = _interrupted_in_second_job(search, store, tmp_path)
    assert "[1/?]" in seen and "finished" in seen, seen

    res = run_py(*search, store=store)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "has 1 completed trial(s), 1 cut off by an interruption; 5 to run" in res.stdout, res.stdout
    study = _study(store)
    states = [t.state.name for t in study.trials if "repeat_of" not in t.user_attrs]  # repeats are asked again
    assert states.count("COMPLETE") == 6 and states.count("FAIL") == 1, states
    done = [t for t in study.trials if t.state.name == "COMPLETE"]
    assert len({key(t.params) for t in done}) == 6  # 6 distinct configurations

    _, found = runs(store)
    (parent,) = [r for r in found if "sweep.study" in r.data.tags]
    assert parent.info.status == "FINISHED" and parent.data.tags["sweep.study"] == study.study_name
    children = [r for r in found if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    assert all(r in children or r is parent for r in found)  # one parent for both invocations
    status = sorted(c.info.status for c in children)
    skipped = sum(k.startswith("skipped.") for k in parent.data.tags)
    assert status.count("KILLED") == 1 and status.count("FINISHED") + skipped == 6, (status, skipped)
    jobs = sorted(int(c.data.tags["sweep.job"]) for c in children)
    assert len(set(jobs)) == len(jobs)  # numbering goes on after the interruption
    values = [c.data.metrics["silhouette"] for c in children if c.info.status == "FINISHED"]
    assert max(values) == study.best_value  # each trial's value is its run's label-free metric
    ids = {c.info.run_id: c.data.metrics.get("silhouette") for c in children}
    assert all(ids[t.user_attrs["mlflow_run_id"]] == t.value for t in done)  # a trial names its run
    assert study.user_attrs["mlflow_parent_run_id"] == parent.info.run_id
    assert Path(store[len("sqlite:///") :]).parent.joinpath("optuna.db").exists()
    client, _ = runs(store)
    summary = {a.path for a in client.list_artifacts(parent.info.run_id, "summary")}
    assert {"summary/search_silhouette_vs_reducer.k.html", "summary/search_silhouette_vs_clusterer.K.html"} <= summary


def test_a_failing_trial_is_recorded_and_the_search_goes_on(store):
    args = [a for a in SEARCH if not a.startswith(("clusterer.K=", "clusterer.n_init="))]
    res = run_py(*args, "clusterer.K=choice(3,700)", "clusterer.n_init=2", store=store)
    assert res.returncode == 1, res.stdout + res.stderr  # the sweep reports its failed jobs
    assert "FAILED: clusterer.K=700 is not allowed" in res.stdout
    study = _study(store)
    states = [t.state.name for t in study.trials]
    assert len(states) == 3 and "FAIL" in states, states  # every trial of the budget was tried
    assert "sweep failed:" in res.stdout


def test_a_search_runs_each_configuration_once_while_there_are_new_ones(store):
    """Eight configurations and a budget of eight: the seeded sampler proposes repeats, in its random start and
    once TPE has a favourite; each is replaced by a configuration not tried yet."""
    res = run_py(
        *[a for a in SEARCH if not a.startswith(("reducer.k=", "clusterer.K=", "clusterer.n_init", "hydra.sweeper.n"))],
        "hydra.sweeper.n_trials=8",
        "reducer.k=choice(2,3)",
        "clusterer.K=choice(2,3)",
        "reducer.whiten=choice(true,false)",
        "clusterer.n_init=1",
        store=store,
    )
    assert res.returncode == 0, res.stdout + res.stderr
    study = _study(store)
    done = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    repeats = [t for t in study.trials if "repeat_of" in t.user_attrs]
    assert len(done) == 8 and len({tuple(sorted(t.params.items())) for t in done}) == 8
    assert repeats and all(t.state == optuna.trial.TrialState.FAIL for t in repeats)
    _, logged = runs(store)
    assert len([r for r in logged if "mlflow.parentRunId" in r.data.tags]) == 8  # one child run per configuration


def test_an_untried_configuration_is_drawn_from_a_discrete_space_only():
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    from clustersweep.app.search import Space, key

    space = Space({"a": CategoricalDistribution([1, 2]), "b": IntDistribution(0, 4, step=2)}, [])  # 2 x 3 of them
    seen = {key({"a": a, "b": b}) for a in (1, 2) for b in (0, 2, 4) if (a, b) != (2, 2)}
    assert space.untried(seen, np.random.RandomState(0)) == {"a": 2, "b": 2}
    seen.add(key({"a": 2, "b": 2}))
    assert space.untried(seen, np.random.RandomState(0)) is None  # used up
    assert Space({"x": FloatDistribution(0, 1)}, []).untried(set(), np.random.RandomState(0)) is None  # continuous


def test_the_grammar_of_a_search_space_becomes_optunas_distributions():
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    from clustersweep.app.search import Space

    parser = OverridesParser.create()
    params = {"reducer.k": "choice(5, 10)", "clusterer.K": "range(8, 12)"}
    space = Space.parse(parser, params, ["x=interval(0.1, 1)", "y=tag(log, interval(1e-3, 1.0))", "dataset=digits"])
    assert space.distributions == {
        "reducer.k": CategoricalDistribution([5, 10]),
        "clusterer.K": IntDistribution(8, 12),  # both ends included
        "x": FloatDistribution(0.1, 1),
        "y": FloatDistribution(1e-3, 1.0, log=True),
    }
    assert space.fixed == ["dataset=digits"]
    assert Space.parse(parser, params, ["clusterer.K=9"]).distributions.keys() == {"reducer.k"}  # the command wins


def test_the_project_uses_no_private_optuna_module_or_attribute():
    """Optuna's public API only: its internals (`optuna.storages._rdb`, `study._storage`, a sweeper's
    `_configure_trials`) change in any release."""
    private = re.compile(r"optuna(\.\w+)*\._\w|\._storage\b|_configure_trials|hydra_optuna_sweeper")
    files = [*ROOT.glob("src/**/*.py"), *ROOT.glob("scripts/*.py"), *ROOT.glob("conf/**/*.yaml")]
    found = [
        f"{f.relative_to(ROOT)}:{i}"
        for f in files
        for i, ln in enumerate(f.read_text().splitlines(), 1)
        if private.search(ln)
    ]
    assert len(files) > 40 and found == []
    assert private.search("from optuna.storages._rdb import models") and private.search("study._storage.x")


def test_rerunning_a_complete_search_says_its_result_and_leaves_its_parent_alone(store):
    args = [a for a in SEARCH if not a.startswith(("hydra.sweeper.n_trials", "clusterer.n_init"))]
    args += ["hydra.sweeper.n_trials=2", "clusterer.n_init=1"]
    first = run_py(*args, store=store)
    assert first.returncode == 0, first.stdout + first.stderr
    _, before = runs(store)
    again = run_py(*args, store=store)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "has 2 completed trial(s); 0 to run" in again.stdout and "its best, trial" in again.stdout, again.stdout
    assert "A new study created" not in again.stderr and "Using an existing study" not in again.stderr
    _, after = runs(store)
    assert [(r.info.run_id, r.info.status, r.info.end_time, r.data.tags) for r in after] == [
        (r.info.run_id, r.info.status, r.info.end_time, r.data.tags) for r in before
    ]


def test_parallel_trials_under_joblib_resume_to_exactly_the_budget_of_distinct_configurations(store, tmp_path):
    args = [a for a in SEARCH if not a.startswith("hydra.sweeper.n_trials")]
    args += ["hydra.sweeper.n_trials=4", "hydra.sweeper.n_jobs=2", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2"]
    proc = start_run_py(*args, store=store, out=tmp_path / "h", new_session=True)
    seen = read_until(proc, lambda seen: seen.count("finished in") >= 2 and "[3/?]" in seen)  # the 2nd batch runs
    os.killpg(proc.pid, signal.SIGINT)
    proc.communicate(timeout=WAIT)
    res = run_py(*args, store=store, process=True)  # joblib's workers
    assert res.returncode == 0, seen + res.stdout + res.stderr
    assert "cut off by an interruption" in res.stdout, res.stdout
    study = _study(store)
    done = [t for t in study.trials if t.state.name == "COMPLETE"]
    assert len(done) == 4 and len({tuple(sorted(t.params.items())) for t in done}) == 4
    _, found = runs(store)
    parents = [r for r in found if "sweep.study" in r.data.tags]
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    finished = [r for r in found if r.data.tags.get("mlflow.parentRunId") and r.info.status == "FINISHED"]
    assert sorted(t.user_attrs["mlflow_run_id"] for t in done) == sorted(r.info.run_id for r in finished)
    assert "RUNNING" not in {r.info.status for r in found}


def test_a_lower_is_better_objective_makes_optunas_best_the_searchs_best_run(store):
    args = [a for a in SEARCH if not a.startswith(("hydra.sweeper.n_trials", "clusterer.n_init"))]
    res = run_py(*args, "hydra.sweeper.n_trials=4", "clusterer.n_init=1", "sweep.select_by=davies_bouldin", store=store)
    assert res.returncode == 0, res.stdout + res.stderr
    study = _study(store)
    assert study.direction.name == "MINIMIZE"
    _, found = runs(store)
    (parent,) = [r for r in found if "sweep.study" in r.data.tags]
    assert parent.data.tags["best.run_id"] == study.best_trial.user_attrs["mlflow_run_id"]
    assert study.best_value == min(t.value for t in study.trials if t.value is not None)
    # optuna-dashboard opens the study with its own storage loader, from the URL the README gives
    app = optuna_dashboard.wsgi(storage_url(store, None))
    (listed,) = _get(app, "/api/studies")["study_summaries"]
    assert listed["study_name"] == study.study_name
    shown = _get(app, f"/api/studies/{listed['study_id']}")
    assert len(shown["trials"]) == 4 and {"mlflow_parent_run_id"} <= {a["key"] for a in shown["user_attrs"]}
    assert shown["objective_names"] == ["davies_bouldin"]  # its axes and columns, not "Objective 0"
    runs_named = {a["value"] for t in shown["trials"] for a in t["user_attrs"] if a["key"] == "mlflow_run_id"}
    assert parent.data.tags["best.run_id"] in runs_named


def test_a_study_made_before_its_objectives_had_names_is_given_them_when_resumed(tmp_path):
    from clustersweep.app.search import open_study

    storage = study_storage(f"sqlite:///{tmp_path / 'optuna.db'}")
    old = optuna.create_study(study_name="s", storage=storage, directions=["maximize", "minimize"])
    old.set_user_attr("identity", "abc")
    assert old.metric_names is None
    resumed = open_study(
        "s", "search", ["modularity", "davies_bouldin"], "abc", ["maximize", "minimize"], storage, None
    )
    assert resumed.metric_names == ["modularity", "davies_bouldin"]
    (listed,) = _get(optuna_dashboard.wsgi(storage), "/api/studies")["study_summaries"]
    shown = _get(optuna_dashboard.wsgi(storage), f"/api/studies/{listed['study_id']}")
    assert shown["objective_names"] == ["modularity", "davies_bouldin"]
    with pytest.raises(ConfigError, match="that study searched another space"):  # refused: its names stay
        open_study("s", "search", ["silhouette", "davies_bouldin"], "other", ["maximize", "minimize"], storage, None)
    assert optuna.load_study(study_name="s", storage=storage).metric_names == ["modularity", "davies_bouldin"]


def _get(app, path: str) -> dict:
    """GET `path` from a WSGI app (optuna-dashboard's), as JSON."""
    env: dict = {}
    setup_testing_defaults(env)
    env.update(PATH_INFO=path, REQUEST_METHOD="GET")
    status: list[str] = []
    body = b"".join(app(env, lambda s, headers, *exc: status.append(s)))
    assert status[0].startswith("200"), (status, body[:300])
    return json.loads(body)


def test_a_label_objective_is_refused_before_any_study_or_run(store):
    res = run_py(*SEARCH, "sweep.select_by=nmi", store=store)
    assert res.returncode == 2 and res.stderr.count("\n") == 1, res.stdout + res.stderr
    assert res.stderr.startswith("error: sweep.select_by='nmi' is not allowed: expected one of silhouette")
    assert not Path(storage_url(store, None).removeprefix("sqlite:///")).exists() and runs(store)[1] == []


def test_a_trial_is_n_replicates_valued_by_their_mean_and_resumes_per_replicate(store, tmp_path):
    """sweep.replicates=3: each trial runs seeds 42, 43, 44 and is told their mean. Interrupted while a trial's
    second replicate fits, the rerun runs that trial again first: its finished replicate is skipped."""
    search = [*(a for a in SEARCH if not a.startswith("hydra.sweeper.n_trials")), "hydra.sweeper.n_trials=2"]
    search += ["sweep.replicates=3"]
    _interrupted_in_second_job(search, store, tmp_path)
    cut = _study(store).trials[0].params

    res = run_py(*search, store=store)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "has 0 completed trial(s), 1 cut off by an interruption; 2 to run" in res.stdout, res.stdout
    study = _study(store)
    done = [t for t in study.trials if t.state.name == "COMPLETE"]
    assert len(done) == 2 and done[0].params == cut  # the cut-off configuration first
    client, found = runs(store)
    by_id = {r.info.run_id: r for r in found}
    for t in done:
        replicates = [by_id[i] for i in t.user_attrs["mlflow_run_ids"]]
        assert [r.data.params["seed"] for r in replicates] == ["42", "43", "44"]
        assert len({r.data.tags["config.group"] for r in replicates}) == 1
        assert t.value == pytest.approx(np.mean([r.data.metrics["silhouette"] for r in replicates]), abs=1e-12)
    (parent,) = [r for r in found if "sweep.study" in r.data.tags]
    assert sum(k.startswith("skipped.") for k in parent.data.tags) == 1  # the cut-off trial's first replicate
    status = sorted(r.info.status for r in found if r is not parent)
    assert status.count("FINISHED") == 6 and status.count("KILLED") == 1, status
    assert parent.data.tags["best.replicates"] == "3"
    assert parent.data.tags["best.run_id"] == study.best_trial.user_attrs["mlflow_run_id"]


def test_a_search_by_stability_is_told_the_agreement_of_its_replicates(store, tmp_path):
    from clustersweep.stages.metrics import stability

    args = [a for a in SEARCH if not a.startswith(("hydra.sweeper.n_trials", "clusterer.n_init"))]
    extra = ["hydra.sweeper.n_trials=2", "clusterer.n_init=1", "sweep.replicates=2", "sweep.select_by=stability"]
    res = run_py(*args, *extra, store=store)
    assert res.returncode == 0, res.stdout + res.stderr
    study = _study(store)
    assert study.study_name.startswith("pca_kmeans-stability-") and study.direction.name == "MAXIMIZE"
    client, found = runs(store)
    for t in study.trials:
        ids = t.user_attrs["mlflow_run_ids"]
        parts = [np.load(client.download_artifacts(i, "test_clusters.npy", str(tmp_path / i))) for i in ids]
        assert t.value == pytest.approx(stability(parts), abs=1e-12)
    (parent,) = [r for r in found if "sweep.study" in r.data.tags]
    assert parent.data.metrics["best_stability"] == pytest.approx(study.best_value, abs=1e-12)


def test_a_search_by_several_objectives_is_a_multi_objective_study_whose_parent_picks_from_the_front(store):
    """`sweep.select_by=[modularity,davies_bouldin]`: a study with a direction per objective, each trial told its
    run's value of each; the parent marks the Pareto front of its children's metrics and picks by the rule."""
    from clustersweep.report import pareto

    args = [a for a in SEARCH if not a.startswith(("hydra.sweeper.n_trials", "clusterer.n_init"))]
    both = ["modularity", "davies_bouldin"]  # on this data, a front of two
    res = run_py(
        *args, "hydra.sweeper.n_trials=5", "clusterer.n_init=1", f"sweep.select_by=[{','.join(both)}]", store=store
    )
    assert res.returncode == 0, res.stdout + res.stderr
    study = _study(store)
    assert [d.name for d in study.directions] == ["MAXIMIZE", "MINIMIZE"] and study.metric_names == both
    app = optuna_dashboard.wsgi(storage_url(store, None))
    (listed,) = _get(app, "/api/studies")["study_summaries"]
    assert _get(app, f"/api/studies/{listed['study_id']}")["objective_names"] == both
    assert re.fullmatch(r"pca_kmeans-modularity,davies_bouldin-[0-9a-f]{8}", study.study_name), study.study_name
    client, found = runs(store)
    (parent,) = [r for r in found if "sweep.study" in r.data.tags]
    children = [r for r in found if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    done = [t for t in study.trials if t.state.name == "COMPLETE"]
    by_id = {c.info.run_id: c for c in children}
    for t in done:  # a trial is told its run's value of each objective
        assert t.values == [by_id[t.user_attrs["mlflow_run_id"]].data.metrics[m] for m in both]
    table = pd.DataFrame(
        [{"run_name": c.info.run_name, **{m: c.data.metrics[m] for m in both}} for c in children]
    ).set_index("run_name")
    directions = ["maximize", "minimize"]
    front = pareto.pareto_front(table, both, directions)
    assert front.sum() == 2 and len(front) == 5
    assert parent.data.tags["sweep.pareto_front"].split(", ")[0] == parent.data.tags["best.run_name"]
    assert sorted(parent.data.tags["sweep.pareto_front"].split(", ")) == sorted(table.index[front])
    assert sorted(t.number for t in study.best_trials) == sorted(
        t.number for t in done if front[by_id[t.user_attrs["mlflow_run_id"]].info.run_name]
    )  # Optuna's Pareto front is the same
    assert parent.data.tags["best.run_name"] == pareto.pick(table, both, directions)
    assert parent.data.tags["best.selected_by"] == parent.data.tags["sweep.select_by"] == "modularity,davies_bouldin"
    assert {"best_modularity", "best_davies_bouldin"} <= set(parent.data.metrics)
    summary = pd.read_csv(
        client.download_artifacts(parent.info.run_id, "summary/summary.csv", str(Path(store[10:]).parent))
    )
    assert sorted(summary.run_name[summary.pareto_front]) == sorted(table.index[front])
    assert "## Pareto front of modularity, davies_bouldin: 2 of 5 configurations" in res.stdout
    assert "**Best by the Pareto front of modularity, davies_bouldin** (label-free): " in res.stdout

    again = run_py(
        *args, "hydra.sweeper.n_trials=5", "clusterer.n_init=1", f"sweep.select_by=[{','.join(both)}]", store=store
    )
    assert again.returncode == 0 and "has 5 completed trial(s); 0 to run" in again.stdout, again.stdout + again.stderr
    (pick,) = [
        t for t in done if by_id[t.user_attrs["mlflow_run_id"]].info.run_name == parent.data.tags["best.run_name"]
    ]
    assert f"its best, trial {pick.number}: modularity" in again.stdout and "its Pareto front: trials" in again.stdout


@pytest.mark.parametrize(
    "select_by, said",
    [
        ("[silhouette,ace]", "error: sweep.select_by=[silhouette,ace] cannot be a search's objective: ace ranks"),
        ("[silhouette,silhouette]", "error: sweep.select_by=['silhouette', 'silhouette'] is not allowed: expected"),
        ("[silhouette,nmi]", "error: sweep.select_by=['silhouette', 'nmi'] is not allowed: expected one of"),
        ("[]", "error: sweep.select_by=[] is not allowed: expected one of silhouette"),
        ("[silhouette,stability]", "error: sweep.select_by=[silhouette,stability] needs sweep.replicates ≥ 2, got 1"),
    ],
)
def test_several_objectives_that_cannot_be_searched_are_one_line_before_any_study_or_run(store, select_by, said):
    res = run_py(*SEARCH, f"sweep.select_by={select_by}", "metrics.other_spaces=[embedding]", store=store)
    assert res.returncode == 2 and res.stderr.count("\n") == 1, res.stdout + res.stderr
    assert res.stderr.startswith(said), res.stderr
    assert not Path(storage_url(store, None).removeprefix("sqlite:///")).exists() and runs(store)[1] == []
