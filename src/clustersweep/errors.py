"""The errors a user can cause, and how any error reads in one line: what was wrong, the value, what is allowed."""

from __future__ import annotations

import re


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


# Hydra's advice for a key the config lacks; wrong here, where every key a choice takes is in its YAML file.
_APPEND = re.compile(r"Could not override '([^']+)'\.\s+To append to your config use \+(\S+)")


def _missing_key(message: str) -> str | None:
    """A key the chosen config lacks, in the project's words: a typo, or another choice's key."""
    m = _APPEND.search(message)
    if m is None:
        return None
    key, given = m[1], m[2]
    group, _, leaf = key.rpartition(".")
    why = (
        f"the chosen {group} has no key {leaf!r}: a typo, or a key of another {group} choice, which needs that "
        f"choice named first ({group}=<choice> {given})"
        if group
        else f"the config has no key {leaf!r} (a typo?)"
    )
    return f"{given} is not allowed: {why}; `python run.py --cfg job` shows every key of the default config"


def one_line(e: BaseException) -> str:
    """The message and its cause in one line, without Hydra's search-path and key-type details (secrets are the
    caller's to mask: `tracking.redact`)."""
    missing = _missing_key(str(e))
    if missing is not None:
        return missing
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
