"""Shared fixtures: a real S3 endpoint (moto_server) on 127.0.0.1 for the whole session."""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.roles import write_test_roles


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """URL of a moto_server started for this test session."""
    port = _free_port()
    exe = Path(sys.executable).parent / "moto_server"
    cmd = [str(exe)] if exe.exists() else ([shutil.which("moto_server")] if shutil.which("moto_server") else
                                            [sys.executable, "-m", "moto.server"])
    proc = subprocess.Popen([*cmd, "-H", "127.0.0.1", "-p", str(port)],  # type: ignore[list-item]
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            urllib.request.urlopen(f"{url}/moto-api/", timeout=1).close()
            break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                raise RuntimeError("moto_server did not start")
            time.sleep(0.1)
    try:
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


@pytest.fixture()
def s3_settings(s3_endpoint: str, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    """ObjectStoreSettings for the session's moto server, with dummy credentials."""
    from store.objects import ObjectStoreSettings

    for name in ("AWS_PROFILE", "AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE"):
        monkeypatch.delenv(name, raising=False)
    return ObjectStoreSettings(endpoint_url=s3_endpoint, region_name="us-east-1",
                               access_key_id="testing", secret_access_key="testing")


@pytest.fixture()
def s3_bucket(s3_settings) -> str:  # type: ignore[no-untyped-def]
    """A fresh, empty bucket name on the moto server."""
    import uuid

    import boto3

    name = f"t-{uuid.uuid4().hex[:12]}"
    boto3.client("s3", endpoint_url=s3_settings.endpoint_url, region_name="us-east-1",
                 aws_access_key_id="testing", aws_secret_access_key="testing").create_bucket(Bucket=name)
    return name



@pytest.fixture(autouse=True)
def _test_roles(request: pytest.FixtureRequest) -> None:
    """Every test's tmp_path holds the test users' roles.yaml, so a ledger created there finds its roles.

    Tests that check refusals write their own roles file or pass ``roles=`` explicitly.
    """
    if "tmp_path" in request.fixturenames:
        write_test_roles(request.getfixturevalue("tmp_path"))
