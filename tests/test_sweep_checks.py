"""A sweep refuses up front what its runs would refuse; a parent that counted no job is no success; the advice of
an error is a command that works; the lines a user reads say what the sweep selects by."""

from __future__ import annotations

import re
import runpy
import shlex
from pathlib import Path

import pytest
from conftest import ROOT, run_py, runs

from clustersweep.app.cli import JobsFailed
from clustersweep.data import dataset

# A few seconds a job on the synthetic data: no plots, no model.
QUICK = [
    "dataset=synthetic",
    "reducer.k=4",
    "metrics.silhouette_sample_size=200",
    "plots.enabled=false",
    "model.log=false",
]


def one_line(res) -> str:  # noqa: ANN001 - a CompletedProcess
    lines = res.stderr.strip().splitlines()
    assert res.returncode == 2 and len(lines) == 1, res.stdout + res.stderr
    return lines[0]


def test_a_sweep_refuses_the_value_its_runs_refuse_before_its_parent_opens(store):
    single = one_line(run_py("dataset=digits", store=store))
    assert "reducer.k=100 is not allowed: expected an integer in 1..64 (the number of features)" in single
    said = one_line(run_py("-m", "dataset=digits", "clusterer.K=3,4", store=store))
    assert said.startswith("error: reducer.k=100 is not allowed: expected an integer in 1..64"), said
    assert "in the sweep's job 1/2 (dataset=digits clusterer.K=3); no run was made" in said
    # a limit only the data tell (the train rows a K needs), in the one job that exceeds it
    said = one_line(run_py("-m", *QUICK, "clusterer.K=3,700", store=store))
    assert "clusterer.K=700 is not allowed: expected an integer in 2..600" in said and "job 2/2" in said
    assert runs(store, "digits")[1] == [] and runs(store)[1] == []  # no parent, not even a deleted one


def test_a_search_refuses_a_fixed_value_its_trials_would_refuse_before_its_study(store):
    res = run_py("-m", "search=umap_gmm", "dataset=digits", "reducer.pca_k=100", store=store)
    said = one_line(res)
    assert "reducer.pca_k=100 is not allowed: expected an integer in 1..64" in said
    assert "in every trial of the search (search=umap_gmm dataset=digits reducer.pca_k=100)" in said
    assert "search: study" not in res.stdout and runs(store, "digits")[1] == []
    assert not (Path(store[len("sqlite:///") :]).parent / "optuna.db").exists()


def test_a_checked_sweep_reads_its_data_once_and_its_progress_shows_what_it_selects_by(store):
    dataset._prepared.cache_clear()
    res = run_py("-m", *QUICK, "clusterer.K=3,4", "sweep.select_by=[davies_bouldin,silhouette]", store=store)
    assert res.returncode == 0, res.stdout + res.stderr
    assert dataset._prepared.cache_info().misses == 1  # the parent's check and both jobs: one read
    _, found = runs(store)
    for child in (r for r in found if "mlflow.parentRunId" in r.data.tags):
        m = child.data.metrics
        said = f"{child.info.run_name} … finished in "
        (line,) = [ln for ln in res.stdout.splitlines() if said in ln]
        assert f", davies_bouldin {m['davies_bouldin']:.3f}, silhouette {m['silhouette']:.3f}" in line, line
        assert "nmi" not in line and "ari" not in line  # no label metric


def test_progress_of_a_sweep_selecting_by_a_criterion_of_the_parent_says_so(store):
    res = run_py("-m", *QUICK, "clusterer.K=3", "sweep.replicates=2", "sweep.select_by=stability", store=store)
    assert res.returncode == 0, res.stdout + res.stderr
    lines = [ln for ln in res.stdout.splitlines() if " … finished in " in ln]
    assert len(lines) == 2 and all("s, stability: at the sweep's end, over the replicates" in ln for ln in lines)
    assert not any("nmi" in ln for ln in lines)


def test_every_leaderboard_row_has_its_command_the_default_configuration_too(make_cfg, store):
    from mlflow.tracking import MlflowClient

    from clustersweep.report import tables
    from clustersweep.tasks.cluster import run

    run(make_cfg("plots.enabled=false", "model.log=false"))  # no overrides: the default configuration's tag
    args = [*QUICK, "clusterer=gmm", "clusterer.K=3"]
    assert run_py(*args, store=store).returncode == 0
    board = tables.leaderboard(tables.experiment_table(MlflowClient(store), "synthetic"), "silhouette")
    commands = dict(zip(board["reducer → clusterer"], board["recreate with"], strict=True))
    assert commands == {
        "pca → kmeans": "`python run.py`",
        "pca → gmm": f"`python run.py {' '.join(args)} tracking.uri={store}`",
    }


def _sweep(store: str, tmp_path: Path, task, *overrides: str):  # noqa: ANN001 - a Hydra task function
    """A multirun as Hydra's own test runner makes one (`hydra.test_utils`): no hydra.mode is set, so the jobs
    do not run in Hydra's MULTIRUN mode."""
    from hydra.test_utils.test_utils import SweepTaskFunction

    sweep = SweepTaskFunction()
    sweep.calling_file, sweep.calling_module = str(ROOT / "run.py"), None
    sweep.config_path, sweep.config_name, sweep.task_function = "conf", "config", task
    sweep.overrides, sweep.temp_dir = [*overrides, f"tracking.uri={store}"], str(tmp_path / "sweep")
    with sweep:
        return sweep.returns


def test_jobs_run_by_hydras_test_runner_are_the_sweeps_and_counted(store, tmp_path, capsys):
    main = runpy.run_path(str(ROOT / "run.py"))["main"].__wrapped__  # run.py's task function, without hydra.main
    _sweep(store, tmp_path, main, *QUICK, "clusterer.K=3,4")
    assert "sweep finished: 2 finished, 0 failed" in capsys.readouterr().out
    _, found = runs(store)
    parents = [r for r in found if "sweep.overrides" in r.data.tags]
    children = [r for r in found if r.data.tags.get("mlflow.parentRunId") == parents[0].info.run_id]
    assert len(found) == 3 and len(children) == 2 and parents[0].info.status == "FINISHED"


def test_a_parent_that_counted_no_job_of_those_launched_fails(store, tmp_path, capsys):
    with pytest.raises(JobsFailed):  # run.py: exit 1
        _sweep(store, tmp_path, lambda cfg: None, *QUICK, "clusterer.K=3,4")  # jobs that never report
    out = capsys.readouterr().out
    assert "sweep failed: 0 finished, 0 failed: no job reported to this parent run, though its jobs were" in out
    (parent,) = runs(store)[1]
    assert parent.info.status == "FAILED" and "no job reported" in parent.data.tags["sweep.outcome"]


def _commands(line: str) -> list[list[str]]:
    """The `python run.py …` commands an error line advises, as argument lists for run.py."""
    found = [shlex.split(c) for c in re.findall(r"`(python run\.py [^`]*)`", line)]
    assert found and all(c[:2] == ["python", "run.py"] for c in found), line
    return [c[2:] for c in found]


def _runs_ok(commands: list[list[str]], store: str) -> None:
    for args in commands:
        res = run_py(*args, store=store)
        assert res.returncode == 0, f"{args}\n{res.stdout}{res.stderr}"


@pytest.mark.parametrize("given", ["clusterer.covariance_type=diag", "clusterer.covariance_type=choice(diag)"])
def test_a_key_of_one_swept_choice_is_advised_one_sweep_per_choice_that_works(store, given):
    said = one_line(run_py("-m", "clusterer=kmeans,gmm", given, *QUICK, "clusterer.K=3", store=store))
    assert "and clusterer=kmeans has no key 'covariance_type': run one sweep per choice: " in said
    assert "README" not in said
    commands = _commands(said)
    assert sorted(c[:2] for c in commands) == [["-m", "clusterer=gmm"], ["-m", "clusterer=kmeans"]]
    assert all((given in c) == ("clusterer=gmm" in c) for c in commands)  # the key goes with the choice having it
    _runs_ok(commands, store)
    _, found = runs(store)
    assert sorted(r.info.run_name.split("-")[2] for r in found if "mlflow.parentRunId" in r.data.tags) == [
        "gmm",
        "kmeans",
    ]


def test_a_key_of_the_swept_choices_but_not_the_default_is_advised_a_sweep_of_one_that_works(store):
    said = one_line(run_py("-m", "clusterer=dbscan,hdbscan", "clusterer.min_samples=5", *QUICK, store=store))
    assert "the default clusterer, which has no key 'min_samples'" in said
    (command,) = _commands(said)
    assert "clusterer.min_samples=choice(5)" in command and "clusterer=dbscan,hdbscan" in command
    _runs_ok([command], store)


def test_a_key_of_another_choice_in_a_run_is_advised_the_choice_that_has_it(store):
    said = one_line(run_py("clusterer.covariance_type=diag", *QUICK, store=store))
    assert "the chosen clusterer has no key 'covariance_type'; clusterer=gmm has it:" in said
    (command,) = _commands(said)
    assert command[:2] == ["clusterer=gmm", "clusterer.covariance_type=diag"]
    _runs_ok([command], store)
    typo = one_line(run_py("reducer.kk=5", *QUICK, store=store))
    assert "nor has any other reducer choice (a typo?)" in typo
    (shown,) = _commands(typo)
    assert shown[:2] == ["--cfg", "job"] and "reducer.kk=5" not in shown
    assert run_py(*shown, store=store).returncode == 0


def test_a_swept_setting_of_the_whole_sweep_is_advised_one_sweep_per_value_that_works(store):
    said = one_line(run_py("-m", "sweep.select_by=silhouette,davies_bouldin", *QUICK, "clusterer.K=3", store=store))
    assert "sweep.select_by is one value for the whole sweep (its parent run); run one sweep per value: " in said
    commands = _commands(said)
    assert sorted(c[1] for c in commands) == ["sweep.select_by=davies_bouldin", "sweep.select_by=silhouette"]
    _runs_ok(commands, store)
