"""The code layout the architecture relies on, read from the source tree (no workflow run).

- ``workflow_scripts/`` holds entry scripts only: one per rule, named like it, none
  importing another, none touching ``sys.path``;
- ``rules/*.smk`` import the library (``prunebias``), never an entry script;
- the library never imports an entry script, and every document it cites exists.
"""

import ast
import re
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SCRIPTS = REPO / "workflow_scripts"
RULE_FILES = sorted((REPO / "rules").glob("*.smk")) + [REPO / "Snakefile"]
STDLIB = set(sys.stdlib_module_names)


def imported_modules(source: str) -> set[str]:
    """Top-level module names imported anywhere in a Python source (also inside functions)."""
    out = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.add(node.module)
    return out


def rule_scripts() -> dict[str, str]:
    """rule name -> the script its ``script:`` directive runs."""
    out = {}
    for f in RULE_FILES:
        rule = None
        lines = f.read_text().splitlines()
        for i, line in enumerate(lines):
            m = re.match(r"\s*rule (\w+):", line)
            if m:
                rule = m[1]
            if line.strip() == "script:":
                out[rule] = Path(lines[i + 1].strip().strip('"')).name
    return out


def test_one_entry_script_per_rule_named_like_it():
    scripts = rule_scripts()
    assert scripts, "no script: directives found"
    for rule, script in scripts.items():
        assert script == f"{rule}.py", f"rule {rule} runs {script}"
    on_disk = {p.name for p in SCRIPTS.glob("*.py")}
    assert on_disk == set(scripts.values()), f"scripts without a rule: {on_disk - set(scripts.values())}"


def test_no_entry_script_imports_another_or_edits_sys_path():
    names = {p.stem for p in SCRIPTS.glob("*.py")}
    for path in SCRIPTS.glob("*.py"):
        source = path.read_text()
        mods = imported_modules(source)
        bad = {m for m in mods if m.split(".")[0] == "workflow_scripts" or m.split(".")[0] in names}
        assert not bad, f"{path.name} imports entry scripts {bad}"
        assert "sys.path" not in source, f"{path.name} edits sys.path"
        assert any(m.startswith("prunebias") for m in mods), f"{path.name} does not call the library"


def test_rules_import_only_the_library():
    for f in RULE_FILES:
        source = f.read_text()
        for line in source.splitlines():
            m = re.match(r"\s*(?:from (\S+) import|import (\S+))", line)
            if not m:
                continue
            mod = (m[1] or m[2]).split(".")[0]
            assert mod == "prunebias" or mod == "snakemake" or mod in STDLIB, f"{f.name}: {line.strip()}"
        assert "workflow_scripts." not in source.replace("../workflow_scripts/", ""), f.name


def test_library_never_imports_entry_scripts():
    for path in (REPO / "prunebias").rglob("*.py"):
        mods = imported_modules(path.read_text())
        assert not any(m.startswith("workflow_scripts") for m in mods), path.name


def test_documents_cited_by_the_code_exist():
    """A module must not send readers to a file that is not in the repository."""
    cited = re.compile(r"[\w./-]+\.(?:md|rst)\b")
    for path in list((REPO / "prunebias").rglob("*.py")) + list(SCRIPTS.glob("*.py")):
        for ref in cited.findall(path.read_text()):
            candidates = [REPO / ref, REPO / "report" / Path(ref).name, path.parent / ref]
            assert any(c.exists() for c in candidates), f"{path.name} cites {ref}, which is not in the repository"


def test_report_captions_are_valid_restructuredtext():
    """Snakemake renders every caption with docutils; an error there (e.g. ``|x|`` read as
    an undefined substitution) prints into the report instead of the caption."""
    import docutils.core
    import docutils.utils

    for path in sorted((REPO / "report").glob("*.rst")):
        try:
            docutils.core.publish_doctree(path.read_text(), source_path=str(path),
                                          settings_overrides={"halt_level": 2, "report_level": 5})
        except docutils.utils.SystemMessage as err:
            raise AssertionError(f"{path.name}: {err}") from None
