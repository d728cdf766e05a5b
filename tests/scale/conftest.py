"""A PostgreSQL server of the test's own: initdb into a temp dir, listening on 127.0.0.1 only."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

PG_BIN_DIRS = [Path(p) for p in os.environ.get("LINERNOTES_PG_BIN", "").split(os.pathsep) if p] + sorted(
    Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)
UNPRIVILEGED = "nobody"


def _pg_bin() -> Path | None:
    for directory in PG_BIN_DIRS:
        if (directory / "initdb").is_file() and (directory / "postgres").is_file():
            return directory
    found = shutil.which("initdb")
    return Path(found).parent if found and shutil.which("postgres") else None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _as_server_user(command: list[str]) -> list[str]:
    # initdb and postgres refuse to run as root; CI containers often are root.
    if os.geteuid() != 0:
        return command
    return ["runuser", "-u", UNPRIVILEGED, "--", *command]


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[tuple[str, int]]:
    """(host, port) of a fresh PostgreSQL with trust auth for user ``postgres``; stopped afterwards."""
    bin_dir = _pg_bin()
    if bin_dir is None:
        pytest.skip("PostgreSQL server binaries (initdb, postgres) are not installed; "
                    "install Debian's `postgresql` package (scripts/bootstrap.sh does as root)")
    workdir = Path(tempfile.mkdtemp(prefix="linernotes-pg-"))
    data = workdir / "data"
    if os.geteuid() == 0:
        import pwd

        user = pwd.getpwnam(UNPRIVILEGED)
        os.chown(workdir, user.pw_uid, user.pw_gid)
    env = {**os.environ, "LC_ALL": "C.UTF-8", "LANG": "C.UTF-8"}
    subprocess.run(_as_server_user([str(bin_dir / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust",
                                    "--encoding=UTF8", "--no-sync"]),
                   check=True, capture_output=True, env=env, cwd=workdir, timeout=120)
    port = _free_port()
    log = (workdir / "server.log").open("wb") if os.geteuid() != 0 else subprocess.DEVNULL
    proc = subprocess.Popen(_as_server_user([str(bin_dir / "postgres"), "-D", str(data), "-p", str(port),
                                             "-c", "listen_addresses=127.0.0.1", "-k", str(workdir),
                                             "-c", "fsync=off", "-c", "max_connections=200"]),
                            stdout=log, stderr=subprocess.STDOUT, env=env, cwd=workdir)
    deadline = time.monotonic() + 60
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                raise RuntimeError(f"postgres did not start (exit {proc.poll()})")
            time.sleep(0.2)
    import psycopg2

    for _ in range(50):
        try:
            psycopg2.connect(host="127.0.0.1", port=port, user="postgres", dbname="postgres").close()
            break
        except psycopg2.OperationalError:  # still starting up
            time.sleep(0.2)
    try:
        yield "127.0.0.1", port
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture()
def postgres_db(postgres_server: tuple[str, int]) -> str:
    """A new, empty database on the server; returns its name."""
    import uuid

    import psycopg2

    host, port = postgres_server
    name = f"dagster_{uuid.uuid4().hex[:10]}"
    con = psycopg2.connect(host=host, port=port, user="postgres", dbname="postgres")
    con.autocommit = True
    with con.cursor() as cur:
        cur.execute(f'CREATE DATABASE "{name}"')
    con.close()
    return name
