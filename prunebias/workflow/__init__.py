"""The plan and its glue: the config checked and resolved before any job (``preflight``), the
plan (``plan``), mask paths (``paths``), cluster resources, code versions, provenance, logs."""
