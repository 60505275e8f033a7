"""What a reader sees: the headline table, plots, side effects (lm-eval on pruned models) and
the generated figure blocks of README.md and docs/comparison.md (``readme_figures``)."""
