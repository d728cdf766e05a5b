import json

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch

from licensing.gate import ReleaseRefused
from schemas.shards import Acknowledgement, ShardConfig
from shards.loader import ShardDataset, ShardIntegrityError, make_loader
from shards.writer import build_shards
from store.database import connect
from store.roles import RoleRefused
from tests.shards.ledger import deny_since, isrc_for, make_release, set_status


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("loader")
    # 6 tracks x 4 crops, minus one 5 s track with a single crop: 21 samples over 4 shards.
    release = make_release(tmp, seconds=[17.0, 17.0, 5.0, 17.0, 17.0, 17.0])
    out = tmp / "out"
    with connect(release.db_path) as con:
        manifest = build_shards(con, release.release_id, output_uri=str(out),
                                config=ShardConfig(rows_per_shard=6, rows_per_row_group=2, crops_per_track=4),
                                actor="ml@x")
    assert manifest.total_rows == 21
    return release, out, manifest


def _ids(dataset, **kw) -> list[str]:
    out: list[str] = []
    for batch in make_loader(dataset, **kw):
        out.extend(batch["sample_id"])
    return out


def _all_ids(manifest, out) -> set[str]:
    ids: set[str] = set()
    for s in manifest.shards:
        ids.update(pq.read_table(out / s.name, columns=["sample_id"]).column("sample_id").to_pylist())
    return ids


@pytest.mark.parametrize("workers", [0, 2])
def test_ranks_and_workers_split_every_sample_exactly_once(built, workers) -> None:
    release, out, manifest = built
    seen: list[str] = []
    sizes = []
    for rank in range(4):
        ds = ShardDataset(str(out), seed=3, rank=rank, world_size=4, ledger_path=release.db_path)
        ids = _ids(ds, batch_size=2, num_workers=workers)
        sizes.append(len(ids))
        seen.extend(ids)
    assert sorted(seen) == sorted(_all_ids(manifest, out))
    assert len(seen) == len(set(seen))
    assert sorted(sizes) == [5, 5, 5, 6]


def test_shuffle_is_deterministic_per_seed_and_epoch(built) -> None:
    release, out, _ = built

    def order(seed, epoch, shuffle=True):
        return [s["sample_id"] for s in ShardDataset(str(out), seed=seed, epoch=epoch, ledger_path=release.db_path,
                                                     shuffle=shuffle)]

    assert order(1, 0) == order(1, 0)
    assert order(1, 0) != order(1, 1)
    assert order(1, 0) != order(2, 0)
    assert sorted(order(1, 0)) == sorted(order(1, 1))
    plain = order(1, 0, shuffle=False)
    assert plain == sorted(plain)
    ds = ShardDataset(str(out), seed=1, ledger_path=release.db_path)
    ds.set_epoch(1)
    assert [s["sample_id"] for s in ds] == order(1, 1)


def test_samples_are_float_audio_scaled_from_the_stored_pcm(built) -> None:
    release, out, manifest = built
    sample = next(iter(ShardDataset(str(out), ledger_path=release.db_path, shuffle=False)))
    row = pq.read_table(out / manifest.shards[0].name).slice(0, 1).to_pylist()[0]
    assert sample["sample_id"] == row["sample_id"] and sample["isrc"] == row["isrc"]
    assert sample["audio"].dtype == torch.float32 and sample["audio"].shape == (64000,)
    expected = np.frombuffer(row["audio"], dtype="<i2").astype(np.float32) / 32768.0
    assert np.array_equal(sample["audio"].numpy(), expected)
    assert float(sample["audio"].abs().max()) > 0.1


def _batches(loader) -> list[list[str]]:
    return [list(b["sample_id"]) for b in loader]


def test_mid_epoch_resume_without_workers_continues_exactly(built) -> None:
    release, out, _ = built
    full = _batches(make_loader(ShardDataset(str(out), seed=5, ledger_path=release.db_path), batch_size=3, num_workers=0))
    ds = ShardDataset(str(out), seed=5, ledger_path=release.db_path)
    it = iter(make_loader(ds, batch_size=3, num_workers=0))
    first = [list(next(it)["sample_id"]) for _ in range(3)]
    state = ds.state_dict()
    assert state["consumed_count"] == 9
    resumed = ShardDataset(str(out), seed=5, ledger_path=release.db_path)
    resumed.load_state_dict(state)
    rest = _batches(make_loader(resumed, batch_size=3, num_workers=0))
    assert first + rest == full


def test_mid_epoch_resume_with_workers_continues_exactly(built) -> None:
    release, out, _ = built
    full = _batches(make_loader(ShardDataset(str(out), seed=5, ledger_path=release.db_path), batch_size=2, num_workers=2))
    ds = ShardDataset(str(out), seed=5, ledger_path=release.db_path)
    taken = []
    for batch in make_loader(ds, batch_size=2, num_workers=2):
        ds.mark_consumed(batch["sample_id"])
        taken.append(list(batch["sample_id"]))
        if len(taken) == 3:
            break
    resumed = ShardDataset(str(out), seed=5, ledger_path=release.db_path)
    resumed.load_state_dict(ds.state_dict())
    rest = _batches(make_loader(resumed, batch_size=2, num_workers=2))
    assert taken + rest == full


def test_state_from_another_split_is_refused(built) -> None:
    release, out, _ = built
    state = ShardDataset(str(out), seed=5, ledger_path=release.db_path).state_dict()
    other = ShardDataset(str(out), seed=6, ledger_path=release.db_path)
    with pytest.raises(ValueError):
        other.load_state_dict(state)


def test_altered_shard_is_refused_before_serving(tmp_path) -> None:
    release = make_release(tmp_path, seconds=[9.0, 9.0])
    with connect(release.db_path) as con:
        manifest = build_shards(con, release.release_id, output_uri=str(tmp_path / "out"),
                                config=ShardConfig(rows_per_shard=2), actor="ml@x")
    path = tmp_path / "out" / manifest.shards[-1].name
    path.write_bytes(path.read_bytes()[:-10] + b"0123456789")
    with pytest.raises(ShardIntegrityError, match=manifest.shards[-1].name):
        ShardDataset(str(tmp_path / "out"), ledger_path=release.db_path)


def test_revoked_release_is_refused_unless_acknowledged_by_someone_who_may_train_and_recorded(tmp_path) -> None:
    release = make_release(tmp_path, seconds=[9.0])
    with connect(release.db_path) as con:
        build_shards(con, release.release_id, output_uri=str(tmp_path / "out"), actor="ml@x")
    set_status(release.db_path, release.release_id, "revoked")
    with pytest.raises(ReleaseRefused, match="release_revoked"):
        ShardDataset(str(tmp_path / "out"), ledger_path=release.db_path)
    with pytest.raises(RoleRefused):  # an auditor may read the ledger, not train past a revocation
        ShardDataset(str(tmp_path / "out"), ledger_path=release.db_path,
                     acknowledge=Acknowledgement(actor="auditor@x", reason="reproduce the revoked run"))
    ds = ShardDataset(str(tmp_path / "out"), ledger_path=release.db_path,
                      acknowledge=Acknowledgement(actor="ml@x", reason="reproduce the revoked run"))
    assert len(list(ds)) == 2
    with connect(release.db_path) as con:
        assert con.execute("SELECT actor, context, subject, overridden FROM shard_acknowledgements").fetchall() == [
            ("ml@x", "load", "out/manifest.json", ["release_revoked"])]
        action, payload = con.execute("SELECT action, payload FROM audit_log WHERE actor = 'ml@x' "
                                      "ORDER BY seq DESC LIMIT 1").fetchone()
    assert action == "train.start" and json.loads(payload)["acknowledgement"]["context"] == "load"


def test_track_denied_since_build_is_refused_or_left_out_under_acknowledgement(tmp_path) -> None:
    release = make_release(tmp_path, seconds=[9.0, 9.0, 9.0])
    with connect(release.db_path) as con:
        build_shards(con, release.release_id, output_uri=str(tmp_path / "out"), actor="ml@x")
    deny_since(release.db_path, release.track_ids[0], isrc_for(0))
    with pytest.raises(ReleaseRefused, match="denied_since_approval"):
        ShardDataset(str(tmp_path / "out"), ledger_path=release.db_path)
    ds = ShardDataset(str(tmp_path / "out"), ledger_path=release.db_path,
                      acknowledge=Acknowledgement(actor="ml@x", reason="continue without the withdrawn track"))
    served = [s["track_id"] for s in ds]
    assert len(served) == 4 and release.track_ids[0] not in served


def test_no_ledger_means_no_serving(built, tmp_path) -> None:
    _, out, _ = built
    with pytest.raises(ReleaseRefused):
        ShardDataset(str(out), ledger_path=tmp_path / "absent.duckdb")
