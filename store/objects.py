"""Object storage for shards, manifests and checkpoints: local paths, ``file://`` and ``s3://`` URIs.

One small interface over two backends. Local writes go to a temporary file renamed into place;
S3 writes are single PUTs (or multipart uploads), which S3 makes visible only when complete, so
every :meth:`ObjectStore.put` is atomic: a reader sees the whole object or nothing.

S3 uses boto3 rather than ``pyarrow.fs.S3FileSystem``: boto3 clients can be created afresh in
each DataLoader worker after ``fork``, where the AWS C++ SDK inside pyarrow is known to hang.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any
from urllib.parse import urlparse

from pydantic import BaseModel, ConfigDict

_CHUNK = 8 * 1024 * 1024


class ObjectStoreSettings(BaseModel):
    """Where S3 lives and how to sign requests; empty fields fall back to boto3's own chain."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    endpoint_url: str | None = None
    region_name: str | None = None
    access_key_id: str | None = None
    secret_access_key: str | None = None
    session_token: str | None = None

    @classmethod
    def from_env(cls) -> "ObjectStoreSettings":
        """Read ``LINERNOTES_S3_*`` variables now (never at import time)."""
        env = os.environ
        return cls(
            endpoint_url=env.get("LINERNOTES_S3_ENDPOINT_URL") or None,
            region_name=env.get("LINERNOTES_S3_REGION") or None,
            access_key_id=env.get("LINERNOTES_S3_ACCESS_KEY_ID") or None,
            secret_access_key=env.get("LINERNOTES_S3_SECRET_ACCESS_KEY") or None,
            session_token=env.get("LINERNOTES_S3_SESSION_TOKEN") or None,
        )


def is_s3(uri: str) -> bool:
    return uri.startswith("s3://")


def join(base: str, *names: str) -> str:
    """Join path segments onto a directory URI or path."""
    out = base.rstrip("/")
    for name in names:
        out = f"{out}/{name.strip('/')}"
    return out


def parent(uri: str) -> str:
    """The directory URI holding ``uri``."""
    return uri.rstrip("/").rsplit("/", 1)[0]


def _local_path(uri: str) -> Path:
    if uri.startswith("file://"):
        return Path(urlparse(uri).path)
    return Path(uri)


def _split_s3(uri: str) -> tuple[str, str]:
    parsed = urlparse(uri)
    return parsed.netloc, parsed.path.lstrip("/")


class ObjectStore:
    """Put, get, open, list and check objects by URI; the backend is chosen per URI."""

    def __init__(self, settings: ObjectStoreSettings | None = None) -> None:
        self.settings = settings
        self._client: Any = None
        self._client_pid: int | None = None

    def __getstate__(self) -> dict[str, Any]:
        # Clients hold sockets and locks: each process builds its own.
        return {"settings": self.settings, "_client": None, "_client_pid": None}

    def _s3(self) -> Any:
        # A client must not cross a fork: DataLoader workers build their own.
        if self._client is None or self._client_pid != os.getpid():
            import boto3
            from botocore.config import Config

            settings = self.settings or ObjectStoreSettings.from_env()
            self._client = boto3.session.Session().client(
                "s3",
                endpoint_url=settings.endpoint_url,
                region_name=settings.region_name or "us-east-1",
                aws_access_key_id=settings.access_key_id,
                aws_secret_access_key=settings.secret_access_key,
                aws_session_token=settings.session_token,
                config=Config(retries={"max_attempts": 5, "mode": "standard"}),
            )
            self._client_pid = os.getpid()
        return self._client

    def put(self, uri: str, data: bytes | memoryview | Any, *, fsync: bool = True) -> None:
        """Write ``data`` at ``uri`` atomically, replacing what was there.

        With ``fsync=False`` a local write is atomic but not yet durable: call :meth:`sync` before
        publishing anything that refers to it.
        """
        if is_s3(uri):
            bucket, key = _split_s3(uri)
            self._s3().put_object(Bucket=bucket, Key=key, Body=data if isinstance(data, bytes) else bytes(memoryview(data)))
            return
        path = _local_path(uri)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                if fsync:
                    os.fsync(handle.fileno())
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        if fsync:
            _fsync_dir(path.parent)

    atomic_write = put

    def sync(self, uris: list[str]) -> None:
        """Make earlier ``put(..., fsync=False)`` writes durable (S3 objects already are)."""
        dirs: set[Path] = set()
        for uri in uris:
            if is_s3(uri):
                continue
            path = _local_path(uri)
            fd = os.open(path, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
            dirs.add(path.parent)
        for directory in dirs:
            _fsync_dir(directory)

    def put_file(self, uri: str, source: str | os.PathLike[str]) -> None:
        """Copy a local file to ``uri`` atomically (multipart for large files on S3)."""
        if is_s3(uri):
            bucket, key = _split_s3(uri)
            self._s3().upload_file(str(source), bucket, key)
            return
        self.put(uri, Path(source).read_bytes())

    def get(self, uri: str) -> bytes:
        """The whole object; raises FileNotFoundError when absent."""
        if is_s3(uri):
            bucket, key = _split_s3(uri)
            client = self._s3()
            try:
                return bytes(client.get_object(Bucket=bucket, Key=key)["Body"].read())
            except client.exceptions.NoSuchKey as exc:
                raise FileNotFoundError(uri) from exc
        return _local_path(uri).read_bytes()

    def open(self, uri: str) -> IO[bytes]:
        """A seekable binary reader (ranged GETs on S3), e.g. for ``pyarrow.parquet.ParquetFile``."""
        if is_s3(uri):
            bucket, key = _split_s3(uri)
            size = self.size(uri)
            return io.BufferedReader(_S3RangeReader(self._s3(), bucket, key, size), buffer_size=1024 * 1024)
        return open(_local_path(uri), "rb")

    def size(self, uri: str) -> int:
        if is_s3(uri):
            bucket, key = _split_s3(uri)
            client = self._s3()
            try:
                return int(client.head_object(Bucket=bucket, Key=key)["ContentLength"])
            except client.exceptions.ClientError as exc:
                if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                    raise FileNotFoundError(uri) from exc
                raise
        return _local_path(uri).stat().st_size

    def exists(self, uri: str) -> bool:
        try:
            self.size(uri)
        except FileNotFoundError:
            return False
        return True

    def sha256(self, uri: str) -> tuple[str, int]:
        """Stream the object through SHA-256; returns (hex digest, bytes read)."""
        digest = hashlib.sha256()
        total = 0
        if is_s3(uri):
            bucket, key = _split_s3(uri)
            client = self._s3()
            try:
                body = client.get_object(Bucket=bucket, Key=key)["Body"]
            except client.exceptions.NoSuchKey as exc:
                raise FileNotFoundError(uri) from exc
            for chunk in body.iter_chunks(_CHUNK):
                digest.update(chunk)
                total += len(chunk)
            return digest.hexdigest(), total
        with open(_local_path(uri), "rb") as handle:
            while chunk := handle.read(_CHUNK):
                digest.update(chunk)
                total += len(chunk)
        return digest.hexdigest(), total

    def list(self, prefix_uri: str) -> list[str]:
        """URIs of the objects directly under a directory URI, sorted."""
        return sorted(self._iter_list(prefix_uri))

    def _iter_list(self, prefix_uri: str) -> Iterator[str]:
        if is_s3(prefix_uri):
            bucket, key = _split_s3(prefix_uri)
            prefix = key.rstrip("/") + "/" if key else ""
            paginator = self._s3().get_paginator("list_objects_v2")
            for page in paginator.paginate(Bucket=bucket, Prefix=prefix, Delimiter="/"):
                for item in page.get("Contents", []):
                    yield f"s3://{bucket}/{item['Key']}"
            return
        directory = _local_path(prefix_uri)
        if not directory.is_dir():
            return
        for entry in directory.iterdir():
            if entry.is_file():
                yield join(prefix_uri, entry.name)

    def walk(self, prefix_uri: str) -> list[str]:
        """URIs of every object below a directory URI, at any depth, sorted."""
        return sorted(self._walk_sized(prefix_uri))

    def _walk_sized(self, prefix_uri: str) -> dict[str, int]:
        if is_s3(prefix_uri):
            bucket, key = _split_s3(prefix_uri)
            prefix = key.rstrip("/") + "/" if key else ""
            paginator = self._s3().get_paginator("list_objects_v2")
            return {f"s3://{bucket}/{item['Key']}": int(item["Size"])
                    for page in paginator.paginate(Bucket=bucket, Prefix=prefix) for item in page.get("Contents", [])}
        directory = _local_path(prefix_uri)
        if not directory.is_dir():
            return {}
        return {join(prefix_uri, p.relative_to(directory).as_posix()): p.stat().st_size
                for p in directory.rglob("*") if p.is_file()}

    def download_tree(self, prefix_uri: str, target: str | os.PathLike[str]) -> list[Path]:
        """Copy every object below ``prefix_uri`` into ``target`` (same relative paths); return the files.

        Objects already present with the same size are kept, so staging again is a listing.
        Names that would land outside ``target`` are refused.
        """
        root = Path(target).resolve()
        base = prefix_uri.rstrip("/") + "/"
        files = []
        for uri, size in sorted(self._walk_sized(prefix_uri).items()):
            relative = uri[len(base):]
            dest = (root / relative).resolve()
            if not dest.is_relative_to(root):
                raise ValueError(f"object {uri} would be written outside {root}")
            if not (dest.is_file() and dest.stat().st_size == size):
                dest.parent.mkdir(parents=True, exist_ok=True)
                if is_s3(uri):
                    bucket, key = _split_s3(uri)
                    tmp = dest.with_name(f".{dest.name}.part")
                    self._s3().download_file(bucket, key, str(tmp))
                    os.replace(tmp, dest)
                else:
                    self.put(str(dest), self.get(uri), fsync=False)
            files.append(dest)
        return files

    def upload_tree(self, source: str | os.PathLike[str], prefix_uri: str) -> list[str]:
        """Copy every file below a local directory to ``prefix_uri`` (same relative paths); return the URIs."""
        root = Path(source)
        uris = []
        for path in sorted(p for p in root.rglob("*") if p.is_file()):
            uri = join(prefix_uri, path.relative_to(root).as_posix())
            self.put_file(uri, path)
            uris.append(uri)
        return uris

    def delete(self, uri: str) -> None:
        """Remove the object; absent objects are not an error."""
        if is_s3(uri):
            bucket, key = _split_s3(uri)
            self._s3().delete_object(Bucket=bucket, Key=key)
            return
        with contextlib.suppress(OSError):
            _local_path(uri).unlink()

    def erase(self, uri: str, *, keep_current: bool = False) -> int:
        """Remove the object's bytes for good: on S3 every stored version and delete marker of the key
        (a versioned bucket keeps old versions after a plain delete); ``keep_current`` spares the latest
        version. Returns how many versions (or files) were removed."""
        if not is_s3(uri):
            if keep_current:
                return 0
            path = _local_path(uri)
            existed = path.exists()
            with contextlib.suppress(OSError):
                path.unlink()
            return int(existed)
        bucket, key = _split_s3(uri)
        client = self._s3()
        removed = 0
        for page in client.get_paginator("list_object_versions").paginate(Bucket=bucket, Prefix=key):
            for item in [*page.get("Versions", []), *page.get("DeleteMarkers", [])]:
                if item["Key"] != key or (keep_current and item.get("IsLatest")):
                    continue
                client.delete_object(Bucket=bucket, Key=key, VersionId=item["VersionId"])
                removed += 1
        return removed

    def local_path(self, uri: str) -> Path | None:
        """The filesystem path behind a local URI, or None for remote objects."""
        return None if is_s3(uri) else _local_path(uri)


class _S3RangeReader(io.RawIOBase):
    def __init__(self, client: Any, bucket: str, key: str, size: int) -> None:
        self._client, self._bucket, self._key, self._size = client, bucket, key, size
        self._pos = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._size}[whence]
        self._pos = max(0, base + offset)
        return self._pos

    def readinto(self, buffer: Any) -> int:
        want = min(len(buffer), self._size - self._pos)
        if want <= 0:
            return 0
        end = self._pos + want - 1
        body = self._client.get_object(Bucket=self._bucket, Key=self._key, Range=f"bytes={self._pos}-{end}")["Body"]
        data = body.read()
        buffer[: len(data)] = data
        self._pos += len(data)
        return len(data)


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
