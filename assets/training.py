"""Stage 6, train: a PyTorch run launched with torchrun, reading only approved, verified shards."""

import dagster as dg
from pydantic import Field

from assets.shards import release_shards
from dagster_project.partitions import training_runs
from dagster_project.resources import LedgerResource
from schemas.runs import TrainConfig
from store.audit import last_entry
from training.launcher import TrainingFailed, TrainingRefused, launch_run


class TrainingRunConfig(dg.Config):
    release: str = Field(description="The approved release to train on.")
    started_by: str = Field(description="The ML engineer starting the run.")
    model: str = "reference"
    epochs: int = 2
    batch_size: int = 8
    learning_rate: float = 1e-3
    seed: int = 0
    nproc: int = 2
    acknowledge_denied: str | None = Field(default=None, description="Train even though tracks were denied "
                                                                      "since approval; the reason is recorded.")


@dg.asset(partitions_def=training_runs, group_name="train", kinds={"pytorch"},
          deps=[dg.AssetDep(release_shards, partition_mapping=dg.AllPartitionMapping())])
def training_run(context: dg.AssetExecutionContext, config: TrainingRunConfig,
                 ledger: LedgerResource) -> dg.MaterializeResult:
    """A training run: gated on rights, distributed over torchrun, exposure recorded per sample."""

    train_config = TrainConfig(
        release_id=config.release, model=config.model, epochs=config.epochs, batch_size=config.batch_size,
        learning_rate=config.learning_rate, seed=config.seed, nproc=config.nproc,
    )
    home = ledger.data_home()
    try:
        record = launch_run(home.db_path, run_id=context.partition_key, config=train_config,
                            actor=ledger.principal(config.started_by), acknowledge=config.acknowledge_denied, runs_dir=home.runs,
                            publish_uri=ledger.publish_uri(context.partition_key))
    except TrainingRefused as exc:
        raise dg.Failure(f"training refused: {exc}") from exc
    except TrainingFailed as exc:
        raise dg.Failure(f"training failed: {exc}") from exc
    with ledger.connect(read_only=True) as con:
        audit = last_entry(con, subject=record.run_id)
    return dg.MaterializeResult(metadata={
        "run_id": record.run_id, "manifest_uri": record.manifest_uri, "manifest_sha256": record.manifest_sha256,
        **audit,
        "release": record.release_id, "status": record.status, "device": record.device,
        "samples_consumed": record.samples_consumed, "checkpoint_uri": record.checkpoint_uri,
        "checkpoint_sha256": record.checkpoint_sha256,
        "metrics": [m.model_dump(mode="json") for m in record.metrics],
    })
