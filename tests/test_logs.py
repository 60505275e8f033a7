"""A failing job's log file holds the traceback (what --show-failed-logs and SLURM users read)."""

import subprocess
import sys

from conftest import REPO

SCRIPT = """
from prunebias.errors import ConfigError
from prunebias.workflow.logs import setup_logging
log = setup_logging({log!r}, "prunebias.some_rule")
log.info("step one done")
raise ConfigError("results/activations/x.parquet", "not a readable Parquet file", "delete it and rerun")
"""


def test_uncaught_error_goes_to_the_log_file_with_its_traceback(tmp_path):
    log = tmp_path / "logs" / "some_rule" / "x.log"
    proc = subprocess.run([sys.executable, "-c", SCRIPT.format(log=str(log))], cwd=REPO, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 1
    text = log.read_text()
    assert "step one done" in text and "job failed: ConfigError" in text
    assert "Traceback (most recent call last)" in text and "delete it and rerun" in text
    assert "delete it and rerun" in proc.stderr  # still on stderr for the scheduler's file


def test_progress_writes_tenths_to_the_log_file_only(tmp_path, capsys):
    import logging

    from prunebias.workflow.logs import progress, setup_logging

    log_file = tmp_path / "job.log"
    setup_logging(log_file, "prunebias.test")
    with progress(total=40, desc="caching ctx", unit="prompt") as bar:
        for _ in range(20):
            bar.update(2)
    for h in logging.getLogger().handlers + logging.getLogger("prunebias.progress").handlers:
        h.flush()
    lines = [x for x in log_file.read_text().splitlines() if "prunebias.progress" in x]
    assert len(lines) == 10 and "caching ctx: 40 of 40 prompt (100%)" in lines[-1]
    assert "caching ctx: 4 of 40 prompt (10%)" in lines[0]
    assert "prunebias.progress" not in capsys.readouterr().err  # stderr has the bar, not the lines
