"""The results that back the docs stay findable: every file under ``pipelines/results/`` is named in its README
(with the command that made it), and every results file a document cites exists, so a rerun that moves or
removes one cannot leave a number without its file."""

from __future__ import annotations

import fnmatch
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "pipelines" / "results"
PLACEHOLDERS = ("NAME", "FILE", "*")  # a pattern the README uses for a family of files


def named_in_readme() -> set[str]:
    return set(re.findall(r"`([^`\s]+\.json)`", (RESULTS / "README.md").read_text()))


def test_every_results_file_is_named_in_the_results_readme():
    names = named_in_readme()
    patterns = [re.sub(r"NAME|FILE", "*", n) for n in names if any(p in n for p in PLACEHOLDERS)]
    files = sorted(str(p.relative_to(RESULTS)) for p in RESULTS.rglob("*.json"))
    assert len(files) > 50  # the folder is there and was read
    unnamed = [
        f
        for f in files
        if f not in names
        and Path(f).name not in names
        and not any(fnmatch.fnmatch(f, p) for p in patterns)
        and not any(fnmatch.fnmatch(Path(f).name, p) for p in patterns)
    ]
    assert not unnamed, f"name these in pipelines/results/README.md with their command (or remove them): {unnamed}"


def test_the_results_readme_names_only_files_that_exist():
    here = {str(p.relative_to(RESULTS)) for p in RESULTS.rglob("*.json")}
    basenames = {Path(f).name for f in here}
    written_by_commands = {"ped2-cpu.json", "decision.json", "watch.json", "score.json"}  # where reruns write
    missing = [
        n
        for n in named_in_readme()
        if not any(p in n for p in PLACEHOLDERS)
        and n not in here
        and n not in basenames
        and n not in written_by_commands
    ]
    assert not missing, missing


def test_results_files_cited_by_the_readme_and_docs_exist():
    """A path under ``pipelines/results/`` in README.md or docs/ must be there, unless it is where a command in
    the same line writes (``# -> FILE``, ``--out FILE``, ``--results FILE``, "writes FILE")."""
    missing = []
    for doc in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        for line in doc.read_text().splitlines():
            for path in re.findall(r"pipelines/results/[\w./-]+\.json", line):
                if any(p in path for p in PLACEHOLDERS) or (ROOT / path).exists():
                    continue
                if re.search(rf"(->|--out|--results|[Ww]rites?)\s+`?{re.escape(path)}", line):
                    continue  # the output of a documented command
                missing.append(f"{doc.name}: {path}")
    assert not missing, missing
