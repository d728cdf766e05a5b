"""Fingerprinting throughput against `xargs -P<workers> -n1 fpcalc`, measured in the same run.

Also checks parity: the share of 32-bit items identical to `fpcalc -raw` for every file.

    python bench/fingerprint_throughput.py [--length 120] [--workers 2] [--repeat 3] [DIR_OR_FILES...]
"""

from __future__ import annotations

import argparse
import os
import resource
import shlex
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

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


def _children_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def _self_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def _pool_cpu() -> float:
    """CPU seconds used so far by the warm fingerprint worker processes (they outlive a batch)."""
    from fingerprinting import batch

    total = 0.0
    for pid in (batch._pool[1]._processes or {}) if batch._pool else {}:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        except (OSError, IndexError, ValueError):
            pass
    return total


def _fpcalc(files: list[Path], length: float, workers: int) -> tuple[float, float]:
    listing = "".join(f"{f}\0" for f in files).encode()
    cpu, t = _children_cpu(), time.perf_counter()
    subprocess.run(["xargs", "-0", f"-P{workers}", "-n1", "fpcalc", "-length", str(int(length))],
                   input=listing, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
    return time.perf_counter() - t, _children_cpu() - cpu


def _ours(files: list[Path], length: float, workers: int) -> tuple[float, float]:
    cpu, t = _pool_cpu() + _self_cpu(), time.perf_counter()
    for _ in fingerprint_many(files, max_seconds=length or None, workers=workers):
        pass
    return time.perf_counter() - t, _pool_cpu() + _self_cpu() - cpu


def _cli(files: list[Path], length: float) -> tuple[float, float]:
    cmd = [sys.executable, "-c", "from dagster_project.cli import main; main()", "fingerprint", "--length",
           str(length), *map(str, files)]
    t = time.perf_counter()
    subprocess.run(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False,
                   env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
    return time.perf_counter() - t, float("nan")  # its workers are the forkserver's children, not ours


def _breakdown(files: list[Path], length: float) -> dict[str, float]:
    """Single-process CPU seconds of each part, to show where the time goes and what bounds the ratio."""
    import av

    from fingerprinting.chromaprint import FingerprintError, fingerprint_file

    def decode_only(path: Path) -> None:
        with av.open(str(path)) as container:
            stream = container.streams.audio[0]
            wanted, decoded = (length or 1e9) * stream.sample_rate, 0
            for packet in container.demux(stream):
                for frame in packet.decode():
                    decoded += frame.samples
                if decoded >= wanted:
                    break

    out: dict[str, float] = {}
    start = _self_cpu()
    for f in files:
        decode_only(f)
    out["FFmpeg decode only (PyAV's FFmpeg), one process"] = _self_cpu() - start
    start = _self_cpu()
    for f in files:
        try:
            fingerprint_file(f, max_seconds=length or None)
        except FingerprintError:  # e.g. the corpus's silence track: decoded, then refused
            pass
    out["fingerprint_file (decode + resample + libchromaprint), one process"] = _self_cpu() - start
    # The stages inside fingerprint_file, each measured on its own.
    from fingerprinting.chromaprint import _graph, _probe, fingerprint_samples

    start = _self_cpu()
    for f in files:
        try:
            _probe(f)
        except FingerprintError:
            pass
    out["  stage: probe (open, stream facts, truncation checks)"] = _self_cpu() - start
    start = _self_cpu()
    for f in files:
        graph, sink = _graph(f)
        fed = 0
        while not length or fed < length * 11025:
            try:
                fed += sink.pull().samples
            except (EOFError, av.error.BlockingIOError):
                break
        del graph
    graph_s = _self_cpu() - start
    out["  stage: decode + fpcalc's resampling (filter graph, samples pulled, no fingerprint)"] = graph_s
    out["  stage: libchromaprint and the rest (fingerprint_file - probe - filter graph)"] = (
        out["fingerprint_file (decode + resample + libchromaprint), one process"]
        - out["  stage: probe (open, stream facts, truncation checks)"] - graph_s)
    # libchromaprint on its own: the same samples, decoded first (not timed), fed in one call.
    chromaprint_s = 0.0
    for f in files:
        graph, sink = _graph(f)
        chunks, fed = [], 0
        while not length or fed < length * 11025:
            try:
                frame = sink.pull()
            except (EOFError, av.error.BlockingIOError):
                break
            chunks.append(np.frombuffer(frame.planes[0], dtype=np.int16, count=frame.samples).copy())
            fed += frame.samples
        del graph
        samples = np.concatenate(chunks)[: int(length * 11025) if length else None]
        start = _self_cpu()
        fingerprint_samples(samples)
        chromaprint_s += _self_cpu() - start
    out["    of which libchromaprint alone (the same samples fed in one call)"] = chromaprint_s
    out["    of which the Python loop, silence peak and result (the remainder)"] = (
        out["  stage: libchromaprint and the rest (fingerprint_file - probe - filter graph)"] - chromaprint_s)
    start = _self_cpu()
    for f in files:
        try:
            fingerprint_file(f, max_seconds=length or None, landmarks=True)
        except FingerprintError:
            pass
    out["fingerprint_file(landmarks=True): both fingerprints from one decode, one process"] = _self_cpu() - start
    start = _children_cpu()
    for f in files:
        subprocess.run(["fpcalc", "-length", str(int(length)), str(f)], capture_output=True, check=False)
    out["fpcalc, one process per file"] = _children_cpu() - start
    start = _children_cpu()
    for _ in files:
        subprocess.run(["fpcalc", "-version"], capture_output=True, check=False)
    out["of which fpcalc process start-up (fpcalc -version per file)"] = _children_cpu() - start
    decode = out["FFmpeg decode only (PyAV's FFmpeg), one process"]
    fpcalc_work = out["fpcalc, one process per file"] - out["of which fpcalc process start-up (fpcalc -version per file)"]
    out["fpcalc's work without start-up (fpcalc - start-up)"] = fpcalc_work
    out["beyond decoding, fingerprint_file (fingerprint_file - decode only)"] = (
        out["fingerprint_file (decode + resample + libchromaprint), one process"] - decode)
    out["beyond decoding, fpcalc (work without start-up - decode only)"] = fpcalc_work - decode
    return out


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


def _cpu_cells(values: list[float], base: float) -> str:
    med = statistics.median(values)
    return "n/a | n/a" if med != med else f"{med:.2f} | {base / med:.2f}x"


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
    cpu: dict[str, list[float]] = {"fpcalc": [], "in-process": [], "cli": []}
    _ours(files[:2], args.length, args.workers)  # warm the page cache and imports alike
    _fpcalc(files[:2], args.length, args.workers)
    for _ in range(args.repeat):
        for key, fn in (("fpcalc", lambda: _fpcalc(files, args.length, args.workers)),
                        ("in-process", lambda: _ours(files, args.length, args.workers)),
                        ("cli", lambda: _cli(files, args.length))):
            wall, seconds = fn()
            runs[key].append(wall)
            cpu[key].append(seconds)
    base = statistics.median(runs["fpcalc"])
    best = min(runs["fpcalc"])
    load = Path("/proc/loadavg").read_text().split()[:3] if Path("/proc/loadavg").exists() else []
    print(f"load average before/after: {load_before} / {' '.join(load)} on {os.cpu_count()} CPUs")
    print(f"{len(files)} files, length {args.length:g} s, {args.workers} workers, median of {args.repeat} "
          f"interleaved runs; anchor: `{anchor}`")
    print("CPU s: processor time of every process doing the work (fpcalc children, or the warm workers "
          "plus the caller); the ratio holds on a busy machine, where wall time does not")
    print()
    print("| method | wall s (median) | wall s (best) | runs | speed-up vs fpcalc (median / best) "
          "| CPU s (median) | CPU ratio vs fpcalc |")
    print("|---|---|---|---|---|---|---|")
    base_cpu = statistics.median(cpu["fpcalc"])
    labels = {"fpcalc": anchor, "in-process": "fingerprint_many(workers=%d)" % args.workers,
              "cli": "linernotes fingerprint (fresh process, imports included)"}
    for key, label in labels.items():
        med, low = statistics.median(runs[key]), min(runs[key])
        print(f"| {label.replace('|', chr(92) + '|')} | {med:.2f} | {low:.2f} | {' '.join(f'{x:.2f}' for x in runs[key])} "
              f"| {base / med:.2f}x / {best / low:.2f}x | {_cpu_cells(cpu[key], base_cpu)} |")
    print()
    print("| where the CPU goes (same files, sequential) | CPU s |")
    print("|---|---|")
    for label, seconds in _breakdown(files, args.length).items():
        print(f"| {label} | {seconds:.2f} |")
    same, total, same_files, compared = _parity(files, args.length)
    print()
    print(f"parity with `fpcalc -raw -length {int(args.length)}`: {same}/{total} items identical "
          f"({100 * same / max(1, total):.3f}%), {same_files}/{compared} files bit-identical")
    print("command:", " ".join(shlex.quote(a) for a in sys.argv))


if __name__ == "__main__":
    main()
