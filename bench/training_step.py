"""Reference trainer step rate (samples/s) on in-memory crops: the ceiling a shard loader must feed.

Anchor: one full training step (log-mel, CNN forward, backward, AdamW) at batch 16 with the
torch threads this machine gives one process. Rows: the log-mel front end alone, other batch
sizes and thread counts. Run: ``python bench/training_step.py [--seconds 3]``.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402
from torch import nn  # noqa: E402

from training.reference import CropClassifier, LogMel  # noqa: E402

CLASSES = 57  # the demo catalog's track count


def rate(fn, batch: int, seconds: float) -> float:  # type: ignore[no-untyped-def]
    fn()  # warm-up
    done, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        fn()
        done += batch
    return done / (time.perf_counter() - started)


def train_step(batch: int) -> tuple[object, int]:
    model = CropClassifier(CLASSES)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    audio = torch.randn(batch, 64_000).clamp_(-1, 1)
    target = torch.randint(0, CLASSES, (batch,))
    loss_fn = nn.CrossEntropyLoss()

    def step() -> None:
        loss = loss_fn(model(audio), target)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    return step, batch


def frontend(batch: int) -> tuple[object, int]:
    mel = LogMel()
    audio = torch.randn(batch, 64_000)

    def step() -> None:
        with torch.no_grad():
            mel(audio)

    return step, batch


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=3.0)
    args = parser.parse_args()
    default_threads = torch.get_num_threads()
    rows: list[tuple[str, float]] = []

    def measure(name: str, make, batch: int, threads: int) -> float:  # type: ignore[no-untyped-def]
        torch.set_num_threads(threads)
        fn, b = make(batch)
        value = rate(fn, b, args.seconds)
        rows.append((name, value))
        return value

    anchor = measure(f"train step, batch 16, {default_threads} threads (anchor)", train_step, 16, default_threads)
    measure("train step, batch 8", train_step, 8, default_threads)
    measure("train step, batch 32", train_step, 32, default_threads)
    measure("train step, batch 16, 1 thread (one of 2 DDP ranks)", train_step, 16, 1)
    measure("log-mel front end only, batch 16", frontend, 16, default_threads)

    print(f"torch {torch.__version__}, {os.cpu_count()} CPUs, {default_threads} threads by default")
    print(f"{'case':58} {'samples/s':>10} {'x anchor':>9}")
    for name, value in rows:
        print(f"{name:58} {value:10.1f} {value / anchor:9.2f}")


if __name__ == "__main__":
    main()
