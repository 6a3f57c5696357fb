"""The errors a user can cause, and how any error reads in one line: what was wrong, the value, what is allowed."""

from __future__ import annotations


class ConfigError(ValueError):
    """A config value that cannot run."""


class DataError(Exception):
    """Bad or missing data: what was wrong, the value, how to fix it."""


# Lines of Hydra's, OmegaConf's and SQLAlchemy's messages that locate a problem for a developer, not a user.
_NOISE = (
    "full_key:",
    "object_type=",
    "reference_type=",
    "See https://hydra.cc",
    "Config search path",
    "(Background on this error at:",
)


def one_line(e: BaseException) -> str:
    """The message and its cause in one line, without Hydra's search-path and key-type details (secrets are the
    caller's to mask: `tracking.redact`)."""
    parts: list[str] = []
    for err in (e, e.__cause__):
        if err is None:
            continue
        text = str(err).split("Config search path")[0]
        lines = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.strip().startswith(_NOISE)]
        msg = " ".join(lines)
        if msg and msg not in " ".join(parts):
            parts.append(msg)
    return " — ".join(parts) or type(e).__name__
