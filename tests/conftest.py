"""Shared fixtures: composed configs shrunk to tiny sizes, a throwaway MLflow store, run.py, an MLflow server."""

from __future__ import annotations

import gc
import io
import ipaddress
import os
import runpy
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import traceback
import warnings
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig, OmegaConf

# Idle BLAS and OpenMP threads sleep at once instead of spinning for work (OpenBLAS spins ~0.1 s after each call).
# The suite runs two workers on two cores, and every fit on compute.threads=2 threads: spinning threads took the
# cores from the other worker's work (a third of the suite's time). It changes no number: the thread counts stay.
# Set before numpy is first imported, here and in every process the tests start.
os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "4")
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

ROOT = Path(__file__).resolve().parents[1]
# The longest any test waits for what it waits on (a process's end, a line of output, a server up, a page drawn).
# CI is a busy shared machine, where what takes seconds on a quiet one can take minutes: a test waits for its
# condition, and this bound only ends a wait that would never end.
WAIT = 600
# Tiny sizes for the synthetic data; a key is set only where the chosen config has it.
TINY = {
    "reducer.k": 8,
    "clusterer.K": 4,
    "clusterer.n_init": 2,
    "metrics.silhouette_sample_size": 300,
    "plots.scatter_points": 200,
}


@pytest.fixture(scope="session", autouse=True)
def started() -> None:
    """What run.py does at start-up, for the tests that compose configs and open runs in this process."""
    from clustersweep.app.cli import start_up

    start_up()


@pytest.fixture(scope="session")
def empty_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An empty MLflow SQLite database, made once: creating the schema takes seconds."""
    from mlflow.tracking import MlflowClient

    db = tmp_path_factory.mktemp("template") / "mlflow.db"
    MlflowClient(f"sqlite:///{db}").search_experiments()
    return db


@pytest.fixture
def store(tmp_path: Path, empty_store: Path) -> str:
    """A fresh SQLite tracking store for one test (a copy of the empty one)."""
    db = tmp_path / "mlruns" / "mlflow.db"
    db.parent.mkdir()
    shutil.copy(empty_store, db)
    return f"sqlite:///{db}"


@pytest.fixture
def make_cfg(store: str):
    """compose() the project's config with TINY + the given overrides, tracking into `store`."""

    def make(*overrides: str, tiny: bool = True) -> DictConfig:
        with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
            dataset = ["dataset=synthetic"] if tiny else []
            cfg = compose("config", overrides=[*dataset, f"tracking.uri={store}", *overrides])
        given = {o.split("=")[0].lstrip("+~") for o in overrides}
        for key, value in (TINY if tiny else {}).items():
            if key not in given and OmegaConf.select(cfg, key) is not None:
                OmegaConf.update(cfg, key, value)
        return cfg

    return make


def _run_py(args: tuple[str, ...], store: str, out: Path | None, env: dict[str, str] | None) -> tuple[list, dict]:
    """The command and environment of `python run.py …` against `store`, Hydra's outputs kept out of the project
    (in `out`, by default beside a SQLite store); `env` adds environment variables."""
    out = out or Path(store[len("sqlite:///") :]).parent.parent / "hydra"
    cmd = [
        sys.executable,
        str(ROOT / "run.py"),
        *args,
        f"tracking.uri={store}",
        f"hydra.run.dir={out}/run",
        f"hydra.sweep.dir={out}/sweep",
    ]
    env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
    env.pop("MLFLOW_TRACKING_URI", None)
    return cmd, env


def run_py(
    *args: str,
    store: str,
    cwd: Path | None = None,
    timeout: float = WAIT,
    out: Path | None = None,
    env: dict[str, str] | None = None,
    process: bool = False,
) -> subprocess.CompletedProcess:
    """`python run.py …` against `store`, to its end, as a CompletedProcess: in this process by default (run.py's
    own `__main__`, with its argv, environment, working folder, stdout, stderr and exit code as a process would
    have them: no interpreter start-up and imports per call), in a subprocess given `process=True` — for what
    crosses the process boundary: launchers' worker processes, output a subprocess of its own prints, a
    process's own end."""
    cmd, env = _run_py(args, store, out, env)
    return python(*cmd[1:], cwd=cwd, timeout=timeout, env=env, process=process)


def python(
    *argv: str,
    cwd: Path | None = None,
    timeout: float = WAIT,
    env: dict[str, str] | None = None,
    process: bool = False,
) -> subprocess.CompletedProcess:
    """`python SCRIPT args…` or `python -m MODULE args…` (in ROOT, with `env` as the whole environment, by default
    this one's), to its end: in this process by default, in a subprocess given `process=True`."""
    cwd, env = cwd or ROOT, dict(os.environ if env is None else env)
    if process:
        cmd = [sys.executable, *argv]
        return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env)
    return in_process(list(argv), env, cwd)


def in_process(argv: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess:
    """Run `python *argv` as `python` would, in this process: its `__main__`, argv, environment, working folder,
    stdout, stderr and exit status. The process-wide state it may change (environment, argv, working folder,
    warnings, the garbage collector's frozen set) is restored after."""
    stdout, stderr = io.StringIO(), io.StringIO()
    saved = dict(os.environ), sys.argv, os.getcwd()
    os.environ.clear()
    os.environ.update(env)
    module = argv[1] if argv[0] == "-m" else None
    sys.argv = [module or argv[0], *argv[2 if module else 1 :]]  # runpy sets argv[0] to a module's file
    os.chdir(cwd)
    code: int = 0
    try:
        with redirect_stdout(stdout), redirect_stderr(stderr), warnings.catch_warnings():
            # warnings are printed as Python prints them, not collected by pytest
            warnings.resetwarnings()
            for category in (DeprecationWarning, PendingDeprecationWarning, ImportWarning, ResourceWarning):
                warnings.simplefilter("ignore", category)
            warnings.showwarning = _print_warning
            try:
                if module:
                    runpy.run_module(module, run_name="__main__", alter_sys=True)
                else:
                    runpy.run_path(argv[0], run_name="__main__")
            except SystemExit as e:
                code = _exit_code(e.code, stderr)
            except Exception:  # an uncaught exception: its traceback and exit 1, as `python` does
                traceback.print_exc(file=stderr)
                code = 1
    finally:
        gc.unfreeze()  # run.py freezes everything it imported: unfrozen, the test process can collect it again
        os.environ.clear()
        os.environ.update(saved[0])
        sys.argv = saved[1]
        os.chdir(saved[2])
    return subprocess.CompletedProcess([sys.executable, *argv], code, stdout.getvalue(), stderr.getvalue())


def _exit_code(code: object, stderr: io.StringIO) -> int:
    """The exit status `sys.exit(code)` gives a process."""
    if code is None or isinstance(code, int):
        return code or 0
    print(code, file=stderr)
    return 1


def _print_warning(message, category, filename, lineno, file=None, line=None) -> None:  # noqa: ANN001
    sys.stderr.write(warnings.formatwarning(message, category, filename, lineno, line))


def start_run_py(
    *args: str, store: str, out: Path | None = None, new_session: bool = False, stderr: int = subprocess.STDOUT
) -> subprocess.Popen:
    """`python run.py …` started in the background, its output (stdout, with stderr unless `stderr` says otherwise)
    to be read line by line. It takes Ctrl-C, SIGTERM and SIGHUP as a terminal's foreground process does, however
    the tests were started: a shell's background job (`pytest &`) has SIGINT ignored, and its children would
    inherit that."""
    cmd, env = _run_py(args, store, out, None)
    return subprocess.Popen(
        cmd,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=stderr,
        text=True,
        env=env,
        start_new_session=new_session,
        preexec_fn=_signals_as_in_a_terminal,
    )


def _signals_as_in_a_terminal() -> None:
    """In the child, before exec: the default handling of the signals that stop a run (Python then raises
    KeyboardInterrupt on SIGINT, and clustersweep installs its own handlers for the others)."""
    stops = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
    for sig in stops:
        signal.signal(sig, signal.SIG_DFL)
    # and not blocked: a child inherits the signal mask of the thread that starts it (a library of an earlier test
    # may block them in this process), and a blocked SIGTERM would wait unseen until the run ended on its own
    signal.pthread_sigmask(signal.SIG_UNBLOCK, stops)


def read_until(proc: subprocess.Popen, done, seen: str = "", timeout: float = WAIT) -> str:
    """Read proc's output until done(text so far) holds or the output ends; returns the text. A process still
    running without done() after `timeout` s is killed (its output then ends)."""
    timer = threading.Timer(timeout, proc.kill)
    timer.start()
    try:
        while not done(seen) and (line := proc.stdout.readline()):
            seen += line
    finally:
        timer.cancel()
    return seen


def wait_for(condition, timeout: float = WAIT, every: float = 0.25):
    """Call condition() until what it returns is true, for at most `timeout` s; returns its last value."""
    deadline = time.monotonic() + timeout
    while not (value := condition()) and time.monotonic() < deadline:
        time.sleep(every)
    return value


def runs(store: str, experiment: str = "synthetic") -> tuple:
    """(client, every run of the experiment, deleted ones too; [] when it does not exist)."""
    from mlflow.entities import ViewType
    from mlflow.tracking import MlflowClient

    client = MlflowClient(store)
    exp = client.get_experiment_by_name(experiment)
    found = [] if exp is None else client.search_runs([exp.experiment_id], max_results=1000, run_view_type=ViewType.ALL)
    return client, found


def free_port() -> int:
    """A loopback TCP port nobody listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def listening_on(port: int) -> set[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    """The local addresses of the TCP sockets listening on `port` (Linux /proc; no traffic sent)."""
    found = set()
    for table, v6 in (("/proc/net/tcp", False), ("/proc/net/tcp6", True)):
        for line in Path(table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            addr, hex_port = local.split(":")
            if state != "0A" or int(hex_port, 16) != port:  # 0A: LISTEN
                continue
            raw = bytes.fromhex(addr)
            words = b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4))  # each 32-bit word is host-order
            found.add(ipaddress.IPv6Address(words) if v6 else ipaddress.IPv4Address(words))
    return found


def loopback_only(port: int) -> bool:
    """Whether something listens on `port` and only on loopback (127.0.0.0/8, ::1, ::ffff:127.x)."""
    found = listening_on(port)
    mapped = [getattr(a, "ipv4_mapped", None) or a for a in found]
    return bool(found) and all(a.is_loopback for a in mapped)


def stop_group(proc: subprocess.Popen, grace: float = 10) -> None:
    """End a service started with start_new_session=True: its whole process group, politely then for sure."""
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, WAIT)):
        try:
            os.killpg(proc.pid, sig)
            proc.wait(timeout=wait)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            continue
    try:
        os.killpg(proc.pid, signal.SIGKILL)  # stragglers in the group after its leader ended
    except ProcessLookupError:
        pass


class MlflowServer:
    """`scripts/serve_tracking.sh` on a free loopback port with its store in `store`; stop() and start() again
    keep the port and the store (a server restart)."""

    def __init__(self, store: Path) -> None:
        self.store, self.port = store, free_port()
        self.log = store.parent / "server.log"
        self.uri = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = WAIT) -> None:
        """Start the server and wait until it answers."""
        script = str(ROOT / "scripts" / "serve_tracking.sh")
        cmd = ["bash", script, "--port", str(self.port), "--store", str(self.store)]
        with self.log.open("ab") as f:
            self.proc = subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT, start_new_session=True)
        if not wait_for(self.answers, timeout):
            self.stop()
            raise RuntimeError(f"mlflow server not up after {timeout} s: {self.log.read_text()[-2000:]}")

    def answers(self) -> bool:
        import requests

        if self.proc.poll() is not None:
            raise RuntimeError(f"mlflow server exited: {self.log.read_text()[-2000:]}")
        try:
            return requests.get(f"{self.uri}/health", timeout=60).ok
        except requests.RequestException:  # not listening yet
            return False

    def stop(self) -> None:
        if self.proc is not None:
            stop_group(self.proc)
            self.proc = None


@pytest.fixture(scope="module")
def chromium():
    """Headless Chromium (tests/browser.py) for a module's tests."""
    from browser import Chromium

    browser = Chromium()
    yield browser
    browser.close()


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory, empty_store: Path):
    """A real `mlflow server` (SQLite backend, proxied artifacts) for the session; tests use their own experiment."""
    server = MlflowServer(tmp_path_factory.mktemp("server") / "mlruns")
    server.store.mkdir()
    shutil.copy(empty_store, server.store / "mlflow.db")  # the schema made once: the server starts sooner
    server.start()
    yield server
    server.stop()
