"""Benchmark: the used-by sweep through clustersweep vs a bare scikit-learn loop, side by side in one invocation.

    python scripts/bench_sweep.py            # full data: 28 runs each way (takes several minutes)
    python scripts/bench_sweep.py --quick    # a 5,000 / 1,000 stratified subsample

The framework side is `python run.py -m reducer=pca,svd reducer.k=50,100 clusterer=kmeans clusterer.K=range(6,13)`
in a subprocess, into a fresh tracking store and a cold cache. The bare side does the same fits and metrics the
way a notebook would: each reducer refitted for every run, sklearn's silhouette_score (and Davies–Bouldin,
Calinski–Harabasz) in the common PCA-50 space computed once, no logging, plots or cache.
Prints both wall times, their ratio, the median per-run framework overhead (compose + MLflow + plots: a run's
wall time less its compute stages) and the framework's peak RSS, each against its target.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from _bench import ROOT, timed_run_py
from hydra.utils import instantiate
from mlflow.tracking import MlflowClient
from omegaconf import OmegaConf
from sklearn.decomposition import PCA
from sklearn.metrics import (
    adjusted_rand_score,
    calinski_harabasz_score,
    davies_bouldin_score,
    normalized_mutual_info_score,
    silhouette_score,
)

from clustersweep.data.dataset import load
from clustersweep.stages.metrics import acc_hungarian, purity

SWEEP = ["reducer=pca,svd", "reducer.k=50,100", "clusterer=kmeans", "clusterer.K=range(6,13)"]
COMPUTE = ("time_reduce_s", "time_cluster_s", "time_assign_s", "time_metrics_s")
TARGETS = {"ratio": 0.6, "overhead_s": 0.5, "peak_rss_gib": 2.0}


def framework(extra: list[str], tmp: Path) -> tuple[float, float, list[float]]:
    """Wall time, peak RSS (GiB) and per-run overheads of the sweep through run.py."""
    wall, store = timed_run_py(["-m", *SWEEP, *extra, "sweep.rerun_finished=true"], tmp)
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 2**20  # KiB → GiB (Linux)
    client = MlflowClient(store)
    exp = client.get_experiment_by_name("fashion-mnist")
    runs = sorted(
        (r for r in client.search_runs([exp.experiment_id]) if "mlflow.parentRunId" in r.data.tags),
        key=lambda r: r.info.start_time,
    )
    overheads = []
    for this, nxt in zip(runs, [*runs[1:], None], strict=True):
        span_ms = (nxt.info.start_time if nxt else this.info.end_time) - this.info.start_time
        overheads.append(span_ms / 1000 - sum(this.data.metrics.get(k, 0.0) for k in COMPUTE))
    return wall, peak, overheads


def bare(n_train: int | None, n_test: int | None) -> float:
    """The same 28 fits and metrics as a notebook loop would do them."""
    ds = OmegaConf.load(ROOT / "conf" / "dataset" / "fashion_mnist.yaml")
    ds.n_train, ds.n_test = n_train, n_test
    start = time.perf_counter()
    d = load(ds, 42)
    reducers = {
        "pca": lambda k: {
            "_target_": "sklearn.decomposition.PCA",
            "n_components": k,
            "whiten": True,
            "svd_solver": "randomized",
            "random_state": 42,
        },
        "svd": lambda k: {
            "_target_": "sklearn.decomposition.TruncatedSVD",
            "n_components": k,
            "algorithm": "randomized",
            "n_iter": 5,
            "random_state": 42,
        },
    }
    # The label-free metrics' common space (metrics.space=common): a notebook too would compute it once.
    common = PCA(50, svd_solver="covariance_eigh").fit_transform(d.X_train)
    for make in reducers.values():
        for k in (50, 100):
            for K in range(6, 13):
                red = instantiate(make(k))
                Z_train = red.fit_transform(d.X_train)
                Z_test = red.transform(d.X_test)
                km = instantiate(
                    {
                        "_target_": "sklearn.cluster.KMeans",
                        "n_clusters": K,
                        "n_init": 10,
                        "init": "k-means++",
                        "random_state": 42,
                    }
                )
                train_c = km.fit_predict(Z_train)
                test_c = km.predict(Z_test)
                adjusted_rand_score(d.y_test, test_c)
                normalized_mutual_info_score(d.y_test, test_c)
                purity(d.y_train, train_c, d.y_test, test_c)
                acc_hungarian(d.y_test, test_c)
                silhouette_score(common, train_c, sample_size=min(10_000, len(Z_train)), random_state=42)
                davies_bouldin_score(common, train_c)
                calinski_harabasz_score(common, train_c)
    return time.perf_counter() - start


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="5,000 train / 1,000 test images instead of all")
    args = p.parse_args()
    sizes = (5000, 1000) if args.quick else (None, None)
    extra = [f"dataset.n_train={sizes[0]}", f"dataset.n_test={sizes[1]}"] if args.quick else []
    with tempfile.TemporaryDirectory() as tmp:
        print("framework sweep …", flush=True)
        wall_fw, peak, overheads = framework(extra, Path(tmp))
    print("bare scikit-learn loop …", flush=True)
    wall_bare = bare(*sizes)
    figures = {"ratio": wall_fw / wall_bare, "overhead_s": statistics.median(overheads), "peak_rss_gib": peak}
    print(f"\nframework {wall_fw:.1f} s, bare loop {wall_bare:.1f} s, 28 runs each")
    for key, value in figures.items():
        verdict = "ok" if value <= TARGETS[key] else "MISSED"
        print(f"{key:<14}{value:8.3f}   target ≤ {TARGETS[key]}   {verdict}")
    print(
        f"overhead per run: min {min(overheads):.3f} s, max {max(overheads):.3f} s "
        f"(median of {len(overheads)}; {np.mean(overheads):.3f} s mean)"
    )
    return 0 if all(figures[k] <= TARGETS[k] for k in TARGETS) else 1


if __name__ == "__main__":
    sys.exit(main())
