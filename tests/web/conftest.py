"""One real pipeline ledger (ingest, rights, fingerprints, releases, shards, a trained model) for the web tests,
plus two releases awaiting review, a track and a party whose names carry markup, and web passwords set
through ``linernotes users set-password``'s domain command. Tests that change records get a private copy."""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from licensing.policy import load_policy
from licensing.releases import propose_release
from store.database import connect
from store.home import Home
from store.passwords import set_password
from tests import ledger_seed
from tests.lineage.pipeline import ON, Pipeline, build_pipeline
from web.app import create_app
from web.auth import WebSettings

PASSWORD = "correct horse battery staple"
REVIEW_RELEASE = "rel-web-review"   # proposed by mira.ml: rita.rights may approve it
OWN_RELEASE = "rel-web-own"         # proposed by `both` (ml_engineer and rights_team): `both` may not approve it
EVIL = '<script>alert("x")</script>'
EVIL_ISRC = "GBLNR2600099"
PEOPLE = ("rita.rights", "ravi", "both", "aude.audit", "mira.ml")


@dataclass(frozen=True)
class WebLedger:
    pipeline: Pipeline

    @property
    def home(self) -> Path:
        return self.pipeline.home


@pytest.fixture(scope="session")
def web_ledger(tmp_path_factory: pytest.TempPathFactory) -> WebLedger:
    pipeline = build_pipeline(tmp_path_factory.mktemp("web"))
    policy = load_policy()
    with connect(pipeline.db_path) as con:
        ledger_seed.catalog(con, [{"track_id": "trk_evil000000000001", "isrc": EVIL_ISRC, "title": EVIL,
                                   "artists": [EVIL], "party_ids": ["P-evil"], "source_path": "audio/evil.flac",
                                   "audio_sha256": "0" * 64}],
                            delivery_id="dlv-evil", received_at=datetime.now(UTC))
        ledger_seed.import_rights(con, pipeline.home / "evil-rights.json",
                                  parties=[ledger_seed.party("P-evil", EVIL)], deals=[], consents=[])
        propose_release(con, purpose="UseForTrainingNonGenerativeAI", territory="GB", on_date=ON, actor="mira.ml",
                        policy=policy, release_id=REVIEW_RELEASE)
        propose_release(con, purpose="UseForDataMining", territory="FR", on_date=ON, actor="both", policy=policy,
                        release_id=OWN_RELEASE)
        for name in PEOPLE:
            set_password(con, name, PASSWORD, actor="ops")
    return WebLedger(pipeline)


@pytest.fixture()
def web_home(web_ledger: WebLedger, tmp_path: Path) -> Home:
    """A private copy of the web ledger's data directory."""
    root = tmp_path / "home"
    shutil.copytree(web_ledger.home, root)
    return Home.from_env(root)


def settings_for(home: Home, **overrides: object) -> WebSettings:
    return WebSettings(roles_path=home.root / "roles.yaml", secret_key="test-secret-" + "x" * 32,
                       **overrides)  # type: ignore[arg-type]


@pytest.fixture()
def client(web_home: Home) -> Iterator[TestClient]:
    with TestClient(create_app(web_home, settings_for(web_home)), follow_redirects=False) as c:
        yield c


def csrf_of(client: TestClient, path: str) -> str:
    """The CSRF token of the form on ``path`` (as a browser reads it from the page)."""
    html = client.get(path).text
    found = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert found, f"no CSRF token in {path}"
    return found.group(1)


def login(client: TestClient, name: str, password: str = PASSWORD) -> object:
    return client.post("/login", data={"username": name, "password": password, "next": "/",
                                       "csrf_token": csrf_of(client, "/login")})
