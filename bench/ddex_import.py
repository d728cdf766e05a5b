"""DDEX import of a large message: MB/s and peak memory against plain lxml parsing of the same file.

Generates a message of ``--mb`` megabytes (default 50) from DDEX's official ERN 4.2 "1 Audio" sample
(tests/data/ddex/ern42): its sound recordings are repeated with new resource references and ISRCs
and added to the album, whose three deals then cover every one of them. Each phase runs in its own
process, one after the other on the same file, and reports its wall time and its peak resident
memory (ru_maxrss):

* anchor: ``lxml.etree.iterparse`` over the file, each element cleared once read (the floor for any
  streaming reader), and ``lxml.etree.parse`` of the whole tree (what reading it in one piece costs);
* ``read_ddex``: the safety scan plus the streamed read into records, no ledger;
* ``import_ddex``: the whole import into a fresh DuckDB ledger through the write path (one
  ``rights.import`` command), as ``linernotes rights import-ddex`` runs it.

    python bench/ddex_import.py [--mb 50] [--out bench/results/ddex.md]
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "tests" / "data" / "ddex" / "ern42" / "1 Audio.xml"


def generate(path: Path, megabytes: float) -> int:
    """Write the enlarged message; return how many sound recordings it holds."""
    from lxml import etree

    doc = etree.parse(str(SAMPLE))
    root = doc.getroot()
    resources = root.find("ResourceList")
    originals = resources.findall("SoundRecording")
    group = root.find("ReleaseList/Release/ResourceGroup")
    item_template = group.find(".//ResourceGroupContentItem")
    per_copy = len(etree.tostring(originals[0])) + 200
    wanted = int(megabytes * 1_000_000 / per_copy)
    for n in range(wanted):
        sr = copy.deepcopy(originals[n % len(originals)])
        ref = f"B{n}"
        sr.find("ResourceReference").text = ref
        sr.find(".//ISRC").text = f"QZ{'ABCDEFGHJK'[n // 100000 % 10]}{'LMNPQ'[n // 1000000 % 5]}Z26{n % 100000:05d}"
        resources.append(sr)
        item = copy.deepcopy(item_template)
        item.find("ReleaseResourceReference").text = ref
        item.find("SequenceNumber").text = str(n + 1000)
        group.append(item)
    doc.write(str(path), xml_declaration=True, encoding="UTF-8")
    return len(originals) + wanted


PHASES = {
    "anchor: lxml iterparse, clear each element": """
from lxml import etree
n = 0
for _e, el in etree.iterparse(path, events=("end",)):
    n += 1
    el.clear(keep_tail=True)
result = {"elements": n}
""",
    "lxml parse of the whole tree": """
from lxml import etree
doc = etree.parse(path)
result = {"elements": sum(1 for _ in doc.iter())}
""",
    "read_ddex (scan + streamed read)": """
from pathlib import Path
from licensing.importers.ddex import read_ddex
ex = read_ddex(Path(path), source="big.xml")
result = {"recordings": len(ex.recordings), "deals": len(ex.deals), "errors": len(ex.errors)}
""",
    "import_ddex into a DuckDB ledger": """
from pathlib import Path
from store.database import connect
from licensing.importers.ddex import import_ddex
from tests.roles import test_book
import tempfile
with tempfile.TemporaryDirectory() as d, connect(Path(d) / "ledger.duckdb") as con:
    report = import_ddex(con, Path(path), actor="bench", roles=test_book())
    n = con.execute("SELECT count(*) FROM recordings").fetchone()[0]
    nd = con.execute("SELECT count(*) FROM deal_recordings").fetchone()[0]
result = {"recordings": n, "deal_recordings": nd, "errors": len(report.errors), "rejected": report.rejected}
""",
}

# VmHWM, not ru_maxrss: Linux carries ru_maxrss over exec from the forking parent.
PEAK = """
def peak_mb():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
"""

CHILD = PEAK + """
import json, sys, time
sys.path.insert(0, {root!r})
path = {path!r}
t0 = time.perf_counter()
{body}
elapsed = time.perf_counter() - t0
print(json.dumps({{"elapsed": elapsed, "peak_rss_mb": peak_mb(), **result}}))
"""

BASELINE = PEAK + """
import json, sys
sys.path.insert(0, {root!r})
import lxml.etree, duckdb, licensing.importers.ddex, store.database
print(json.dumps({{"peak_rss_mb": peak_mb()}}))
"""

GENERATE = """
import json, sys
sys.path.insert(0, {root!r})
sys.path.insert(0, {bench!r})
from pathlib import Path
from ddex_import import generate
print(json.dumps({{"recordings": generate(Path({path!r}), {mb!r})}}))
"""


def run_child(code: str) -> dict:
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=float, default=50.0)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "big.xml"
        t0 = time.perf_counter()
        recordings = run_child(GENERATE.format(root=str(ROOT), bench=str(ROOT / "bench"), path=str(path),
                                               mb=args.mb))["recordings"]
        size_mb = path.stat().st_size / 1_000_000
        head = (f"message: {size_mb:.1f} MB, {recordings:,} sound recordings, 3 deals over all of them "
                f"(generated from the official ERN 4.2 '1 Audio' sample in {time.perf_counter() - t0:.1f} s); "
                f"cpus={os.cpu_count()}, load average before {os.getloadavg()[0]:.2f}")
        base = run_child(BASELINE.format(root=str(ROOT)))["peak_rss_mb"]
        lxml_base = run_child(PEAK + "import json, lxml.etree\nprint(json.dumps({'peak_rss_mb': peak_mb()}))")["peak_rss_mb"]
        rows = []
        anchor_s = None
        for name, body in PHASES.items():
            got = run_child(CHILD.format(root=str(ROOT), path=str(path), body=body))
            anchor_s = anchor_s or got["elapsed"]
            extra = {k: v for k, v in got.items() if k not in ("elapsed", "peak_rss_mb")}
            rows.append((name, got["elapsed"], size_mb / got["elapsed"], got["elapsed"] / anchor_s,
                         got["peak_rss_mb"], extra))
        load = os.getloadavg()
    lines = [head, (f"baselines, nothing read: Python + lxml {lxml_base:.0f} MB; Python + lxml + DuckDB + linernotes "
                    f"{base:.0f} MB (peak RSS, VmHWM)"), "",
             "| phase | s | MB/s | time vs anchor | peak RSS MB | over baseline MB | result |",
             "|---|---|---|---|---|---|---|"]
    for name, secs, rate, ratio, rss, extra in rows:
        over = rss - (lxml_base if "lxml" in name else base)
        lines.append(f"| {name} | {secs:.2f} | {rate:.1f} | {ratio:.1f}x | {rss:.0f} | {over:.0f} | "
                     f"{', '.join(f'{k}={v}' for k, v in extra.items())} |")
    target = rows[-1][2]
    lines += ["", (f"import_ddex: {target:.1f} MB/s against the 5 MB/s goal "
                   f"({'met' if target >= 5 else 'NOT met'}); load average after {load[0]:.2f} / {load[1]:.2f}")]
    text = "\n".join(lines)
    print(text)
    if args.out:
        command = f"PYTHONPATH=. .venv/bin/python bench/ddex_import.py --mb {args.mb:g} --out {args.out}"
        args.out.write_text(f"# DDEX import benchmark\n\nCommand (2-core machine shared with other work):\n\n```\n"
                            f"{command}\n```\n\n```\n{text}\n```\n", encoding="utf-8")


if __name__ == "__main__":
    main()
