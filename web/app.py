"""The web app: server-rendered pages over the ledger for rights teams and auditors.

Reads are bounded, set-based queries (:mod:`web.reads`); every change calls the same domain command
the command line calls (``licensing.releases``, ``licensing.revocation``, the importers, the
exports), with the logged-in user as a :class:`~store.roles.Principal` of method ``web_login`` (or
``sso_header``), so roles, separation of duties and the audit entry are the command's. Every
POST carries the session's CSRF token; a refused one is audited like any other refusal.

The ledger is opened per request (DuckDB's single-writer lock is then free for the command line
and Dagster between requests) and requests take turns on it within this process.
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import io
import re
import secrets
import shutil
import tempfile
import threading
import time
import zipfile
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, TypeVar

import duckdb
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.base import BaseHTTPMiddleware
from starlette.middleware.sessions import SessionMiddleware
from starlette.requests import Request
from starlette.responses import FileResponse, RedirectResponse, Response, StreamingResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates

from licensing import releases as rl
from licensing.impact import change_preview
from licensing.importers.ddex import import_ddex
from licensing.importers.tabular import import_rights_file
from licensing.records import history, party_isrcs
from licensing.revocation import RevocationError, expire_deal, revoke_consent
from lineage.ai_act import export_summary
from lineage.evidence import export_pack
from lineage.integrity import verify_ledger
from lineage.trace import TraceNotFound, trace_isrc, trace_model
from schemas.decisions import REASON_TEXT
from store import audit
from store.database import connect
from store.home import Home
from store.ledger import record_refusal
from store.passwords import verify_password
from store.roles import Principal, RoleRefused
from web import auth, reads

HERE = Path(__file__).parent
_ISO_TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d")
T = TypeVar("T")
TEMPLATES = ("rights.json", "parties.csv", "licenses.csv", "consents.csv", "ddex-ern43.xml")


class WebApp:
    """The app's state: where the ledger is, the settings, the login throttle and the ledger lock."""

    def __init__(self, home: Home, settings: auth.WebSettings) -> None:
        self.home = home
        self.settings = settings
        self.throttle = auth.LoginThrottle(settings.login_attempts, settings.login_window_s)
        self.lock = threading.Lock()

    def run(self, fn: Callable[[duckdb.DuckDBPyConnection], T]) -> T:
        with self.lock, connect(self.home.db_path) as con:
            return fn(con)

    async def ledger(self, fn: Callable[[duckdb.DuckDBPyConnection], T]) -> T:
        return await run_in_threadpool(self.run, fn)


templates = Jinja2Templates(directory=str(HERE / "templates"))  # autoescape on for .html
templates.env.globals["reason_text"] = REASON_TEXT


def _fmt(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, datetime):
        return f"{value.astimezone(UTC):%Y-%m-%d %H:%M} UTC"
    if isinstance(value, (list, tuple)):
        return ", ".join(str(v) for v in value) or "—"
    if isinstance(value, float):
        return f"{value:,.4g}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    if isinstance(value, str) and _ISO_TIME.match(value):  # timestamps of the trace documents (ISO 8601, UTC)
        return f"{value[:16].replace('T', ' ')} UTC"
    return str(value)


templates.env.filters["fmt"] = _fmt


def _app(request: Request) -> WebApp:
    state: WebApp = request.app.state.web
    return state


def _user(request: Request) -> tuple[str, str] | None:
    """(name, method) of who is making this request, or None."""
    web = _app(request)
    book = auth.roles(web.settings)
    client = request.client.host if request.client else None
    sso = auth.sso_user(request.headers, client, book, web.settings)
    if sso:
        return sso, "sso_header"
    name = auth.session_user(request.session, book, web.settings)
    return (name, "web_login") if name else None


def _principal(request: Request) -> Principal:
    who = _user(request)
    if who is None:
        raise HTTPException(401)
    client = request.client.host if request.client else None
    return auth.principal(who[0], who[1], client, _app(request).settings)


def render(request: Request, name: str, status_code: int = 200, **context: Any) -> Response:
    who = _user(request)
    book = auth.roles(_app(request).settings)
    context.update(user=who[0] if who else None, method=who[1] if who else None,
                   user_roles=book.roles_of(who[0]) if (book and who) else (),
                   csrf=auth.csrf_token(request.session), flash=request.session.pop("flash", None))
    return templates.TemplateResponse(request, name, context, status_code=status_code)


def _page(request: Request) -> int:
    try:
        return max(1, int(request.query_params.get("page", "1")))
    except ValueError:
        return 1


def _pages(total: int, page: int) -> dict[str, Any]:
    last = max(1, -(-total // reads.PAGE))
    return {"page": page, "last": last, "total": total}


def _flash(request: Request, kind: str, text: str) -> None:
    request.session["flash"] = {"kind": kind, "text": text}


def login_required(handler: Callable[..., Any]) -> Callable[..., Any]:
    async def wrapped(request: Request) -> Response:
        if _user(request) is None:
            return RedirectResponse(f"/login?next={request.url.path}", status_code=303)
        result: Response = await handler(request)
        return result
    wrapped.__name__ = handler.__name__
    wrapped.__doc__ = handler.__doc__
    return wrapped


async def _form(request: Request) -> dict[str, Any]:
    """The POSTed form, once its CSRF token matched the session's; a mismatch is refused and audited."""
    form = await request.form()
    data = {k: v for k, v in form.items()}
    if not auth.csrf_ok(request.session, data.get("csrf_token") if isinstance(data.get("csrf_token"), str) else None):
        web = _app(request)
        who = _user(request)
        client = request.client.host if request.client else None
        name = who[0] if who else f"anonymous@{client or '-'}"
        actor = Principal(name=name, method=(who[1] if who else "web_login"), via=f"web:{client or '-'}")  # type: ignore[arg-type]
        await web.ledger(lambda con: record_refusal(con, actor, "web", request.url.path, code="csrf_invalid",
                                                    message="form posted without this session's CSRF token"))
        raise HTTPException(403, "CSRF token missing or wrong: reload the page and try again")
    return data


# Login --------------------------------------------------------------------------------------------

async def login_page(request: Request) -> Response:
    return render(request, "login.html", next=request.query_params.get("next", "/"))


_SAFE_NEXT = re.compile(r"^/[A-Za-z0-9/_\-.?=&%]*$")


async def login(request: Request) -> Response:
    """Check the password against roles.yaml's argon2 hash; failures and throttling are audited."""
    web = _app(request)
    form = await _form(request)
    name = str(form.get("username", "")).strip()
    password = str(form.get("password", ""))
    target = str(form.get("next", "/"))
    target = target if _SAFE_NEXT.match(target) and not target.startswith("//") else "/"
    client = request.client.host if request.client else "-"
    keys = (f"user:{name}", f"addr:{client}")
    actor = Principal(name=name or "anonymous", method="web_login", via=f"web:{client}")
    wait = web.throttle.blocked(*keys)
    if wait > 0:
        await web.ledger(lambda con: record_refusal(con, actor, "identity", "web login", code="login_throttled",
                                                    message=f"too many failed logins; retry in {wait:.0f} s"))
        return render(request, "login.html", status_code=429, next=target,
                      error=f"Too many failed attempts. Try again in {wait:.0f} seconds.")
    book = auth.roles(web.settings)
    ok = book is not None and await run_in_threadpool(verify_password, book, name, password)
    if not ok or book is None:
        web.throttle.fail(*keys)
        await web.ledger(lambda con: record_refusal(con, actor, "identity", "web login", code="login_failed",
                                                    message="unknown user or wrong password"))
        return render(request, "login.html", status_code=401, next=target, error="Unknown user or wrong password.")
    web.throttle.succeed(keys[0])
    auth.start_session(request.session, book, name)
    return RedirectResponse(target, status_code=303)


async def logout(request: Request) -> Response:
    await _form(request)
    request.session.clear()
    return RedirectResponse("/login", status_code=303)


# Rights team: catalog ---------------------------------------------------------------------------

@login_required
async def home_page(request: Request) -> Response:
    data = await _app(request).ledger(reads.overview)
    return render(request, "home.html", overview=data)


@login_required
async def search(request: Request) -> Response:
    q = request.query_params.get("q", "")
    page = _page(request)
    found, total = await _app(request).ledger(lambda con: reads.search_tracks(con, q, page=page))
    return render(request, "search.html", q=q, rows=found, pages=_pages(total, page))


@login_required
async def track(request: Request) -> Response:
    track_id = request.path_params["track_id"]

    def read(con: duckdb.DuckDBPyConnection) -> Any:
        data = reads.track_page(con, track_id)
        if data is not None:
            data["history"] = history(con, data["track"]["isrc"])
        return data
    data = await _app(request).ledger(read)
    if data is None:
        raise HTTPException(404, f"no track {track_id}")
    return render(request, "track.html", **data)


def _key(request: Request, keys: list[tuple[str, str]]) -> tuple[str, str] | None:
    purpose = request.query_params.get("purpose")
    territory = request.query_params.get("territory")
    if purpose and territory:
        return purpose, territory
    return keys[0] if keys else None


@login_required
async def denied_page(request: Request) -> Response:
    page = _page(request)
    reason = request.query_params.get("reason") or None
    after = request.query_params.get("after") or None

    def read(con: duckdb.DuckDBPyConnection) -> Any:
        keys = reads.decision_keys(con)
        key = _key(request, keys)
        found, total, by_reason = reads.denied(con, *key, page=page, reason=reason, after=after) if key \
            else ([], 0, {})
        return keys, key, found, total, by_reason
    keys, key, found, total, by_reason = await _app(request).ledger(read)
    pages = _pages(total, page)
    pages["after"] = found[-1]["track_id"] if len(found) == reads.PAGE else None  # the next page starts after it
    return render(request, "denied.html", keys=keys, key=key, rows=found, pages=pages,
                  by_reason=by_reason, reason=reason)


@login_required
async def denied_download(request: Request) -> Response:
    purpose = request.query_params.get("purpose", "")
    territory = request.query_params.get("territory", "")
    web = _app(request)

    def stream() -> Iterator[str]:
        with web.lock, connect(web.home.db_path) as con:
            buf = io.StringIO()
            out = csv.writer(buf)
            out.writerow(["isrc", "track_id", "title", "artists", "reason_codes", "explanation", "on_date",
                          "decision_id"])
            for n, row in enumerate(reads.denied_csv(con, purpose, territory)):
                out.writerow(row)
                if n % 5000 == 4999:
                    yield buf.getvalue()
                    buf.seek(0)
                    buf.truncate()
            yield buf.getvalue()
    name = re.sub(r"[^A-Za-z0-9_-]", "_", f"denied-{purpose}-{territory}") + ".csv"
    return StreamingResponse(stream(), media_type="text/csv; charset=utf-8",
                             headers={"Content-Disposition": f'attachment; filename="{name}"'})


@login_required
async def quarantine_page(request: Request) -> Response:
    page = _page(request)
    found, total, by_reason = await _app(request).ledger(lambda con: reads.quarantine(con, page=page))
    return render(request, "quarantine.html", rows=found, pages=_pages(total, page), by_reason=by_reason)


# Rights team: releases ----------------------------------------------------------------------------

@login_required
async def releases_page(request: Request) -> Response:
    page = _page(request)
    status = request.query_params.get("status") or None

    def read(con: duckdb.DuckDBPyConnection) -> Any:
        return reads.release_counts(con), *reads.releases(con, status, page=page)
    counts, found, total = await _app(request).ledger(read)
    return render(request, "releases.html", counts=counts, rows=found, status=status, pages=_pages(total, page))


@login_required
async def release_page(request: Request) -> Response:
    release_id = request.path_params["release_id"]
    page = _page(request)

    def read(con: duckdb.DuckDBPyConnection) -> Any:
        return rl.release_review(con, release_id, limit=reads.PAGE, offset=(page - 1) * reads.PAGE)
    try:
        review = await _app(request).ledger(read)
    except rl.ReleaseError as exc:
        raise HTTPException(404, exc.message) from exc
    return render(request, "release.html", review=review, rel=review["release"],
                  pages=_pages(review["excluded_count"], page))


@login_required
async def release_decide(request: Request) -> Response:
    release_id = request.path_params["release_id"]
    action = request.path_params["action"]
    form = await _form(request)
    actor = _principal(request)
    fn = {"approve": rl.approve_release, "reject": rl.reject_release, "revoke": rl.revoke_release}.get(action)
    if fn is None:
        raise HTTPException(404)
    comment = str(form.get("comment", ""))
    try:
        rel = await _app(request).ledger(lambda con: fn(con, release_id, actor=actor, comment=comment))  # type: ignore[arg-type]
    except rl.ReleaseError as exc:
        _flash(request, "error", f"refused ({exc.code}): {exc.message}")
        return RedirectResponse(f"/releases/{release_id}", status_code=303)
    _flash(request, "ok", f"{rel.release_id} is now {rel.status} (by {actor.name})")
    return RedirectResponse(f"/releases/{release_id}", status_code=303)


# Parties, deals, consents ---------------------------------------------------------------------------

def _listing(kind: str, fn: Callable[..., tuple[list[dict[str, Any]], int]]) -> Callable[..., Any]:
    @login_required
    async def handler(request: Request) -> Response:
        q = request.query_params.get("q", "")
        page = _page(request)
        found, total = await _app(request).ledger(lambda con: fn(con, q, page=page))
        return render(request, f"{kind}.html", q=q, rows=found, pages=_pages(total, page))
    handler.__name__ = f"{kind}_page"
    return handler


@login_required
async def party_page(request: Request) -> Response:
    party_id = request.path_params["party_id"]
    data = await _app(request).ledger(lambda con: (reads.party(con, party_id), history(con, party_id)))
    if data[0] is None:
        raise HTTPException(404, f"no party {party_id}")
    return render(request, "party.html", party=data[0], history=data[1])


@login_required
async def deal_page(request: Request) -> Response:
    deal_id = request.path_params["deal_id"]
    data = await _app(request).ledger(lambda con: (reads.deal(con, deal_id), history(con, deal_id)))
    if data[0] is None:
        raise HTTPException(404, f"no deal {deal_id}")
    return render(request, "deal.html", deal=data[0], history=data[1])


@login_required
async def consent_page(request: Request) -> Response:
    consent_id = request.path_params["consent_id"]
    data = await _app(request).ledger(lambda con: (reads.consent(con, consent_id), history(con, consent_id)))
    if data[0] is None:
        raise HTTPException(404, f"no consent {consent_id}")
    return render(request, "consent.html", consent=data[0], history=data[1])


@login_required
async def consent_revoke(request: Request) -> Response:
    """GET: the impact preview and the form; POST: record the revocation through ``revoke_consent``."""
    consent_id = request.path_params["consent_id"]
    web = _app(request)
    if request.method == "POST":
        form = await _form(request)
        actor = _principal(request)
        row = await web.ledger(lambda con: reads.consent(con, consent_id))
        if row is None:
            raise HTTPException(404, f"no consent {consent_id}")
        try:
            result = await web.ledger(lambda con: revoke_consent(
                con, party_id=row["party_id"], consent_id=consent_id, actor=actor,
                evidence_ref=str(form.get("evidence_ref", "")), reason=str(form.get("reason", ""))))
        except (RoleRefused, RevocationError) as exc:
            _flash(request, "error", f"refused ({exc.code}): {exc.message}")
            return RedirectResponse(f"/consents/{consent_id}/revoke", status_code=303)
        _flash(request, "ok", f"{result.revocation_id}: {consent_id} revoked by {actor.name}; "
                              f"{len(result.isrcs)} recording(s) re-decided")
        return RedirectResponse(f"/consents/{consent_id}", status_code=303)

    def read(con: duckdb.DuckDBPyConnection) -> Any:
        row = reads.consent(con, consent_id)
        return row, (change_preview(con, sorted(party_isrcs(con, row["party_id"]))) if row else None)
    row, preview = await web.ledger(read)
    if row is None:
        raise HTTPException(404, f"no consent {consent_id}")
    return render(request, "change_preview.html", change="revoke", consent=row, preview=preview,
                  action=f"/consents/{consent_id}/revoke")


@login_required
async def deal_end(request: Request) -> Response:
    """GET: the impact preview for ending the deal on ``valid_to``; POST: record it through ``expire_deal``."""
    deal_id = request.path_params["deal_id"]
    web = _app(request)
    if request.method == "POST":
        form = await _form(request)
        actor = _principal(request)
        try:
            end = date.fromisoformat(str(form.get("valid_to", "")))
        except ValueError:
            _flash(request, "error", "the last day must be a date, YYYY-MM-DD")
            return RedirectResponse(f"/deals/{deal_id}/end", status_code=303)
        try:
            result = await web.ledger(lambda con: expire_deal(con, deal_id, valid_to=end, actor=actor,
                                                               evidence_ref=str(form.get("evidence_ref", "")),
                                                               reason=str(form.get("reason", ""))))
        except (RoleRefused, RevocationError) as exc:
            _flash(request, "error", f"refused ({exc.code}): {exc.message}")
            return RedirectResponse(f"/deals/{deal_id}/end", status_code=303)
        _flash(request, "ok", f"deal {deal_id} now ends on {result.valid_to} (by {actor.name}); "
                              f"{len(result.isrcs)} recording(s) re-decided")
        return RedirectResponse(f"/deals/{deal_id}", status_code=303)

    def read(con: duckdb.DuckDBPyConnection) -> Any:
        row = reads.deal(con, deal_id)
        return row, (change_preview(con, reads.deal_isrcs(con, deal_id)) if row else None)
    row, preview = await web.ledger(read)
    if row is None:
        raise HTTPException(404, f"no deal {deal_id}")
    return render(request, "change_preview.html", change="end", deal=row, preview=preview,
                  action=f"/deals/{deal_id}/end", today=datetime.now(UTC).date())


# Auditors -----------------------------------------------------------------------------------------

@login_required
async def models_page(request: Request) -> Response:
    page = _page(request)
    found, total = await _app(request).ledger(lambda con: reads.models(con, page=page))
    return render(request, "models.html", rows=found, pages=_pages(total, page))


@login_required
async def model_page(request: Request) -> Response:
    run_id = request.path_params["run_id"]
    try:
        trace = await _app(request).ledger(lambda con: trace_model(con, run_id, limit=200))
    except TraceNotFound as exc:
        raise HTTPException(404, str(exc)) from exc
    return render(request, "model.html", trace=trace, run_id=run_id)


@login_required
async def trace_song(request: Request) -> Response:
    isrc = request.query_params.get("isrc", "").strip()
    trace, error = None, None
    if isrc:
        try:
            trace = await _app(request).ledger(lambda con: trace_isrc(con, isrc))
        except (TraceNotFound, ValueError) as exc:
            error = str(exc)
    return render(request, "trace.html", isrc=isrc, trace=trace, error=error)


@login_required
async def audit_page(request: Request) -> Response:
    page = _page(request)
    run_verify = request.query_params.get("verify") == "1"

    def read(con: duckdb.DuckDBPyConnection) -> Any:
        head = audit.checkpoint(con)
        chain = audit.verify_chain(con)
        report = verify_ledger(con) if run_verify else None
        return head, chain, report, *reads.audit_tail(con, page=page)
    head, chain, report, entries, total = await _app(request).ledger(read)
    return render(request, "audit.html", head=head, chain=chain, report=report, rows=entries,
                  pages=_pages(total, page))


@login_required
async def checkpoint_download(request: Request) -> Response:
    head = await _app(request).ledger(audit.checkpoint)
    if head is None:
        raise HTTPException(404, "nothing has been written to this ledger yet")
    return Response(head.model_dump_json(indent=2), media_type="application/json",
                    headers={"Content-Disposition": 'attachment; filename="audit-head.json"'})


def _zip_dir(directory: Path) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for path in sorted(directory.rglob("*")):
            if path.is_file():
                zf.write(path, path.relative_to(directory).as_posix())
    return buf.getvalue()


@login_required
async def export_download(request: Request) -> Response:
    """The evidence pack or the AI Act summary of a model, written by the audited ``audit.export`` command."""
    run_id = request.path_params["run_id"]
    kind = request.path_params["kind"]
    form = await _form(request)
    actor = _principal(request)
    web = _app(request)
    provider = str(form.get("provider", "")).strip() or "not stated"
    stamp = f"{datetime.now(UTC):%Y%m%dT%H%M%S}-{secrets.token_hex(3)}"
    out = web.home.root / "exports" / re.sub(r"[^A-Za-z0-9_.-]", "_", run_id) / f"{kind}-{stamp}"

    def build(con: duckdb.DuckDBPyConnection) -> None:
        if kind == "evidence":
            export_pack(con, run_id, out, actor=actor, provider=provider)
        else:
            export_summary(con, run_id, out, actor=actor, provider=provider)
    if kind not in ("evidence", "ai-act-summary"):
        raise HTTPException(404)
    try:
        await web.ledger(build)
    except RoleRefused as exc:
        _flash(request, "error", f"refused ({exc.code}): {exc.message}")
        return RedirectResponse(f"/models/{run_id}", status_code=303)
    except (TraceNotFound, LookupError, ValueError) as exc:
        _flash(request, "error", str(exc))
        return RedirectResponse(f"/models/{run_id}", status_code=303)
    data = await run_in_threadpool(_zip_dir, out)
    return Response(data, media_type="application/zip",
                    headers={"Content-Disposition": f'attachment; filename="{out.parent.name}-{kind}.zip"'})


# Import -------------------------------------------------------------------------------------------

@login_required
async def import_page(request: Request) -> Response:
    return render(request, "import.html", templates=TEMPLATES, report=None)


@login_required
async def import_upload(request: Request) -> Response:
    """Save the upload under ``uploads/`` in the data directory and import it as the logged-in user."""
    form = await _form(request)
    actor = _principal(request)
    web = _app(request)
    upload = form.get("file")
    if not isinstance(upload, UploadFile) or not upload.filename:
        _flash(request, "error", "choose a rights CSV/JSON file or a DDEX message to upload")
        return RedirectResponse("/import", status_code=303)
    name = re.sub(r"[^A-Za-z0-9_.-]", "_", Path(upload.filename).name)[-120:] or "upload"
    data = await upload.read()
    sha = hashlib.sha256(data).hexdigest()
    target = web.home.root / "uploads" / f"{datetime.now(UTC):%Y%m%dT%H%M%S}-{sha[:12]}-{name}"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(data)
    suffix = target.suffix.lower()

    def run(con: duckdb.DuckDBPyConnection) -> Any:
        if suffix == ".xml":
            return import_ddex(con, target, actor=actor)
        return import_rights_file(con, target, actor=actor)
    try:
        report = await web.ledger(run)
    except RoleRefused as exc:
        _flash(request, "error", f"refused ({exc.code}): {exc.message}")
        return RedirectResponse("/import", status_code=303)
    return render(request, "import.html", templates=TEMPLATES, report=report, filename=upload.filename)


@login_required
async def template_download(request: Request) -> Response:
    name = request.path_params["name"]
    if name not in TEMPLATES:
        raise HTTPException(404)
    return FileResponse(HERE / "rights_templates" / name, filename=name)


async def not_authenticated(request: Request, exc: Exception) -> Response:
    if isinstance(exc, HTTPException) and exc.status_code == 401:
        return RedirectResponse("/login", status_code=303)
    status = exc.status_code if isinstance(exc, HTTPException) else 500
    detail = exc.detail if isinstance(exc, HTTPException) else "error"
    return render(request, "error.html", status_code=status, status=status, detail=detail)


async def security_headers(request: Request, call_next: Callable[..., Any]) -> Response:
    response: Response = await call_next(request)
    response.headers.setdefault("Content-Security-Policy", "default-src 'self'; form-action 'self'; "
                                                           "frame-ancestors 'none'; base-uri 'none'")
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("Referrer-Policy", "same-origin")
    response.headers.setdefault("Cache-Control", "no-store")
    return response


@contextlib.asynccontextmanager
async def warm_up(app: Starlette) -> AsyncIterator[None]:
    """Before the first request: compile every template and read the overview once.

    The first view of a page then costs what later views cost plus what its own rows take to
    read; the time taken is kept in ``app.state.warm_up_s`` (``bench/web_pages.py`` prints it).
    """
    started = time.perf_counter()
    for name in templates.env.list_templates():
        templates.env.get_template(name)
    await app.state.web.ledger(reads.overview)
    app.state.warm_up_s = time.perf_counter() - started
    yield


def create_app(home: Home, settings: auth.WebSettings, *, warm: bool = True) -> Starlette:
    """The Starlette application for one data directory (``warm``: run :func:`warm_up` at start-up)."""
    routes = [
        Route("/login", login_page, methods=["GET"]),
        Route("/login", login, methods=["POST"]),
        Route("/logout", logout, methods=["POST"]),
        Route("/", home_page),
        Route("/search", search),
        Route("/tracks/{track_id}", track),
        Route("/denied", denied_page),
        Route("/denied.csv", denied_download),
        Route("/quarantine", quarantine_page),
        Route("/releases", releases_page),
        Route("/releases/{release_id}", release_page),
        Route("/releases/{release_id}/{action}", release_decide, methods=["POST"]),
        Route("/parties", _listing("parties", reads.parties)),
        Route("/parties/{party_id}", party_page),
        Route("/deals", _listing("deals", reads.deals)),
        Route("/deals/{deal_id}", deal_page),
        Route("/deals/{deal_id}/end", deal_end, methods=["GET", "POST"]),
        Route("/consents", _listing("consents", reads.consents)),
        Route("/consents/{consent_id}", consent_page),
        Route("/consents/{consent_id}/revoke", consent_revoke, methods=["GET", "POST"]),
        Route("/models", models_page),
        Route("/models/{run_id}", model_page),
        Route("/models/{run_id}/export/{kind}", export_download, methods=["POST"]),
        Route("/trace", trace_song),
        Route("/audit", audit_page),
        Route("/audit/head.json", checkpoint_download),
        Route("/import", import_page, methods=["GET"]),
        Route("/import", import_upload, methods=["POST"]),
        Route("/import/templates/{name}", template_download),
        Mount("/static", StaticFiles(directory=str(HERE / "static")), name="static"),
    ]
    middleware = [Middleware(SessionMiddleware, secret_key=settings.secret_key, session_cookie="linernotes_session",
                             max_age=settings.session_max_age_s, same_site="strict",
                             https_only=settings.secure_cookies),
                  Middleware(BaseHTTPMiddleware, dispatch=security_headers)]
    app = Starlette(routes=routes, middleware=middleware,
                    exception_handlers={HTTPException: not_authenticated}, lifespan=warm_up if warm else None)
    app.state.web = WebApp(home, settings)
    return app


def session_secret(home: Home) -> str:
    """``keys/web-session.key`` in the data directory (created once, owner-only), unless the deployment supplies one."""
    path = home.root / "keys" / "web-session.key"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile("w", dir=path.parent, delete=False) as tmp:
            tmp.write(secrets.token_urlsafe(48))
        Path(tmp.name).chmod(0o600)
        shutil.move(tmp.name, path)
    return path.read_text(encoding="utf-8").strip()
