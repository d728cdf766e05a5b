"""Bring your own training script: a user-written model trained through the linernotes dataset.

Run it under the same launcher, gate and exposure log as the reference trainer::

    linernotes train --release REL --script examples/train_byo.py --epochs 2 --nproc 2 --actor you@label

Everything a script needs comes from :class:`training.runtime.TrainingSession`: batches from
verified shards of the approved release (``sample_id``, ``track_id``, ``isrc``, ``audio`` float32
``[batch, 64000]`` at 16 kHz), the device, data-parallel wrapping, checkpoints and resume. A batch
is recorded as consumed once the loop body that received it finishes, so the model card and the
attribution statement count exactly what this loop trained on. Never read shard files directly:
samples read around the session are neither gated nor attributed.
"""

from __future__ import annotations

import torch
from torch import nn

from training.reference import LogMel
from training.runtime import TrainingSession


class MelMeanClassifier(nn.Module):
    """Average log-mel spectrum -> two-layer MLP over the release's tracks."""

    def __init__(self, n_classes: int) -> None:
        super().__init__()
        self.frontend = LogMel(n_mels=40)
        self.mlp = nn.Sequential(nn.Linear(40, 64), nn.ReLU(), nn.Linear(64, n_classes))

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        return self.mlp(self.frontend(audio).mean(dim=3).flatten(1))


def main() -> None:
    session = TrainingSession.from_env()
    classes = {track_id: i for i, track_id in enumerate(session.spec.labels)}
    model = session.wrap(MelMeanClassifier(len(classes)))
    optimizer = torch.optim.SGD(model.parameters(), lr=float(session.config["learning_rate"]) * 10, momentum=0.9)
    session.restore(model, optimizer)
    for epoch in session.epochs():
        total_loss, seen = 0.0, 0
        for batch in session.batches(epoch):
            audio = batch["audio"].to(session.device)
            target = torch.tensor([classes[t] for t in batch["track_id"]], device=session.device)
            loss = nn.functional.cross_entropy(model(audio), target)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total_loss += float(loss) * len(target)
            seen += len(target)
            session.maybe_checkpoint(model, optimizer)
        loss_sum, count = session.all_reduce_sum([total_loss, seen])
        session.end_epoch(epoch, model, optimizer, loss=loss_sum / max(count, 1))
    session.save_model(model, architecture="byo-mel-mean-mlp")
    session.close()


if __name__ == "__main__":
    main()
