"""A failing job's log file holds the traceback (what --show-failed-logs and SLURM users read)."""

import subprocess
import sys

from conftest import REPO

SCRIPT = """
from prunebias.errors import ConfigError
from prunebias.logs import setup_logging
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
