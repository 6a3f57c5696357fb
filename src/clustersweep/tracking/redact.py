"""Secrets never reach a param, tag, artifact, run name or printed line: `redact` masks them in any text."""

from __future__ import annotations

import logging
import os
import re
import sys
from pathlib import Path
from typing import Any

# Secrets whose values are masked wherever they appear.
SECRET_ENV = ("MLFLOW_TRACKING_TOKEN", "MLFLOW_TRACKING_PASSWORD", "RAY_AUTH_TOKEN")
# user:password@ after a scheme, to the host's last @; also as Hydra logs overrides (`http\://u\:pw@host`)
_URI_PASSWORD = re.compile(r"(?P<head>[A-Za-z][A-Za-z0-9+.-]*\\?://[^:/@\s\\]*)(?P<colon>\\?:)[^/\s]+@")


def redact(text: str) -> str:
    """`text` with every URI password (`http://user:***@host`) and secret environment value masked."""
    text = _URI_PASSWORD.sub(r"\g<head>\g<colon>***@", text)
    for name in SECRET_ENV:
        secret = os.environ.get(name)
        if secret:
            text = text.replace(secret, "***")
    return text


def redact_logs() -> None:
    """Mask secrets in every log record of this process from now on: Hydra logs each job's overrides,
    `tracking.uri=…` among them, and configures its handlers anew for every job (so no handler filter)."""
    make = logging.getLogRecordFactory()
    if getattr(make, "redacting", False):
        return

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = make(*args, **kwargs)
        message = record.getMessage()
        clean = redact(message)
        if clean != message:
            record.msg, record.args = clean, None
        return record

    factory.redacting = True  # type: ignore[attr-defined]
    logging.setLogRecordFactory(factory)


def command_line() -> str:
    """The command this process runs, as typed (program name without its folder), secrets masked."""
    return redact(" ".join([Path(sys.argv[0]).name, *sys.argv[1:]]))
