"""Turn every user mistake into one line on stderr and a non-zero exit, never a traceback wall.

Hydra prints its own composition errors over several lines and exits 1; we ask it to raise instead
(HYDRA_FULL_ERROR) and word them here, alongside our own config and data errors. A real bug still
shows its traceback.
"""

from __future__ import annotations

import gc
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from hydra.errors import HydraException
from omegaconf.errors import OmegaConfBaseException

from clustersweep.config import ConfigError
from clustersweep.data import DataError
from clustersweep.tracking import redact

USER_ERRORS = (ConfigError, DataError, HydraException, OmegaConfBaseException)
EXIT_USER_ERROR = 2
_NOISE = ("full_key:", "object_type=", "reference_type=", "See https://hydra.cc", "Config search path")


def one_line(e: BaseException) -> str:
    """The message and its cause in one line, without Hydra's search-path and key-type details or secrets."""
    parts: list[str] = []
    for err in (e, e.__cause__):
        if err is None:
            continue
        text = str(err).split("Config search path")[0]
        lines = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.strip().startswith(_NOISE)]
        msg = " ".join(lines)
        if msg and msg not in " ".join(parts):
            parts.append(msg)
    return redact(" — ".join(parts)) or type(e).__name__


def fail(e: BaseException) -> None:
    print(f"error: {one_line(e)}", file=sys.stderr)
    sys.exit(EXIT_USER_ERROR)


@contextmanager
def user_errors() -> Iterator[None]:
    """Inside a Hydra job: a user error exits at once with its line (SystemExit passes through Hydra)."""
    try:
        yield
    except USER_ERRORS as e:
        fail(e)


def guarded(main: Callable[[], object]) -> None:
    """Run a Hydra main; composition errors (unknown key, unknown choice, bad override) become one line.

    After a sweep, exit 1 when any job failed; on Ctrl-C or a crash, close the sweep's parent run first.
    """
    from clustersweep import sweep

    os.environ["HYDRA_FULL_ERROR"] = "1"
    # The imports' million objects live as long as the process: moved out of the garbage collector's reach, they
    # no longer make each full collection take a tenth of a second.
    gc.freeze()
    try:
        main()
    except USER_ERRORS as e:
        if sweep.is_open():
            sweep.abort("FAILED")
            e = ConfigError(
                f"{one_line(e)} — in a sweep, a key that only some choices have cannot be swept across "
                "them: run one sweep per choice (README, Sweeps)"
            )
        fail(e)
    except KeyboardInterrupt:
        sweep.abort("KILLED")
        print("interrupted", file=sys.stderr)
        sys.exit(130)
    except BaseException:
        sweep.abort("FAILED")
        raise
    finally:
        # All is logged: spare the exit its last full collection over everything made since (~1 s); the OS frees it.
        gc.freeze()
    if sweep.last_outcome is not None and not sweep.last_outcome.ok:
        sys.exit(1)
