"""prunebias: the Python behind the Snakemake rules.

One module per stage (``make_prompts``, ``generate_baseline``, ...), each importable and
unit-tested; pure science (parsing, metrics) lives in modules free of I/O.
"""
