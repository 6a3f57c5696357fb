"""The command line's start-up and its way with errors: every user mistake becomes one line on stderr and a
non-zero exit, never a traceback wall.

Hydra prints its own composition errors over several lines and exits 1; we ask it to raise instead
(HYDRA_FULL_ERROR) and word them here, alongside our own config and data errors. A real bug still shows its
traceback.
"""

from __future__ import annotations

import gc
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from hydra.errors import HydraException
from omegaconf.errors import OmegaConfBaseException

from clustersweep.app import advice
from clustersweep.config import resolvers
from clustersweep.errors import ConfigError, DataError, one_line
from clustersweep.tracking import store
from clustersweep.tracking.redact import redact, redact_logs

USER_ERRORS = (ConfigError, DataError, HydraException, OmegaConfBaseException)
EXIT_USER_ERROR = 2
EXIT_JOBS_FAILED = 1


class JobsFailed(Exception):
    """A sweep ended with failed jobs; its outcome line is already printed."""


def start_up() -> None:
    """What every entry point needs before it composes a config or opens a run: the `cs.*` resolvers, MLflow's
    settings, and secrets masked in every log line."""
    resolvers.register()
    store.configure()
    redact_logs()


def fail(e: BaseException) -> None:
    print(f"error: {redact(one_line(e))}", file=sys.stderr)
    sys.exit(EXIT_USER_ERROR)


@contextmanager
def user_errors() -> Iterator[None]:
    """Inside a Hydra job: a user error exits at once with its line (SystemExit passes through Hydra)."""
    try:
        yield
    except USER_ERRORS as e:
        fail(e)


def guarded(main: Callable[[], object]) -> None:
    """Start up, then run a Hydra main: a user error (an unknown key or choice, a bad value or override, missing
    data) is one line and exit 2, a sweep with failed jobs exit 1, Ctrl-C exit 130. A sweep's parent run is
    closed by its sweeper whichever way the sweep ends."""
    os.environ["HYDRA_FULL_ERROR"] = "1"
    start_up()
    # The imports' million objects live as long as the process: moved out of the garbage collector's reach, they
    # no longer make each full collection take a tenth of a second.
    gc.freeze()
    try:
        main()
    except USER_ERRORS as e:
        fail(advice.reworded(e, sys.argv[1:]))
    except JobsFailed:
        sys.exit(EXIT_JOBS_FAILED)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)
    finally:
        # All is logged: spare the exit its last full collection over everything made since (~1 s); the OS frees it.
        gc.freeze()
