"""Who is logged in: password logins against ``roles.yaml``, a trusted SSO header, sessions, CSRF and throttling.

A session is a signed cookie (itsdangerous, via Starlette's ``SessionMiddleware``: HttpOnly,
SameSite=Strict, ``Secure`` when configured) holding the user's name, when they logged in, a
digest of their password hash and the session's CSRF token. It is checked on every request against
the roles file as it is now: a removed user, a changed password or an expired session ends it.
"""

from __future__ import annotations

import hmac
import secrets
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from store.passwords import password_version
from store.roles import Principal, RoleBook, RolesError, load_roles

SESSION_USER = "user"


@dataclass
class WebSettings:
    """How the web app runs; every field has a safe default."""

    roles_path: Path
    secret_key: str
    session_max_age_s: int = 8 * 3600
    secure_cookies: bool = False            # set behind HTTPS: the cookie is then sent over HTTPS only
    sso_header: str | None = None           # e.g. X-Forwarded-User, set by a reverse proxy that authenticated
    trusted_proxies: frozenset[str] = frozenset({"127.0.0.1", "::1"})
    login_attempts: int = 5                 # failures allowed per user and per client address ...
    login_window_s: int = 300               # ... within this window


@dataclass
class LoginThrottle:
    """Failed logins per user name and per client address in a sliding window."""

    attempts: int
    window_s: float
    _failures: dict[str, deque[float]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def _recent(self, key: str, now: float) -> deque[float]:
        q = self._failures.setdefault(key, deque())
        while q and now - q[0] > self.window_s:
            q.popleft()
        return q

    def blocked(self, *keys: str) -> float:
        """Seconds until a login with these keys may be tried again (0: now)."""
        now = time.monotonic()
        with self._lock:
            waits = [self.window_s - (now - q[0]) for k in keys if len(q := self._recent(k, now)) >= self.attempts]
        return max(waits, default=0.0)

    def fail(self, *keys: str) -> None:
        now = time.monotonic()
        with self._lock:
            for k in keys:
                self._recent(k, now).append(now)

    def succeed(self, user_key: str) -> None:
        with self._lock:
            self._failures.pop(user_key, None)


def roles(settings: WebSettings) -> RoleBook | None:
    try:
        return load_roles(settings.roles_path)
    except RolesError:
        return None


def start_session(session: dict[str, Any], book: RoleBook, name: str) -> None:
    session.clear()
    session.update({SESSION_USER: name, "login_at": int(time.time()), "pwv": password_version(book, name),
                    "csrf": secrets.token_urlsafe(32)})


def session_user(session: dict[str, Any], book: RoleBook | None, settings: WebSettings) -> str | None:
    """The logged-in user, or None (and the session cleared) when it expired or no longer matches the roles file."""
    name = session.get(SESSION_USER)
    if not name:
        return None
    fresh = time.time() - float(session.get("login_at", 0)) <= settings.session_max_age_s
    valid = book is not None and name in book.users and not book.users[name].service
    if not (fresh and valid and book is not None and session.get("pwv") == password_version(book, name)):
        session.clear()
        return None
    return str(name)


def sso_user(headers: Any, client_host: str | None, book: RoleBook | None, settings: WebSettings) -> str | None:
    """The user a trusted reverse proxy vouches for, when the SSO header is configured and the caller is that proxy."""
    if not settings.sso_header or client_host not in settings.trusted_proxies or book is None:
        return None
    name = (headers.get(settings.sso_header) or "").strip()
    if name and name in book.users and not book.users[name].service:
        return name
    return None


def principal(name: str, method: str, client_host: str | None, settings: WebSettings) -> Principal:
    if method == "sso_header":
        return Principal(name=name, method="sso_header", via=f"sso:{settings.sso_header}@{client_host or '-'}")
    return Principal(name=name, method="web_login", via=f"web:{client_host or '-'}")


def csrf_token(session: dict[str, Any]) -> str:
    token = session.get("csrf")
    if not token:
        token = session["csrf"] = secrets.token_urlsafe(32)
    return str(token)


def csrf_ok(session: dict[str, Any], submitted: str | None) -> bool:
    expected = session.get("csrf")
    return bool(expected and submitted and hmac.compare_digest(str(expected), str(submitted)))
