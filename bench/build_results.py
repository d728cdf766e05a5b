"""Assemble bench/RESULTS.md from bench/results/*.md (each written by its benchmark's run).

    python bench/build_results.py
"""

from __future__ import annotations

import re
from pathlib import Path

HERE = Path(__file__).resolve().parent
ORDER = ["fingerprint", "robustness", "policy", "ddex", "shards", "longform", "training", "trace", "scale", "web"]


def main() -> None:
    parts = sorted((HERE / "results").glob("*.md"), key=lambda p: (ORDER.index(p.stem) if p.stem in ORDER else 99, p.stem))
    summary = (HERE / "SUMMARY.md").read_text(encoding="utf-8").strip() if (HERE / "SUMMARY.md").exists() else ""
    out = ["# Benchmark results", "",
           "Each section names the command that produced it; numbers were taken on the 2-core development "
           "machine, shared with other work, so they are noisy. Regenerate this file with "
           "`python bench/build_results.py` after re-running a benchmark.", ""]
    if summary:
        out += [summary, ""]
    for part in parts:
        text = part.read_text(encoding="utf-8").strip()
        # One level deeper than in its own file, outside code blocks.
        lines, fenced = [], False
        for line in text.splitlines():
            if line.startswith("```"):
                fenced = not fenced
            lines.append("#" + line if not fenced and re.match(r"#+ ", line) else line)
        out += lines + [""]
    (HERE / "RESULTS.md").write_text("\n".join(out), encoding="utf-8")


if __name__ == "__main__":
    main()
