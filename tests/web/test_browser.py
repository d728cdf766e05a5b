"""The web app in a real headless browser: Debian's /usr/bin/chromium driven by Playwright (never a browser
download), against `linernotes serve` running on a real port over a real pipeline ledger.

Screenshots of the main pages are written under the test's tmp_path (``screenshots/``).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from store.database import connect
from store.home import Home
from tests.lineage.pipeline import RUN_ID
from tests.web.conftest import OWN_RELEASE, PASSWORD, REVIEW_RELEASE

CHROMIUM = Path("/usr/bin/chromium")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture()
def server(web_home: Home) -> Iterator[str]:
    """``linernotes serve`` on a free port over the test's private data directory."""
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("LINERNOTES_ROLES", "LINERNOTES_HOME")}
    exe = Path(sys.executable).parent / "linernotes"
    proc = subprocess.Popen([str(exe), "serve", "--home", str(web_home.root), "--port", str(port)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            urllib.request.urlopen(f"{url}/login", timeout=1).close()
            break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                raise RuntimeError("linernotes serve did not start")
            time.sleep(0.2)
    try:
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


@pytest.fixture()
def browser() -> Iterator[Browser]:
    assert CHROMIUM.exists(), "Debian's chromium is needed: apt-get install chromium (make setup does, as root)"
    os.environ["PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD"] = "1"
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), headless=True)
        try:
            yield b
        finally:
            b.close()


def _log_in(page: Page, url: str, name: str) -> None:
    page.goto(f"{url}/login")
    page.get_by_label("User").fill(name)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page.locator(".who")).to_contain_text(name)


def _shot(page: Page, out: Path, name: str) -> None:
    out.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(out / f"{name}.png"), full_page=True)


def _status(home: Home, release_id: str) -> str:
    with connect(home.db_path, read_only=True) as con:
        return str(con.execute("SELECT status FROM releases WHERE release_id = ?", [release_id]).fetchone()[0])


def test_rights_team_reads_a_denial_approves_refuses_own_and_revokes_with_impact(
        server: str, browser: Browser, web_home: Home, tmp_path: Path) -> None:
    shots = tmp_path / "screenshots"
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.goto(f"{server}/releases")
    expect(page).to_have_url(f"{server}/login?next=/releases")
    _shot(page, shots, "01-login")
    _log_in(page, server, "rita.rights")
    _shot(page, shots, "02-overview")

    # find a denied track and read why
    page.get_by_role("link", name="Denied").first.click()
    page.get_by_role("link", name="UseForTrainingGenerativeAI / GB").click()
    _shot(page, shots, "03-denied")
    page.get_by_role("link", name="GBLNR2600003").click()
    generative = page.locator("section.decision", has_text="UseForTrainingGenerativeAI in GB")
    expect(generative).to_contain_text("denied")
    expect(generative).to_contain_text("a required contributor does not allow this purpose")
    expect(generative).to_contain_text("Cleo Refuser")
    expect(generative).to_contain_text("does not allow it")
    _shot(page, shots, "04-track-denied")

    # approve a release someone else proposed
    page.get_by_role("link", name="Review queue").click()
    page.get_by_role("link", name=REVIEW_RELEASE).click()
    expect(page.locator("h1")).to_contain_text("proposed")
    _shot(page, shots, "05-review")
    page.get_by_label("Comment").fill("deals, consents and exclusions checked")
    page.get_by_role("button", name="Approve").click()
    expect(page.locator(".flash")).to_contain_text(f"{REVIEW_RELEASE} is now approved (by rita.rights)")
    assert _status(web_home, REVIEW_RELEASE) == "approved"
    page.get_by_role("button", name="Log out").click()

    # fail to approve one's own
    _log_in(page, server, "both")
    page.goto(f"{server}/releases/{OWN_RELEASE}")
    page.get_by_label("Comment").fill("my own work looks fine")
    page.get_by_role("button", name="Approve").click()
    expect(page.locator(".flash")).to_contain_text("refused (same_person)")
    _shot(page, shots, "06-own-refused")
    assert _status(web_home, OWN_RELEASE) == "proposed"
    page.get_by_role("button", name="Log out").click()

    # revoke a consent and see the impact first
    _log_in(page, server, "rita.rights")
    page.get_by_role("link", name="Parties").click()
    page.get_by_placeholder("name or party id").fill("Ben")
    page.get_by_role("button", name="Filter").click()
    page.get_by_role("link", name="P-ben-byrd").click()
    page.get_by_role("link", name="revoke…").click()
    impact = page.locator("table.impact")
    expect(impact).to_contain_text("Releases holding them")
    expect(page.locator("body")).to_contain_text(RUN_ID)
    _shot(page, shots, "07-revoke-preview")
    page.get_by_label("Evidence reference").fill("s3://evidence/ben-withdrawal.pdf")
    page.get_by_role("button", name="Record the revocation").click()
    expect(page.locator(".flash")).to_contain_text("revoked by rita.rights")
    with connect(web_home.db_path, read_only=True) as con:
        revoked = con.execute("SELECT revoked_at FROM consents WHERE consent_id = 'C-P-ben-byrd'").fetchone()[0]
        actor = con.execute("SELECT actor, payload->>'$.principal.method' FROM audit_log "
                            "WHERE action = 'consent.revoke' ORDER BY seq DESC LIMIT 1").fetchone()
    assert revoked is not None and actor == ("rita.rights", "web_login")
    _shot(page, shots, "08-consent-revoked")


def test_an_auditor_traces_a_model(server: str, browser: Browser, tmp_path: Path) -> None:
    shots = tmp_path / "screenshots"
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    _log_in(page, server, "aude.audit")
    page.get_by_role("link", name="Models").click()
    page.get_by_role("link", name=RUN_ID).click()
    holders = page.locator("table", has_text="share of training").first
    expect(holders).to_contain_text("Lineage Records")
    expect(page.locator("body")).to_contain_text("Ben Byrd 40%")
    _shot(page, shots, "09-model-trace")
    page.get_by_role("link", name="GBLNR2600001").first.click()
    expect(page.locator("body")).to_contain_text(RUN_ID)
    _shot(page, shots, "10-song-trace")
    page.get_by_role("link", name="Audit").click()
    expect(page.locator("body")).to_contain_text("Signature")
    expect(page.locator("body")).to_contain_text("valid")
    _shot(page, shots, "11-audit")
    assert len(list(shots.glob("*.png"))) == 3
