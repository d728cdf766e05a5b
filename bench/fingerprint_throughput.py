"""Fingerprinting throughput against `xargs -P<workers> -n1 fpcalc`, measured in the same run.

Also checks parity: the share of 32-bit items identical to `fpcalc -raw` for every file.

    python bench/fingerprint_throughput.py [--length 120] [--workers 2] [--repeat 3] [DIR_OR_FILES...]
"""

from __future__ import annotations

import argparse
import os
import shlex
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _audio import demo_files  # noqa: E402

from fingerprinting.batch import fingerprint_many  # noqa: E402

WESNOTH = Path("/tmp/demo/x/usr/share/games/wesnoth/1.16/data/core/music")
ROOT = Path(__file__).resolve().parent.parent


def _files(args: list[str]) -> list[Path]:
    if not args:
        return sorted(WESNOTH.glob("*.ogg")) if WESNOTH.is_dir() else demo_files()
    out: list[Path] = []
    for a in map(Path, args):
        out += sorted(a.rglob("*.ogg")) if a.is_dir() else [a]
    return out


def _fpcalc(files: list[Path], length: float, workers: int) -> float:
    listing = "".join(f"{f}\0" for f in files).encode()
    t = time.perf_counter()
    subprocess.run(["xargs", "-0", f"-P{workers}", "-n1", "fpcalc", "-length", str(int(length))],
                   input=listing, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
    return time.perf_counter() - t


def _ours(files: list[Path], length: float, workers: int) -> float:
    t = time.perf_counter()
    for _ in fingerprint_many(files, max_seconds=length or None, workers=workers):
        pass
    return time.perf_counter() - t


def _cli(files: list[Path], length: float) -> float:
    cmd = [sys.executable, "-c", "from dagster_project.cli import main; main()", "fingerprint", "--length",
           str(length), *map(str, files)]
    t = time.perf_counter()
    subprocess.run(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False,
                   env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
    return time.perf_counter() - t


def _parity(files: list[Path], length: float) -> tuple[int, int, int, int]:
    same_items = total_items = same_files = compared = 0
    ours = {o.path: o for o in fingerprint_many(files, max_seconds=length or None)}
    for f in files:
        o = ours[f]
        if not o.ok:
            continue
        out = subprocess.run(["fpcalc", "-raw", "-length", str(int(length)), str(f)], capture_output=True, text=True)
        if "FINGERPRINT=" not in out.stdout:
            continue
        ref = [int(x) for x in out.stdout.split("FINGERPRINT=")[1].strip().split(",")]
        mine = o.fingerprint.items.tolist()  # type: ignore[union-attr]
        compared += 1
        same_files += mine == ref
        total_items += max(len(ref), len(mine))
        same_items += sum(a == b for a, b in zip(mine, ref))
    return same_items, total_items, same_files, compared


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--length", type=float, default=120.0, help="seconds per file, as fpcalc -length (0: all)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("paths", nargs="*")
    args = parser.parse_args()
    files = _files(args.paths)
    anchor = f"ls FILES | xargs -P{args.workers} -n1 fpcalc -length {int(args.length)}"
    load_before = " ".join(Path("/proc/loadavg").read_text().split()[:3]) if Path("/proc/loadavg").exists() else "?"
    runs: dict[str, list[float]] = {"fpcalc": [], "in-process": [], "cli": []}
    _ours(files[:2], args.length, args.workers)  # warm the page cache and imports alike
    _fpcalc(files[:2], args.length, args.workers)
    for _ in range(args.repeat):
        runs["fpcalc"].append(_fpcalc(files, args.length, args.workers))
        runs["in-process"].append(_ours(files, args.length, args.workers))
        runs["cli"].append(_cli(files, args.length))
    base = statistics.median(runs["fpcalc"])
    best = min(runs["fpcalc"])
    load = Path("/proc/loadavg").read_text().split()[:3] if Path("/proc/loadavg").exists() else []
    print(f"load average before/after: {load_before} / {' '.join(load)} on {os.cpu_count()} CPUs")
    print(f"{len(files)} files, length {args.length:g} s, {args.workers} workers, median of {args.repeat} "
          f"interleaved runs; anchor: `{anchor}`")
    print()
    print("| method | wall s (median) | wall s (best) | runs | speed-up vs fpcalc (median / best) |")
    print("|---|---|---|---|---|")
    labels = {"fpcalc": anchor, "in-process": "fingerprint_many(workers=%d)" % args.workers,
              "cli": "linernotes fingerprint (fresh process, imports included)"}
    for key, label in labels.items():
        med, low = statistics.median(runs[key]), min(runs[key])
        print(f"| {label.replace('|', chr(92) + '|')} | {med:.2f} | {low:.2f} | {' '.join(f'{x:.2f}' for x in runs[key])} "
              f"| {base / med:.2f}x / {best / low:.2f}x |")
    same, total, same_files, compared = _parity(files, args.length)
    print()
    print(f"parity with `fpcalc -raw -length {int(args.length)}`: {same}/{total} items identical "
          f"({100 * same / max(1, total):.3f}%), {same_files}/{compared} files bit-identical")
    print("command:", " ".join(shlex.quote(a) for a in sys.argv))


if __name__ == "__main__":
    main()
