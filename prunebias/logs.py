"""Logging for rule scripts: to the rule's log file and to stderr.

An uncaught exception is logged with its traceback before the job dies, so the job's log
file (what ``--show-failed-logs`` and a SLURM user read) says why it failed, not only
the scheduler's stderr.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path


def setup_logging(log_file: str | Path | None, name: str = "prunebias") -> logging.Logger:
    """Configure the root logger once per job; returns the stage logger."""
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if log_file:
        Path(log_file).parent.mkdir(parents=True, exist_ok=True)
        handlers.append(logging.FileHandler(log_file, mode="w"))
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s",
                        handlers=handlers, force=True)
    log = logging.getLogger(name)

    def log_failure(kind: type[BaseException], exc: BaseException, tb) -> None:
        if issubclass(kind, KeyboardInterrupt):
            sys.__excepthook__(kind, exc, tb)
            return
        log.critical("job failed: %s: %s", kind.__name__, exc, exc_info=(kind, exc, tb))

    sys.excepthook = log_failure  # to the file and, through the stream handler, to stderr
    return log
