"""Code versions per stage: a hash of a rule's script and every ``prunebias`` module it
imports, directly or through other modules.

Snakemake reruns a job when its script file changes, but not when a library module the
script imports changes (e.g. the answer parser). Passed as a rule param, the version
makes such an edit a rerun trigger for exactly the jobs whose code it is, and for no
other: editing ``prunebias/report/plots.py`` reruns the plotting jobs, not generation.
``prunebias/__init__.py`` only names lazy exports and is not followed.
"""

from __future__ import annotations

import ast
import hashlib
import subprocess
from typing import Any
from pathlib import Path

PACKAGE = "prunebias"


def imported_modules(source: str) -> set[str]:
    """``prunebias`` modules named by the imports anywhere in ``source`` (function-local ones too)."""
    out: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names if a.name.split(".")[0] == PACKAGE)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module.split(".")[0] == PACKAGE:
                out.add(node.module)
                # from prunebias.model import sampling: each name may be a module of a subpackage
                out.update(f"{node.module}.{a.name}" for a in node.names)
    return out


def module_file(module: str, root: Path) -> Path | None:
    """The file of a ``prunebias`` module under ``root`` (the repository), or None (a name, not a
    module; or the package itself)."""
    parts = module.split(".")
    path = root.joinpath(*parts)
    candidate = path.with_suffix(".py")
    return candidate if candidate.is_file() else None


def code_files(script: Path, root: Path) -> list[Path]:
    """``script`` and every ``prunebias`` module file it reaches through imports (sorted)."""
    seen: set[Path] = set()
    todo = [Path(script)]
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        for module in imported_modules(path.read_text()):
            found = module_file(module, root)
            if found is not None and found not in seen:
                todo.append(found)
    return sorted(seen)


def code_version(script: Path, root: Path) -> str:
    """12 hex digits of the SHA-256 over the paths (relative to ``root``) and contents of ``code_files``."""
    h = hashlib.sha256()
    for path in code_files(script, root):
        h.update(str(path.resolve().relative_to(Path(root).resolve())).encode())
        h.update(b"\0")
        h.update(path.read_bytes())
        h.update(b"\0")
    return h.hexdigest()[:12]


def reference_version(ref: Any, root: Path) -> str:
    """The code version of the module a method-registry reference names (``"prunebias.methods.neurons:
    neuron_masks"``: that module and what it imports), "" for a function given itself (its
    code is ``methods/registry.py``, which the scripts import). The registry's learners and controls
    are imported only when a job calls them, so the import walk does not see them; the
    rules that call one add its version as a param, and an edit of a learner reruns the
    jobs of its families only."""
    if not isinstance(ref, str):
        return ""
    path = module_file(ref.split(":")[0], root)
    if path is None:
        raise ValueError(f"{ref!r} names no module under {root}")
    return code_version(path, root)


def code_versions(root: Path, scripts_dir: str = "workflow_scripts") -> dict[str, str]:
    """Script stem -> code version, for every entry script of the workflow."""
    return {p.stem: code_version(p, root) for p in sorted((Path(root) / scripts_dir).glob("*.py"))}


def git_commit(repo: str | Path) -> str:
    """The workflow's commit (with "-dirty" for uncommitted changes), or "unknown" outside git."""
    try:
        run = lambda *a: subprocess.run(["git", "-C", str(repo), *a], capture_output=True, text=True,  # noqa: E731
                                        timeout=10, check=True).stdout.strip()
        return run("rev-parse", "HEAD") + ("-dirty" if run("status", "--porcelain", "--untracked-files=no") else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"
