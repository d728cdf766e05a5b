import boto3

from schemas.shards import ShardConfig
from shards.loader import ShardDataset, make_loader
from shards.verify import verify_manifest
from shards.writer import build_shards
from store.database import connect
from store.objects import ObjectStore
from tests.shards.ledger import make_release


def test_build_verify_and_load_on_s3(tmp_path, s3_settings, s3_bucket) -> None:
    release = make_release(tmp_path, seconds=[9.0, 13.0])
    store = ObjectStore(s3_settings)
    prefix = f"s3://{s3_bucket}/releases/{release.release_id}"
    with connect(release.db_path) as con:
        manifest = build_shards(con, release.release_id, output_uri=prefix, actor="ml@x", store=store,
                                config=ShardConfig(rows_per_shard=3, rows_per_row_group=2))
    client = boto3.client("s3", endpoint_url=s3_settings.endpoint_url, region_name="us-east-1",
                          aws_access_key_id="testing", aws_secret_access_key="testing")
    keys = sorted(o["Key"] for o in client.list_objects_v2(Bucket=s3_bucket)["Contents"])
    assert keys == sorted([f"releases/{release.release_id}/manifest.json"] +
                          [f"releases/{release.release_id}/{s.name}" for s in manifest.shards])

    assert verify_manifest(f"{prefix}/manifest.json", store=store).ok
    ds = ShardDataset(prefix, ledger_path=release.db_path, store=store, seed=1)
    ids = [i for b in make_loader(ds, batch_size=2, num_workers=2) for i in b["sample_id"]]
    assert len(ids) == manifest.total_rows == 5 and len(set(ids)) == 5

    client.put_object(Bucket=s3_bucket, Key=f"releases/{release.release_id}/{manifest.shards[0].name}", Body=b"x")
    report = verify_manifest(prefix, store=store)
    assert report.altered == (manifest.shards[0].name,)
