"""What a training process sees inside ``torchrun``: its data, its exposure log, its checkpoints.

The reference trainer and user scripts both go through :class:`TrainingSession`, so gating
(the linernotes dataset), exposure and resume behave the same whoever wrote the loop::

    session = TrainingSession.from_env()
    model = session.wrap(MyModel())
    optimizer = torch.optim.AdamW(model.parameters())
    session.restore(model, optimizer)
    for epoch in session.epochs():
        for batch in session.batches(epoch):
            ...; optimizer.step()
            session.maybe_checkpoint(model, optimizer)
        session.end_epoch(epoch, model, optimizer, loss=...)
    session.save_model(model)

A batch counts as consumed (and is written to the exposure log) once the loop body that received
it has finished, i.e. when the next batch is asked for or a checkpoint is taken.
"""

from __future__ import annotations

import json
import os
import signal
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch.utils.data import DataLoader

from schemas.shards import Acknowledgement
from shards.exposure import ExposureRecorder
from shards.loader import ShardDataset

SPEC_ENV = "LINERNOTES_RUN_SPEC"
KILL_AT_STEP_ENV = "LINERNOTES_TRAIN_KILL_AT_STEP"


@dataclass(frozen=True)
class RunSpec:
    """Everything a training process needs, written by the launcher; the ledger itself stays closed."""

    run_id: str
    run_dir: str
    manifest_uri: str
    ledger_path: str
    actor: str
    config: dict[str, Any]
    labels: list[str] = field(default_factory=list)
    acknowledge: str | None = None
    resume: bool = False

    def write(self, path: Path) -> None:
        path.write_text(json.dumps(self.__dict__, indent=2, sort_keys=True), encoding="utf-8")

    @classmethod
    def read(cls, path: str | os.PathLike[str]) -> "RunSpec":
        return cls(**json.loads(Path(path).read_text(encoding="utf-8")))


class TrainingSession:
    """One rank of a run: process group, device, dataset per epoch, exposure, checkpoints, metrics."""

    def __init__(self, spec: RunSpec) -> None:
        self.spec = spec
        self.config = spec.config
        self.run_dir = Path(spec.run_dir)
        self.rank = int(os.environ.get("RANK", "0"))
        self.world_size = int(os.environ.get("WORLD_SIZE", "1"))
        self.local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        if torch.cuda.is_available():
            torch.cuda.set_device(self.local_rank)
            self.device = torch.device("cuda", self.local_rank)
            backend = "nccl"
        else:
            self.device = torch.device("cpu")
            backend = "gloo"
        if self.world_size > 1 and not dist.is_initialized():
            dist.init_process_group(backend=backend)

        self.exposure = ExposureRecorder(self.run_dir / "exposure", run_id=spec.run_id, rank=self.rank)
        self._kill_at = int(os.environ[KILL_AT_STEP_ENV]) if os.environ.get(KILL_AT_STEP_ENV) else None
        self.global_step = 0
        self.start_epoch = 0
        self._epoch = 0
        self._step_in_epoch = 0
        self._resume: dict[str, Any] | None = None
        self._dataset: ShardDataset | None = None
        self._pending: list[str] | None = None
        self.samples_consumed = 0
        # Running sums a loop keeps for its epoch metrics; checkpointed so a resumed epoch reports the whole epoch.
        self.epoch_state: dict[str, float] = {}
        torch.manual_seed(int(self.config["seed"]))

    @classmethod
    def from_env(cls) -> "TrainingSession":
        """The session of the current ``torchrun`` process, from the spec the launcher wrote."""
        path = os.environ.get(SPEC_ENV)
        if not path:
            raise RuntimeError(f"{SPEC_ENV} is not set: start training with `linernotes train`")
        return cls(RunSpec.read(path))

    @property
    def checkpoint_path(self) -> Path:
        return self.run_dir / "checkpoints" / "last.pt"

    @property
    def model_path(self) -> Path:
        return self.run_dir / "model.pt"

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def wrap(self, model: torch.nn.Module) -> torch.nn.Module:
        """Move a model to this rank's device and wrap it for data-parallel training."""
        torch.manual_seed(int(self.config["seed"]))
        model = model.to(self.device)
        if self.world_size > 1:
            from torch.nn.parallel import DistributedDataParallel

            ids = [self.local_rank] if self.device.type == "cuda" else None
            model = DistributedDataParallel(model, device_ids=ids)
        return model

    def restore(self, model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> None:
        """On a resumed run, load the last checkpoint and drop exposure recorded after it."""
        if not self.spec.resume:
            return
        step = 0
        if self.checkpoint_path.exists():
            state = torch.load(self.checkpoint_path, map_location=self.device, weights_only=False)
            _unwrap(model).load_state_dict(state["model"])
            optimizer.load_state_dict(state["optimizer"])
            step = int(state["global_step"])
            self.global_step = step
            self.samples_consumed = int(state["samples_consumed"][self.rank])
            self.start_epoch = int(state["epoch"]) + (1 if state["epoch_done"] else 0)
            if not state["epoch_done"]:
                self._resume = {"epoch": int(state["epoch"]), "step_in_epoch": int(state["step_in_epoch"]),
                                "loader": state["loader"][self.rank],
                                "epoch_state": state["epoch_state"][self.rank]}
            torch.set_rng_state(state["rng"][self.rank].cpu())
        self.exposure.rollback_to(step)

    def epochs(self) -> range:
        return range(self.start_epoch, int(self.config["epochs"]))

    def dataset(self, epoch: int) -> ShardDataset:
        """The linernotes dataset for this rank: verified shards of the approved release, re-gated on open."""
        if self._dataset is None:

            ack = Acknowledgement(actor=self.spec.actor, reason=self.spec.acknowledge) if self.spec.acknowledge else None
            self._dataset = ShardDataset(
                self.spec.manifest_uri, seed=int(self.config["seed"]), epoch=epoch, rank=self.rank,
                world_size=self.world_size, ledger_path=self.spec.ledger_path, acknowledge=ack,
                shuffle=bool(self.config.get("shuffle", True)))
        self._dataset.set_epoch(epoch)
        return self._dataset

    def batches(self, epoch: int) -> Iterator[dict[str, Any]]:
        """This rank's batches for ``epoch``, stopping together on all ranks when any runs dry."""
        dataset = self.dataset(epoch)
        self._epoch, self._step_in_epoch = epoch, 0
        self.epoch_state = {}
        exhausted = False
        if self._resume is not None and self._resume["epoch"] == epoch:
            self._step_in_epoch = self._resume["step_in_epoch"]
            self.epoch_state = dict(self._resume["epoch_state"])
            state = self._resume["loader"]
            dataset.load_state_dict(state)
            # This rank had served its whole share when the checkpoint was taken: the epoch ended there
            # for every rank (the loader would otherwise replay a finished epoch from the start).
            exhausted = int(state["consumed_count"]) >= int(state["num_samples"])
            self._resume = None
        workers = int(self.config.get("loader_workers", 0))
        loader = DataLoader(dataset, batch_size=int(self.config["batch_size"]), num_workers=workers,
                            pin_memory=self.device.type == "cuda", prefetch_factor=4 if workers else None)
        iterator = iter(loader)
        while True:
            self._commit()
            self._maybe_die()
            batch = None if exhausted else next(iterator, None)
            if not self._all_ranks_have(batch is not None) or batch is None:
                break
            self._pending = list(batch["sample_id"])
            yield batch
        self._commit()

    def _all_ranks_have(self, has: bool) -> bool:
        if self.world_size == 1:
            return has
        flag = torch.tensor([1 if has else 0], device=self.device)
        dist.all_reduce(flag, op=dist.ReduceOp.MIN)
        return bool(flag.item())

    def _commit(self) -> None:
        if self._pending is None:
            return
        self.global_step += 1
        self._step_in_epoch += 1
        self.exposure.record(self._epoch, self.global_step, self._pending)
        if self._dataset is not None and int(self.config.get("loader_workers", 0)) > 0:
            # Worker processes cannot tell the dataset what was consumed; the loop does (for resume).
            self._dataset.mark_consumed(self._pending)
        self.samples_consumed += len(self._pending)
        self._pending = None

    def _maybe_die(self) -> None:
        if self._kill_at is not None and self.global_step == self._kill_at:
            # Crash-recovery hook: die once step N (and any checkpoint due at N) is written, the way an
            # OOM kill or a lost node does, without cleanup.
            os.kill(os.getpid(), signal.SIGKILL)

    def maybe_checkpoint(self, model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> None:
        """Checkpoint every ``checkpoint_every`` optimizer steps."""
        self._commit()
        if self.global_step % int(self.config["checkpoint_every"]) == 0:
            self.checkpoint(model, optimizer)
        self._maybe_die()

    def checkpoint(self, model: torch.nn.Module, optimizer: torch.optim.Optimizer, *, epoch_done: bool = False) -> None:
        """Save model, optimizer, every rank's loader position and RNG, atomically (rank 0 writes)."""
        self._commit()
        loader_state = None
        if self._dataset is not None and not epoch_done:
            loader_state = self._dataset.state_dict()
        mine = {"loader": loader_state, "rng": torch.get_rng_state(), "samples": self.samples_consumed,
                "epoch_state": dict(self.epoch_state)}
        gathered: list[Any] = [mine]
        if self.world_size > 1:
            gathered = [None] * self.world_size
            dist.all_gather_object(gathered, mine)
        if self.is_main:
            state = {
                "model": _unwrap(model).state_dict(), "optimizer": optimizer.state_dict(),
                "epoch": self._epoch, "epoch_done": epoch_done, "step_in_epoch": self._step_in_epoch,
                "global_step": self.global_step, "loader": [g["loader"] for g in gathered],
                "rng": [g["rng"] for g in gathered], "samples_consumed": [g["samples"] for g in gathered],
                "epoch_state": [g["epoch_state"] for g in gathered],
                "config": self.config,
            }
            self.checkpoint_path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.checkpoint_path.with_suffix(".tmp")
            torch.save(state, tmp)
            os.replace(tmp, self.checkpoint_path)
        self.barrier()

    def end_epoch(self, epoch: int, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
                  **metrics: float) -> None:
        """Log the epoch's metrics (rank 0) and checkpoint at the epoch boundary."""
        self._commit()
        if self.is_main:
            row = {"epoch": epoch, "steps": self._step_in_epoch, **metrics}
            with (self.run_dir / "metrics.jsonl").open("a", encoding="utf-8") as out:
                out.write(json.dumps(row, sort_keys=True) + "\n")
        self.checkpoint(model, optimizer, epoch_done=True)

    def all_reduce_sum(self, values: list[float]) -> list[float]:
        """Sum numbers across ranks (for epoch metrics)."""
        tensor = torch.tensor(values, dtype=torch.float64, device=self.device)
        if self.world_size > 1:
            dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
        return [float(v) for v in tensor.tolist()]

    def save_model(self, model: torch.nn.Module, **metadata: Any) -> None:
        """Write the final weights (rank 0) with the run id and label map beside them."""
        if self.is_main:
            tmp = self.model_path.with_suffix(".tmp")
            torch.save({"run_id": self.spec.run_id, "labels": self.spec.labels,
                        "state_dict": _unwrap(model).state_dict(), **metadata}, tmp)
            os.replace(tmp, self.model_path)
            device = {"device": str(self.device), "name": torch.cuda.get_device_name(self.device)
                      if self.device.type == "cuda" else "cpu"}
            (self.run_dir / "device.json").write_text(json.dumps(device), encoding="utf-8")
        self.barrier()

    def barrier(self) -> None:
        if self.world_size > 1:
            dist.barrier()

    def close(self) -> None:
        self._commit()
        if self.world_size > 1 and dist.is_initialized():
            dist.destroy_process_group()


def _unwrap(model: torch.nn.Module) -> torch.nn.Module:
    return model.module if hasattr(model, "module") else model
