"""The reference trainer: which recording does a 4-second crop come from?

A small CNN over log-mel spectrograms computed on the fly with ``torch.stft`` and a mel filterbank
built here (no torchaudio). Track identification is measurable on any release (accuracy against
the number of tracks) and needs no labels beyond the release itself. Run it through the launcher:
``python -m torch.distributed.run ... -m training.reference`` with the spec in ``LINERNOTES_RUN_SPEC``.
"""

from __future__ import annotations

import math
import time

import torch
from torch import nn

from training.runtime import TrainingSession

SAMPLE_RATE = 16_000


def mel_filterbank(n_fft: int, n_mels: int, sample_rate: int = SAMPLE_RATE,
                   f_min: float = 30.0, f_max: float | None = None) -> torch.Tensor:
    """Triangular HTK-mel filters, shape ``[n_mels, n_fft // 2 + 1]``."""
    f_max = f_max or sample_rate / 2

    def hz_to_mel(hz: float) -> float:
        return 2595.0 * math.log10(1.0 + hz / 700.0)

    mels = torch.linspace(hz_to_mel(f_min), hz_to_mel(f_max), n_mels + 2)
    hz = 700.0 * (10 ** (mels / 2595.0) - 1.0)
    bins = torch.linspace(0, sample_rate / 2, n_fft // 2 + 1)
    lower, centre, upper = hz[:-2, None], hz[1:-1, None], hz[2:, None]
    rising = (bins[None, :] - lower) / (centre - lower)
    falling = (upper - bins[None, :]) / (upper - centre)
    return torch.clamp(torch.minimum(rising, falling), min=0.0)


class LogMel(nn.Module):
    """Waveform ``[batch, samples]`` -> normalised log-mel ``[batch, 1, mels, frames]``."""

    def __init__(self, n_fft: int = 512, hop: int = 256, n_mels: int = 64) -> None:
        super().__init__()
        self.n_fft, self.hop = n_fft, hop
        self.register_buffer("window", torch.hann_window(n_fft), persistent=False)
        self.register_buffer("filters", mel_filterbank(n_fft, n_mels), persistent=False)

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        spec = torch.stft(audio, self.n_fft, self.hop, window=self.window, return_complex=True)
        mel = torch.matmul(self.filters, spec.abs().pow(2))
        logmel = torch.log(mel + 1e-6)
        mean = logmel.mean(dim=(1, 2), keepdim=True)
        std = logmel.std(dim=(1, 2), keepdim=True) + 1e-5
        return ((logmel - mean) / std).unsqueeze(1)


class CropClassifier(nn.Module):
    """Log-mel front end, three conv blocks, global pooling, a linear head over the release's tracks."""

    def __init__(self, n_classes: int, width: int = 16) -> None:
        super().__init__()
        self.frontend = LogMel()
        blocks: list[nn.Module] = []
        channels = 1
        for out in (width, width * 2, width * 4):
            blocks += [nn.Conv2d(channels, out, 3, padding=1), nn.BatchNorm2d(out), nn.ReLU(), nn.MaxPool2d(2)]
            channels = out
        self.body = nn.Sequential(*blocks)
        self.head = nn.Linear(channels, n_classes)

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        features = self.body(self.frontend(audio))
        return self.head(features.mean(dim=(2, 3)))


def main() -> None:

    session = TrainingSession.from_env()
    labels = {track_id: i for i, track_id in enumerate(session.spec.labels)}
    if not labels:
        raise SystemExit("the run spec lists no tracks to classify")
    model = session.wrap(CropClassifier(len(labels)))
    optimizer = torch.optim.AdamW(model.parameters(), lr=float(session.config["learning_rate"]))
    loss_fn = nn.CrossEntropyLoss()
    session.restore(model, optimizer)
    for epoch in session.epochs():
        model.train()
        started = time.perf_counter()
        timed = 0
        for batch in session.batches(epoch):
            sums = session.epoch_state
            audio = batch["audio"].to(session.device, non_blocking=True)
            target = torch.tensor([labels[t] for t in batch["track_id"]], device=session.device)
            logits = model(audio)
            loss = loss_fn(logits, target)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            sums["loss"] = sums.get("loss", 0.0) + float(loss.detach()) * len(target)
            sums["correct"] = sums.get("correct", 0) + int((logits.argmax(dim=1) == target).sum())
            sums["seen"] = sums.get("seen", 0) + len(target)
            timed += len(target)
            session.maybe_checkpoint(model, optimizer)
        elapsed = time.perf_counter() - started
        sums = session.epoch_state
        loss_total, correct_total, seen_total, timed_total = session.all_reduce_sum(
            [sums.get("loss", 0.0), sums.get("correct", 0), sums.get("seen", 0), timed])
        session.end_epoch(
            epoch, model, optimizer,
            samples=int(seen_total),
            loss=loss_total / max(seen_total, 1),
            accuracy=correct_total / max(seen_total, 1),
            chance=1.0 / len(labels),
            samples_per_s=timed_total / elapsed if elapsed > 0 else 0.0,
        )
    session.save_model(model, architecture="reference-crop-classifier", classes=len(labels))
    session.close()


if __name__ == "__main__":
    main()
