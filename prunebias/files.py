"""File I/O that never leaves a half-written output under its final name.

Every writer goes to a temporary sibling (``.name.tmp-<pid>``) and renames it into
place, so a job killed mid-write leaves nothing Snakemake would accept as done.
Readers fail with a message that names the file and says what to do.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from pathlib import Path
from typing import Any, Iterator

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from prunebias.errors import ConfigError


@contextlib.contextmanager
def atomic_path(path: str | Path, is_dir: bool = False) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; on success rename it onto ``path``."""
    final = Path(path)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.with_name(f".{final.name}.tmp-{os.getpid()}")
    # a killed earlier attempt of this job leaves its temp behind (Snakemake never runs two
    # jobs for one output at once, so every such sibling is stale): the model's size on disk
    for stale in [*final.parent.glob(f".{final.name}.tmp-*"), tmp]:
        if stale.is_dir() and not stale.is_symlink():
            shutil.rmtree(stale)
        elif stale.exists() or stale.is_symlink():
            stale.unlink()
    if is_dir:
        tmp.mkdir()
    try:
        yield tmp
        if final.exists() and final.is_dir():
            shutil.rmtree(final)
        os.replace(tmp, final)
    except BaseException:
        if tmp.exists():
            shutil.rmtree(tmp) if tmp.is_dir() else tmp.unlink()
        raise


def write_parquet(df: pd.DataFrame, path: str | Path, metadata: dict[str, Any] | None = None) -> None:
    """Write a DataFrame atomically; ``metadata`` goes into the file's key-value metadata as JSON."""
    table = pa.Table.from_pandas(df, preserve_index=False)
    if metadata:
        meta = dict(table.schema.metadata or {})
        meta[b"prunebias"] = json.dumps(metadata, sort_keys=True).encode()
        table = table.replace_schema_metadata(meta)
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp)


def read_parquet(path: str | Path, required: list[str] | None = None) -> pd.DataFrame:
    """Read a Parquet file written by this workflow, checking the columns it must have."""
    p = Path(path)
    try:
        df = pq.read_table(p).to_pandas()
    except FileNotFoundError:
        raise ConfigError(str(p), "file not found", "run the step that makes it (snakemake builds it for you)") from None
    except Exception as exc:  # pyarrow raises ArrowInvalid/OSError for truncated or foreign files
        raise ConfigError(str(p), f"not a readable Parquet file ({exc.__class__.__name__}: {exc})",
                          "delete the file and rerun snakemake so the step that makes it runs again") from exc
    missing = [c for c in (required or []) if c not in df.columns]
    if missing:
        raise ConfigError(str(p), f"missing column(s) {missing}; not a file of this workflow or an older format",
                          "delete the file and rerun snakemake")
    return df


def read_csv_text(path: str | Path, what: str, config_key: str) -> pd.DataFrame:
    """A user's CSV as strings (no NA guessing: "" stays ""), column names stripped;
    errors name the file and the config key that points at it."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(str(p), f"{what} not found", f"set {config_key} in config to an existing CSV")
    utf8_text(p)
    try:
        df = pd.read_csv(p, dtype=str, keep_default_na=False)
    except Exception as exc:  # pandas raises several types for malformed CSV
        raise ConfigError(str(p), f"cannot read as CSV ({exc})", "fix the file") from exc
    df.columns = [c.strip() for c in df.columns]
    return df


def utf8_text(path: Path) -> str:
    """A user's file as UTF-8 text; a byte that is not UTF-8 is named with its line (the
    parsers' own messages name neither the line nor the fix)."""
    raw = path.read_bytes()
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[:exc.start].count(b"\n") + 1
        raise ConfigError(str(path), f"line {line}: byte {raw[exc.start]:#04x} is not UTF-8 (a Latin-1 or Windows "
                          "export?)", "save the file as UTF-8") from exc


def check_text_file(path: str | Path, config_key: str, what: str) -> None:
    """A user's text file exists, is UTF-8 and holds text (not only whitespace)."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(str(p), f"{what} not found", f"set {config_key} in config to an existing text file")
    if not utf8_text(p).strip():
        raise ConfigError(str(p), f"{what} is empty", f"put text in it, or set {config_key} to a file with text "
                          "(the shipped data/neutral_text.txt)")


def write_csv(df: pd.DataFrame, path: str | Path) -> None:
    """Write a CSV atomically with a fixed float format so reruns give identical bytes."""
    with atomic_path(path) as tmp:
        df.to_csv(tmp, index=False, float_format="%.10g")


def write_json(obj: Any, path: str | Path) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=True) + "\n")
