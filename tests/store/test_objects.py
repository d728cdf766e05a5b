import hashlib

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from store.objects import ObjectStore, ObjectStoreSettings, join


def _roundtrip(store: ObjectStore, base: str) -> None:
    uri = join(base, "dir", "a.bin")
    assert not store.exists(uri)
    store.put(uri, b"hello world")
    assert store.exists(uri) and store.size(uri) == 11
    assert store.get(uri) == b"hello world"
    store.put(uri, b"replaced")
    assert store.get(uri) == b"replaced"
    store.put(join(base, "dir", "b.bin"), b"b")
    assert store.list(join(base, "dir")) == [join(base, "dir", "a.bin"), join(base, "dir", "b.bin")]
    with store.open(uri) as handle:
        handle.seek(2)
        assert handle.read(3) == b"pla"
    digest, size = store.sha256(uri)
    assert size == 8 and digest == hashlib.sha256(b"replaced").hexdigest()
    store.delete(uri)
    assert not store.exists(uri)
    with pytest.raises(FileNotFoundError):
        store.get(uri)


def test_local_directory(tmp_path) -> None:
    _roundtrip(ObjectStore(), str(tmp_path))
    assert not [p for p in (tmp_path / "dir").iterdir() if p.name.startswith(".")]


def test_file_uri(tmp_path) -> None:
    store = ObjectStore()
    store.put(f"file://{tmp_path}/x.txt", b"x")
    assert (tmp_path / "x.txt").read_bytes() == b"x"


def test_s3_on_moto_server(s3_settings, s3_bucket) -> None:
    _roundtrip(ObjectStore(s3_settings), f"s3://{s3_bucket}/prefix")


def test_parquet_reads_through_ranged_s3_reader(s3_settings, s3_bucket, tmp_path) -> None:
    table = pa.table({"x": list(range(10_000))})
    pq.write_table(table, tmp_path / "t.parquet", row_group_size=1000)
    store = ObjectStore(s3_settings)
    store.put_file(f"s3://{s3_bucket}/t.parquet", tmp_path / "t.parquet")
    with store.open(f"s3://{s3_bucket}/t.parquet") as handle:
        pf = pq.ParquetFile(handle)
        assert pf.num_row_groups == 10
        assert pf.read_row_group(7).column("x").to_pylist()[0] == 7000


def test_settings_are_read_from_env_at_call_time(monkeypatch, s3_endpoint, s3_bucket) -> None:
    monkeypatch.setenv("LINERNOTES_S3_ENDPOINT_URL", s3_endpoint)
    monkeypatch.setenv("LINERNOTES_S3_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("LINERNOTES_S3_SECRET_ACCESS_KEY", "testing")
    assert ObjectStoreSettings.from_env().endpoint_url == s3_endpoint
    store = ObjectStore()
    store.put(f"s3://{s3_bucket}/env.txt", b"env")
    assert store.get(f"s3://{s3_bucket}/env.txt") == b"env"
