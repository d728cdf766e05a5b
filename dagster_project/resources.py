"""Dagster resources: the data directory, its ledger and its object root."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import duckdb
from pydantic import Field

from store.database import connect
from store.home import Home
from store.objects import ObjectStore
from store.roles import Principal


class LedgerResource(dg.ConfigurableResource):
    """The linernotes data directory (``LINERNOTES_HOME`` when unset), its DuckDB ledger and its objects.

    ``objects`` (``LINERNOTES_OBJECTS`` when unset) moves deliveries, shards and checkpoints to an
    ``s3://bucket/prefix``; the endpoint and credentials come from ``LINERNOTES_S3_*``.
    """

    home: str | None = None
    objects: str | None = None
    service_account: str = Field(default="linernotes-pipeline",
                                 description="The account this code location acts as: a `service: true` user "
                                             "of roles.yaml with the `pipeline` role.")

    def principal(self, on_behalf_of: str | None = None) -> Principal:
        """Who a step acts as: the service account, or a person a run's config names (their roles are checked,
        and the record says the service vouched for them)."""
        if on_behalf_of:
            return Principal(name=on_behalf_of, method="service_for", via=self.service_account)
        return Principal(name=self.service_account, method="service")

    def data_home(self) -> Home:
        return Home.from_env(self.home, self.objects).ensure()

    @contextlib.contextmanager
    def connect(self, *, read_only: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:
        """A short-lived ledger connection; steps in other processes wait their turn on the file lock."""
        with connect(self.data_home().db_path, read_only=read_only) as con:
            yield con

    def delivery_dir(self, delivery_id: str) -> Path:
        """The delivery's local folder, staged from the object root first when that is remote."""

        home = self.data_home()
        local = home.deliveries / delivery_id
        if home.remote_objects:
            if not ObjectStore().download_tree(home.delivery_uri(delivery_id), local):
                raise FileNotFoundError(f"delivery {delivery_id!r} has no objects at {home.delivery_uri(delivery_id)}")
        return local

    def shards_uri(self, release_id: str) -> str:
        return self.data_home().shards_uri(release_id)

    def publish_uri(self, run_id: str) -> str | None:
        """Where a completed run's checkpoint and files are copied: the remote object root, or None."""
        home = self.data_home()
        return home.runs_uri(run_id) if home.remote_objects else None
