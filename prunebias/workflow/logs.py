"""Logging for rule scripts: to the rule's log file and to stderr.

An uncaught exception is logged with its traceback before the job dies, so the job's log
file (what ``--show-failed-logs`` and a SLURM user read) says why it failed, not only
the scheduler's stderr. Progress bars (``progress``) draw on stderr and write a line to
the log file at every tenth of the work and at the end, so a job's log shows how far it
got and how fast, without a line per update.
"""

from __future__ import annotations

import logging
import signal
import sys
import threading
from pathlib import Path
from typing import Any

from tqdm import tqdm

PROGRESS = logging.getLogger("prunebias.progress")  # the log files only (not stderr, which has the bar)


def setup_logging(log_file: str | Path | None, name: str = "prunebias") -> logging.Logger:
    """Configure the root logger once per job; returns the stage logger."""
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if log_file:
        Path(log_file).parent.mkdir(parents=True, exist_ok=True)
        handlers.append(logging.FileHandler(log_file, mode="w"))
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s",
                        handlers=handlers, force=True)
    log = logging.getLogger(name)
    PROGRESS.handlers = [h for h in handlers if isinstance(h, logging.FileHandler)]
    for h in PROGRESS.handlers:
        h.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s"))
    PROGRESS.propagate = False
    PROGRESS.setLevel(logging.INFO)

    def log_failure(kind: type[BaseException], exc: BaseException, tb) -> None:
        if issubclass(kind, KeyboardInterrupt):
            sys.__excepthook__(kind, exc, tb)
            return
        log.critical("job failed: %s: %s", kind.__name__, exc, exc_info=(kind, exc, tb))

    sys.excepthook = log_failure  # to the file and, through the stream handler, to stderr
    # SIGTERM (a SLURM time limit, snakemake stopping its jobs) as an exception: cleanup
    # blocks run (atomic_path removes its half-written temp) before the job exits 143
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _exit_on_sigterm)
    return log


def _exit_on_sigterm(signum: int, _frame) -> None:
    raise SystemExit(128 + signum)


class progress(tqdm):  # noqa: N801 - used like tqdm
    """tqdm on stderr, plus a line in the job's log file at every tenth of ``total`` and at the end."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._logged_tenth = 0

    def update(self, n: float | None = 1) -> bool | None:
        out = super().update(n)
        if self.total:
            tenth = int(10 * self.n / self.total)
            if tenth > self._logged_tenth:
                self._logged_tenth = tenth
                elapsed = self.format_dict["elapsed"]
                rate = self.n / elapsed if elapsed > 0 else float("nan")
                PROGRESS.info("%s: %d of %d %s (%d%%) in %.0f s, %.2f %s/s", self.desc or "progress", self.n,
                              self.total, self.unit, 100 * self.n // self.total, elapsed, rate, self.unit)
        return out
