"""bench/RESULTS.md is assembled from the benchmarks' own result files: it is up to date with them, and every
figure of the hand-kept summary at its top is quoted from a benchmark's printed output."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[1] / "bench"


def _numbers(text: str) -> set[str]:
    return {n.replace(",", "") for n in re.findall(r"\d[\d,]*(?:\.\d+)?", text)}


def test_results_md_is_assembled_from_the_result_files(tmp_path: Path) -> None:
    before = (BENCH / "RESULTS.md").read_text(encoding="utf-8")
    copy = tmp_path / "bench"
    (copy / "results").mkdir(parents=True)
    for path in [BENCH / "build_results.py", BENCH / "SUMMARY.md", *sorted((BENCH / "results").glob("*.md"))]:
        (copy / path.relative_to(BENCH)).write_bytes(path.read_bytes())
    subprocess.run([sys.executable, str(copy / "build_results.py")], check=True)
    assert (copy / "RESULTS.md").read_text(encoding="utf-8") == before, \
        "bench/RESULTS.md is stale: run python bench/build_results.py"


def test_every_summary_figure_is_in_a_benchmark_s_output() -> None:
    printed = set().union(*(_numbers(p.read_text(encoding="utf-8")) for p in (BENCH / "results").glob("*.md")))
    summary = (BENCH / "SUMMARY.md").read_text(encoding="utf-8")
    quoted = {n for n in _numbers(summary) if "." in n or len(n) > 2}  # leave small counts and ordinals aside
    assert quoted - printed == set(), "figures in bench/SUMMARY.md that no result file prints"
