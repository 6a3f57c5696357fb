"""The README is for users: short, no run id a reader cannot open, and every command in it runs as written — each
`python run.py` line composes and validates at full size, and the quick ones run here on tiny data."""

from __future__ import annotations

import re
import shlex
import subprocess

import pytest
from conftest import ROOT, python, run_py, runs
from hydra import compose, initialize_config_dir
from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import OmegaConf

from clustersweep.app.sweep import app_config
from clustersweep.config.validate import validate

README = (ROOT / "README.md").read_text()
DOCS = {p.name: p.read_text() for p in (ROOT / "docs").glob("*.md")}
# Appended to a README command to run it on tiny data (later overrides win); its runs land in the README's
# experiment, so that the README's compare.py commands run as written.
TINY = [
    "dataset=synthetic",
    "dataset.n_train=300",
    "dataset.n_test=100",
    "tracking.experiment=fashion-mnist",
    "clusterer.n_init=2",
    "plots.enabled=false",
]


def commands() -> list[list[str]]:
    """Every command of the README's bash blocks, as argv (comments dropped, `a && b` split)."""
    found = []
    for block in re.findall(r"```bash\n(.*?)```", README, re.S):
        for line in block.splitlines():
            for part in re.sub(r"\s+#.*$", "", line).split("&&"):
                if part.strip():
                    found.append(shlex.split(part))
    return found


def run_py_commands() -> list[list[str]]:
    return [c[2:] for c in commands() if c[:2] == ["python", "run.py"]]


def test_the_readme_is_short_and_speaks_of_what_a_reader_can_open():
    assert len(README.encode()) <= 15_000
    for name, text in {"README.md": README, **DOCS}.items():
        assert not re.search(r"\b[0-9a-f]{32}\b", text), f"{name} quotes a run id"
        assert not re.search(r"\bsessions?\b", text, re.I), f"{name} speaks of sessions"
    assert {"results.md", "benchmarks.md", "reference.md", "cluster.md"} <= set(DOCS)
    for link in re.findall(r"\]\((docs/[^)]+)\)", README):
        path, _, anchor = link.partition("#")
        assert (ROOT / path).is_file(), link
        headings = re.findall(r"^#+ (.+)$", (ROOT / path).read_text(), re.M)
        slugs = {re.sub(r"[^\w\- ]", "", h.lower()).replace(" ", "-") for h in headings}  # GitHub's anchors
        assert not anchor or anchor in slugs, link


@pytest.mark.parametrize("doc", ["README.md", *sorted(DOCS)])
def test_every_shell_block_parses_in_bash(doc):
    text = README if doc == "README.md" else DOCS[doc]
    for block in re.findall(r"```bash\n(.*?)```", text, re.S):
        res = subprocess.run(["bash", "-n"], input=block, capture_output=True, text=True)
        assert res.returncode == 0, f"{doc}: {res.stderr}\n{block}"


@pytest.mark.parametrize("args", run_py_commands(), ids=" ".join)
def test_every_run_py_command_of_the_readme_composes_and_validates(args):
    """At full size, without running: the grid's first and last job, a search's config and sweeper."""
    multirun = "-m" in args
    overrides = [a for a in args if a != "-m"]
    parser = OverridesParser.create()
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        if multirun and not any(o.startswith("search=") for o in overrides):
            jobs = [j for batch in BasicSweeper.split_arguments(parser.parse_overrides(overrides), None) for j in batch]
            jobs = [jobs[0], jobs[-1]]
        else:
            jobs = [overrides]
        for job in jobs:
            cfg = compose("config", overrides=job, return_hydra_config=multirun)
            if multirun:
                assert cfg.task == "cluster"
                if str(OmegaConf.select(cfg, "hydra.sweeper._target_")).endswith(".StudySweeper"):
                    assert cfg.hydra.sweeper.params and cfg.hydra.sweeper.n_trials > 0
                cfg = app_config(cfg)
            validate(cfg)


# README commands that other tests run in the same form, on tiny data: each names the test.
ELSEWHERE = {
    "hydra/launcher=joblib": "test_sweep.py::test_the_launcher_changes_no_metric",
    "search=pca_kmeans": "test_search.py::test_an_interrupted_search_resumes_with_only_the_missing_trials",
    "search=patches_umap_gmm": "test_search.py::test_a_search_sets_its_objective",
    "reducer=patches_umap": "test_methods.py::test_a_umap_chain_runs_is_cached_and_skips_reconstruction",
    "reducer=pca_umap": "test_methods.py::test_a_umap_chain_runs_is_cached_and_skips_reconstruction",
    "+experiment=seed_notebook": "test_notebook.py::test_seed_notebook_experiment_end_to_end_on_synthetic",
    "scripts/reproduce.py": "test_run.py::test_reproduce_round_trip_and_a_run_from_another_machine",
    "--leaderboard": "test_methods.py::test_leaderboard_lists_each_familys_best_by_the_label_free_metric",
    "mlflow ui": "test_ui.py::test_the_ui_opens_the_runs_table_shows_the_subsample_and_the_registered_model",
    "dataset=arrays": "test_own_data.py::test_a_labelled_matrix_runs_and_sweeps",
    "dataset=image_folder": "test_own_data.py::test_a_folder_of_images_runs_and_sweeps_with_colour_plots",
    "dataset=idx": "test_data.py::test_the_idx_loader_on_the_fashion_folder_is_fashion_mnist",
    "register_best": "test_model.py::test_a_sweep_registers_its_best_and_predict_assigns_new_data",
    "clustersweep.predict": "test_model.py::test_a_sweep_registers_its_best_and_predict_assigns_new_data",
}


def elsewhere(command: list[str]) -> str | None:
    line = " ".join(command)
    return next((test for key, test in ELSEWHERE.items() if key in line), None)


def test_the_quick_readme_commands_run_on_tiny_data(store, tmp_path):
    """The 28-run sweep and its rerun (28 skipped) through run.py; each single run in this process; compare.py.
    The others run in the tests ELSEWHERE names."""
    from clustersweep.tasks import cluster, eda

    cmds = commands()
    for test in filter(None, map(elsewhere, cmds)):
        file, name = test.split("::")
        assert re.search(rf"^def {name.split('[')[0]}\(", (ROOT / "tests" / file).read_text(), re.M), test
    readme_sweep = next(c[2:] for c in cmds if c[:3] == ["python", "run.py", "-m"] and "reducer=pca,svd" in c)
    res = run_py(*readme_sweep, *TINY, store=store)
    assert res.returncode == 0 and "28 finished, 0 failed" in res.stdout, res.stdout[-2000:] + res.stderr
    again = run_py(*readme_sweep, *TINY, store=store)
    counts = "0 finished, 0 failed; 28 skipped (already finished)"
    assert again.returncode == 0 and f"sweep finished: {counts}\n" in again.stdout, again.stdout[-2000:]
    assert f"\n{counts}.\n" in again.stdout  # the parent's report counts as the last line does
    singles = [c[2:] for c in cmds if c[:2] == ["python", "run.py"] and "-m" not in c and not elsewhere(c)]
    assert [] in singles  # the quick start's `python run.py`
    for args in singles:
        with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
            cfg = compose("config", overrides=[*args, *TINY, f"tracking.uri={store}"])
        (eda.run if cfg.task == "eda" else cluster.run)(cfg)
    _, found = runs(store, "fashion-mnist")
    assert len(found) == 2 + 28 + len(singles) and all(r.info.status == "FINISHED" for r in found)  # 2 parents
    for c in cmds:
        if c[:2] == ["python", "scripts/compare.py"] and not elsewhere(c):
            extra = ["--tracking-uri", store, "--out", str(tmp_path / "report")]
            res = python(*c[1:], *extra)
            assert res.returncode == 0, f"{' '.join(c)}\n{res.stdout[-2000:]}\n{res.stderr}"
