"""Per-item metrics of the local tasks, loaded by lm-eval through ``!function``; the
science lives in ``prunebias.report.side_effects``."""

from prunebias.report.side_effects import name_choice_metrics as name_choice  # noqa: F401
