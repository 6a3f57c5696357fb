"""Soak: many writers logging runs into one fresh tracking store at once, then a count of what the store kept.

    python scripts/soak.py --writers 8 --minutes 3 --store sqlite     # a new SQLite file, as `tracking=local` uses
    python scripts/soak.py --writers 8 --minutes 3 --store postgres   # a throwaway PostgreSQL + `mlflow server`

Each writer is its own process: it composes the project's config with Hydra and runs the clustering task (tiny
synthetic 8×8 images, no plots, cache off) again and again until the time is up, each attempt with a seed no other
attempt has — the run's identity, checked in the store afterwards. All writers start together once every one has
imported. Prints runs attempted, finished (FINISHED in the store, once), failed (the writer got an error), lost
(attempted, yet not in the store) and the p50/p95 time of a run (prepare, fit, log: on tiny data, mostly the
store's). Exits 1 if a run was lost or a writer's word and the store disagree.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import queue
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import local_postgres
from local_postgres import Failed

ROOT = Path(__file__).resolve().parents[1]
EXPERIMENT = "soak"
RUN = [
    "dataset=synthetic",
    "dataset.image_size=[8,8]",  # 64 pixels: a run's fits take milliseconds, its logging most of its time
    "reducer.k=4",
    "clusterer.K=4",
    "clusterer.n_init=2",
    "metrics.silhouette_sample_size=200",
    "plots.enabled=false",
    "cache.enabled=false",
    f"tracking.experiment={EXPERIMENT}",
]


def writer(index: int, uri: str, seconds: float, folder: Path, ready, go) -> None:
    """Log runs one after another for `seconds` after `go`; each attempt's seed, outcome and time to a file."""
    out = os.open(folder / f"writer{index}.out", os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    os.dup2(out, 1)  # the runs' reports and logs
    os.dup2(out, 2)
    from hydra import compose, initialize_config_dir

    from clustersweep.app.cli import start_up
    from clustersweep.errors import one_line
    from clustersweep.tasks import cluster

    start_up()
    tracking = ["tracking=server"] if uri.startswith("http") else []
    with (
        (folder / f"writer{index}.jsonl").open("a") as log,
        initialize_config_dir(str(ROOT / "conf"), version_base="1.3"),
    ):
        ready.put(index)
        go.wait()
        end, n = time.monotonic() + seconds, 0
        while time.monotonic() < end:
            seed, n = 1 + index * 1_000_000 + n, n + 1
            log.write(json.dumps({"seed": seed}) + "\n")
            log.flush()
            cfg = compose("config", overrides=[*RUN, *tracking, f"tracking.uri={uri}", f"seed={seed}"])
            started = time.perf_counter()
            try:
                cluster.run(cfg)
                outcome = {"ok": True}
            except Exception as e:  # noqa: BLE001 - counted and shown, and the writer goes on
                outcome = {"ok": False, "error": one_line(e)[:300]}
            log.write(json.dumps({"seed": seed, "seconds": time.perf_counter() - started, **outcome}) + "\n")
            log.flush()


def serve(folder: Path) -> tuple[str, subprocess.Popen]:
    """A throwaway PostgreSQL in folder/postgres and `scripts/serve_tracking.sh` on it: (its URL, its process)."""
    backend = local_postgres.start(folder / "postgres", None)
    port = local_postgres.free_port()
    env = {**os.environ, "MLFLOW_BACKEND_STORE_URI": backend}
    script, log = ROOT / "scripts" / "serve_tracking.sh", (folder / "server.log").open("ab")
    cmd = ["bash", str(script), "--port", str(port), "--store", str(folder / "server")]
    proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    import requests

    for _ in range(600):
        if proc.poll() is not None:
            raise Failed(f"mlflow server exited: see {folder / 'server.log'}")
        try:
            if requests.get(f"{url}/health", timeout=1).ok:
                return url, proc
        except requests.RequestException:
            pass
        time.sleep(0.5)
    raise Failed(f"mlflow server not up after 5 minutes: see {folder / 'server.log'}")


def stored(uri: str) -> dict[int, list[str]]:
    """Every run of the soak's experiment: {seed: [status, …]}."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(uri)
    exp = client.get_experiment_by_name(EXPERIMENT)
    found: dict[int, list[str]] = {}
    token = None
    while exp is not None:
        page = client.search_runs([exp.experiment_id], max_results=1000, page_token=token)
        for run in page:
            found.setdefault(int(run.data.params["seed"]), []).append(run.info.status)
        token = page.token
        if not token:
            break
    return found


def soak(writers: int, seconds: float, uri: str, folder: Path) -> int:
    """Run the writers, then count; returns the exit code."""
    ctx = mp.get_context("spawn")  # each writer a fresh interpreter, as separate users' processes are
    ready, go = ctx.Queue(), ctx.Event()
    procs = [ctx.Process(target=writer, args=(i, uri, seconds, folder, ready, go)) for i in range(writers)]
    for p in procs:
        p.start()
    waiting = writers
    while waiting:
        try:
            ready.get(timeout=1)
            waiting -= 1
        except queue.Empty:
            if not all(p.is_alive() for p in procs):
                raise Failed(f"a writer died before it started: see {folder}/writer*.out") from None
    go.set()
    for p in procs:
        p.join(timeout=seconds + 600)
        if p.is_alive():
            p.kill()
    records = [json.loads(line) for f in sorted(folder.glob("writer*.jsonl")) for line in f.read_text().splitlines()]
    attempted = {r["seed"] for r in records}
    ended = {r["seed"]: r for r in records if "ok" in r}
    store = stored(uri)
    finished = {s for s in attempted if store.get(s) == ["FINISHED"]}
    failed = {s for s, r in ended.items() if not r["ok"]}
    lost = {s for s in attempted if s not in store}
    wrong = {s for s, r in ended.items() if r["ok"] and s not in finished}  # said finished, yet not once in the store
    wrong |= {s for s in attempted if len(store.get(s, [])) > 1}
    times = sorted(r["seconds"] for r in ended.values())
    p50, p95 = (times[min(len(times) - 1, int(q * len(times)))] if times else float("nan") for q in (0.5, 0.95))
    print(f"attempted {len(attempted)}, finished {len(finished)}, failed {len(failed)}, lost {len(lost)}")
    print(f"time of a run: p50 {p50:.2f} s, p95 {p95:.2f} s; {len(attempted) / seconds:.2f} runs/s")
    for error, count in Counter(ended[s]["error"] for s in failed).most_common(5):
        print(f"  failed ×{count}: {error}")
    if lost:
        print(f"  lost: {len(lost & failed)} failed to their writer, {len(lost - failed)} silently")
    if wrong:
        print(f"  {len(wrong)} runs the store holds otherwise than their writer said: seeds {sorted(wrong)[:10]}")
    unfinished = len(attempted) - len(ended)
    if unfinished:
        print(f"  {unfinished} attempts never ended (a writer died or hung): see {folder}/writer*.out")
    return 1 if lost or wrong else 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--writers", type=int, default=8, help="processes writing at once (8)")
    parser.add_argument("--minutes", type=float, default=3, help="how long each writes (3)")
    parser.add_argument("--store", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument(
        "--keep", action="store_true", help="keep the store and the writers' logs (kept anyway on a loss)"
    )
    args = parser.parse_args()
    if args.writers < 1 or args.minutes <= 0:
        parser.error("--writers must be at least 1 and --minutes above 0")
    folder = Path(tempfile.mkdtemp(prefix="clustersweep-soak-"))
    folder.chmod(0o711)  # as root, PostgreSQL runs as the `postgres` user, who must reach folder/postgres
    server, code = None, None
    try:
        if args.store == "postgres":
            uri, server = serve(folder)
        else:
            uri = f"sqlite:///{folder / 'mlruns' / 'mlflow.db'}"  # not made yet: the writers race to make it
        print(f"soak: {args.store} store, {args.writers} writers for {args.minutes:g} min ({folder})", flush=True)
        code = soak(args.writers, args.minutes * 60, uri, folder)
    except Failed as e:
        code = f"error: {e}"
    finally:
        if server is not None:
            os.killpg(server.pid, signal.SIGTERM)
            try:
                server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(server.pid, signal.SIGKILL)
        if args.store == "postgres":
            local_postgres.stop(folder / "postgres")
        if args.keep or code:
            print(f"soak: the store and the writers' logs are kept in {folder}", file=sys.stderr)
        else:
            shutil.rmtree(folder, ignore_errors=True)
    sys.exit(code)


if __name__ == "__main__":
    main()
