"""HTTP-level checks of the web app's security: login, sessions, CSRF, roles, throttling, escaping, SSO."""

from __future__ import annotations

import csv
import io
import json
import re
import time
from pathlib import Path

import pytest
from starlette.testclient import TestClient
from typer.testing import CliRunner

from dagster_project.cli import app
from store.database import connect
from store.home import Home
from store.passwords import PasswordRejected, set_password, verify_password
from store.roles import RoleRefused, load_roles, os_user
from tests.web.conftest import EVIL, EVIL_ISRC, OWN_RELEASE, PASSWORD, REVIEW_RELEASE, csrf_of, login, settings_for
from web.app import create_app


def _audit(home: Home, action: str) -> list[dict[str, object]]:
    with connect(home.db_path, read_only=True) as con:
        rows = con.execute("SELECT actor, subject, payload FROM audit_log WHERE action = ? ORDER BY seq",
                           [action]).fetchall()
    return [{"actor": a, "subject": s, **json.loads(p)} for a, s, p in rows]


def _status(home: Home, release_id: str) -> str:
    with connect(home.db_path, read_only=True) as con:
        return str(con.execute("SELECT status FROM releases WHERE release_id = ?", [release_id]).fetchone()[0])


def test_pages_need_a_login(client: TestClient) -> None:
    for path in ("/", "/search?q=x", f"/releases/{REVIEW_RELEASE}", "/audit", "/denied.csv?purpose=a&territory=b"):
        response = client.get(path)
        assert response.status_code == 303 and response.headers["location"].startswith("/login"), path


def test_login_sets_a_signed_httponly_samesite_cookie_and_failures_are_audited(client: TestClient,
                                                                               web_home: Home) -> None:
    bad = login(client, "rita.rights", "not the password")
    assert bad.status_code == 401 and "Unknown user or wrong password" in bad.text
    refused = _audit(web_home, "identity.refused")
    assert refused[-1]["code"] == "login_failed" and refused[-1]["actor"] == "rita.rights"
    assert refused[-1]["principal"]["method"] == "web_login"

    ok = login(client, "rita.rights")
    assert ok.status_code == 303
    cookie = ok.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie
    assert "rita.rights" not in cookie  # signed and encoded, not a bare name
    page = client.get("/")
    assert page.status_code == 200 and "rita.rights (rights_team)" in page.text
    for header in ("content-security-policy", "x-content-type-options"):
        assert header in page.headers

    tampered = TestClient(client.app, follow_redirects=False)
    value = client.cookies["linernotes_session"]
    tampered.cookies.set("linernotes_session", value[:-4] + ("AAAA" if not value.endswith("AAAA") else "BBBB"))
    assert tampered.get("/").status_code == 303


def test_a_post_without_this_sessions_csrf_token_is_refused_and_audited(client: TestClient, web_home: Home) -> None:
    login(client, "rita.rights")
    for data in ({"comment": "looks fine"}, {"comment": "looks fine", "csrf_token": "forged"}):
        response = client.post(f"/releases/{REVIEW_RELEASE}/approve", data=data)
        assert response.status_code == 403
    other = TestClient(client.app, follow_redirects=False)
    foreign_token = csrf_of(other, "/login")
    assert client.post(f"/releases/{REVIEW_RELEASE}/approve",
                       data={"comment": "x", "csrf_token": foreign_token}).status_code == 403
    assert _status(web_home, REVIEW_RELEASE) == "proposed"
    refusals = _audit(web_home, "web.refused")
    assert len(refusals) == 3 and {r["code"] for r in refusals} == {"csrf_invalid"}
    assert refusals[0]["actor"] == "rita.rights"
    # the login form itself needs the token too
    assert client.post("/login", data={"username": "rita.rights", "password": PASSWORD}).status_code == 403


def test_roles_and_four_eyes_are_enforced_server_side_and_refusals_audited(client: TestClient,
                                                                           web_home: Home) -> None:
    login(client, "aude.audit")
    token = csrf_of(client, f"/releases/{REVIEW_RELEASE}")
    response = client.post(f"/releases/{REVIEW_RELEASE}/approve", data={"comment": "ok", "csrf_token": token})
    assert response.status_code == 303
    assert "refused (role_missing)" in client.get(f"/releases/{REVIEW_RELEASE}").text
    assert _status(web_home, REVIEW_RELEASE) == "proposed"
    refused = _audit(web_home, "release.approve.refused")[-1]
    assert refused["actor"] == "aude.audit" and refused["code"] == "role_missing"
    assert refused["principal"]["method"] == "web_login"

    both = TestClient(client.app, follow_redirects=False)
    login(both, "both")
    token = csrf_of(both, f"/releases/{OWN_RELEASE}")
    both.post(f"/releases/{OWN_RELEASE}/approve", data={"comment": "mine", "csrf_token": token})
    assert "refused (same_person)" in both.get(f"/releases/{OWN_RELEASE}").text
    assert _status(web_home, OWN_RELEASE) == "proposed"

    rita = TestClient(client.app, follow_redirects=False)
    login(rita, "rita.rights")
    token = csrf_of(rita, f"/releases/{REVIEW_RELEASE}")
    rita.post(f"/releases/{REVIEW_RELEASE}/approve", data={"comment": "   ", "csrf_token": token})
    assert _status(web_home, REVIEW_RELEASE) == "proposed"  # the comment is required
    rita.post(f"/releases/{REVIEW_RELEASE}/approve", data={"comment": "deals and consents checked",
                                                           "csrf_token": token})
    assert _status(web_home, REVIEW_RELEASE) == "approved"
    entry = _audit(web_home, "release.approve")[-1]
    assert entry["actor"] == "rita.rights" and entry["principal"] == {"name": "rita.rights", "method": "web_login",
                                                                      "via": "web:testclient"}


def test_sessions_expire(web_home: Home) -> None:
    app = create_app(web_home, settings_for(web_home, session_max_age_s=1))
    with TestClient(app, follow_redirects=False) as c:
        login(c, "rita.rights")
        assert c.get("/").status_code == 200
        time.sleep(2.2)
        assert c.get("/").status_code == 303


def test_a_changed_password_ends_existing_sessions(client: TestClient, web_home: Home) -> None:
    login(client, "ravi")
    assert client.get("/").status_code == 200
    with connect(web_home.db_path) as con:
        set_password(con, "ravi", "another long passphrase", actor="ravi")
    assert client.get("/").status_code == 303
    assert login(client, "ravi", "another long passphrase").status_code == 303


def test_logins_are_rate_limited_per_user_and_address(web_home: Home) -> None:
    app = create_app(web_home, settings_for(web_home, login_attempts=3, login_window_s=60))
    with TestClient(app, follow_redirects=False) as c:
        for _ in range(3):
            assert login(c, "rita.rights", "guess").status_code == 401
        assert login(c, "rita.rights").status_code == 429  # even the right password waits
        assert login(c, "aude.audit").status_code == 429    # the same address is throttled too
    codes = [e["code"] for e in _audit(web_home, "identity.refused")]
    assert codes.count("login_failed") == 3 and codes.count("login_throttled") == 2


def test_no_page_renders_user_data_unescaped(client: TestClient, web_home: Home) -> None:
    login(client, "rita.rights")
    with connect(web_home.db_path, read_only=True) as con:
        track_id = con.execute("SELECT track_id FROM tracks WHERE isrc = ?", [EVIL_ISRC]).fetchone()[0]
    pages = [f"/search?q={EVIL_ISRC}", "/search?q=%3Cscript%3E", f"/tracks/{track_id}", "/parties?q=script",
             "/parties/P-evil", "/denied?purpose=UseForTrainingNonGenerativeAI&territory=GB",
             f"/trace?isrc={EVIL_ISRC}", "/search?q=%22%3E%3Cimg%20src%3Dx%20onerror%3Dalert(1)%3E"]
    for path in pages:
        html = client.get(path).text
        assert "<script>alert" not in html and "<img src=x" not in html, path
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in client.get(f"/tracks/{track_id}").text
    # the CSV is data, not a page: the title travels as it is
    text = client.get("/denied.csv?purpose=UseForTrainingNonGenerativeAI&territory=GB").text
    titles = {row["isrc"]: row["title"] for row in csv.DictReader(io.StringIO(text))}
    assert titles[EVIL_ISRC] == EVIL


def test_set_password_is_an_audited_command_with_its_own_rules(web_home: Home) -> None:
    with connect(web_home.db_path) as con:
        with pytest.raises(RoleRefused):
            set_password(con, "rita.rights", "a long enough password", actor="mira.ml")
        with pytest.raises(PasswordRejected):
            set_password(con, "mira.ml", "short", actor="mira.ml")
        with pytest.raises(PasswordRejected):
            set_password(con, "pipeline", "a long enough password", actor="ops")
    assert _audit(web_home, "users.set_password.refused")[-1]["code"] in ("role_missing", "service_account")
    assert _audit(web_home, "users.set_own_password.refused")[-1]["code"] == "password_too_short"
    stored = (web_home.root / "roles.yaml").read_text(encoding="utf-8")
    assert "$argon2id$" in stored and PASSWORD not in stored
    done = _audit(web_home, "users.set_password")
    assert {e["user"] for e in done} >= {"rita.rights", "aude.audit"} and done[0]["actor"] == "ops"


def test_a_trusted_sso_header_logs_in_only_from_the_trusted_proxy(web_home: Home) -> None:
    trusted = create_app(web_home, settings_for(web_home, sso_header="X-Forwarded-User",
                                                trusted_proxies=frozenset({"testclient"})))
    with TestClient(trusted, follow_redirects=False) as c:
        page = c.get("/", headers={"X-Forwarded-User": "rita.rights"})
        assert page.status_code == 200 and "rita.rights (rights_team)" in page.text
        assert c.get("/", headers={"X-Forwarded-User": "nobody-listed"}).status_code == 303
        headers = {"X-Forwarded-User": "rita.rights"}
        page = c.get(f"/releases/{REVIEW_RELEASE}", headers=headers).text
        token = page.split('name="csrf_token" value="', 1)[1].split('"', 1)[0]
        c.post(f"/releases/{REVIEW_RELEASE}/approve", headers=headers,
               data={"comment": "checked behind the proxy", "csrf_token": token})
    assert _status(web_home, REVIEW_RELEASE) == "approved"
    assert _audit(web_home, "release.approve")[-1]["principal"] == {
        "name": "rita.rights", "method": "sso_header", "via": "sso:X-Forwarded-User@testclient"}
    untrusted = create_app(web_home, settings_for(web_home, sso_header="X-Forwarded-User"))
    with TestClient(untrusted, follow_redirects=False) as c:
        assert c.get("/", headers={"X-Forwarded-User": "rita.rights"}).status_code == 303


def test_users_set_password_on_the_command_line(web_home: Home) -> None:
    """The OS account running the tests is the admin `ops`: it may set anyone's password; --actor someone
    without admin may not set another's (exit 3, audited), a short password exits 2."""
    runner = CliRunner()
    home = str(web_home.root)
    ok = runner.invoke(app, ["users", "set-password", "aude.audit", "--home", home, "--password-stdin"],
                       input="a brand new passphrase\n", catch_exceptions=False)
    assert ok.exit_code == 0, ok.output
    with TestClient(create_app(web_home, settings_for(web_home)), follow_redirects=False) as c:
        assert login(c, "aude.audit").status_code == 401
        assert login(c, "aude.audit", "a brand new passphrase").status_code == 303
    short = runner.invoke(app, ["users", "set-password", "aude.audit", "--home", home, "--password-stdin"],
                          input="short\n", catch_exceptions=False)
    assert short.exit_code == 2
    refused = runner.invoke(app, ["users", "set-password", "rita.rights", "--home", home, "--password-stdin",
                                  "--actor", "mira.ml"], input="another long passphrase\n", catch_exceptions=False)
    assert refused.exit_code == 3  # an admin acting as mira.ml has mira.ml's roles
    assert _audit(web_home, "users.set_password.refused")[-1]["principal"]["method"] == "admin_as"
    entry = _audit(web_home, "users.set_password")[-1]
    assert entry["user"] == "aude.audit" and entry["principal"]["method"] == "os_user"


def test_secure_cookies_are_sent_over_https_only(web_home: Home) -> None:
    app = create_app(web_home, settings_for(web_home, secure_cookies=True))
    with TestClient(app, base_url="https://testserver", follow_redirects=False) as c:
        response = login(c, "rita.rights")
        assert response.status_code == 303 and "; secure" in response.headers["set-cookie"].lower()


def test_set_password_keeps_the_roles_file_s_comments_and_layout(tmp_path: Path) -> None:
    """roles.yaml is a reviewed document: setting a password changes that user's hash and nothing else."""
    roles = tmp_path / "roles.yaml"
    before = ("# Who may do what at Northern Label; reviewed by compliance each quarter.\n"
              "users:\n"
              "  # the rights desk\n"
              "  rita: [rights_team]   # Rita Lark, rights manager\n"
              "  ops:\n"
              "    roles: [admin]\n"
              f"    os_users: [{os_user()}]\n"
              "  pipeline: {roles: [pipeline], service: true}\n")
    roles.write_text(before, encoding="utf-8")
    with connect(tmp_path / "ledger.duckdb") as con:
        set_password(con, "rita", "a long enough password", actor="ops", roles_path=roles)
        set_password(con, "ops", "another long password", actor="ops", roles_path=roles)
    after = roles.read_text(encoding="utf-8")
    for line in ("# Who may do what at Northern Label; reviewed by compliance each quarter.", "  # the rights desk",
                 "# Rita Lark, rights manager", "  pipeline: {roles: [pipeline], service: true}"):
        assert line in after, line
    hashes = re.findall(r"password_argon2: (\S+)", after)
    assert len(hashes) == 2 and all(h.startswith("$argon2id$") for h in hashes)
    book = load_roles(roles)
    assert book.users["rita"].roles == ("rights_team",) and book.users["ops"].roles == ("admin",)
    assert verify_password(book, "rita", "a long enough password") and not verify_password(book, "rita", "wrong one")
