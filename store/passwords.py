"""Web-login passwords: argon2id hashes kept in ``roles.yaml`` beside each user's roles.

``linernotes users set-password NAME`` calls :func:`set_password`, an audited command: a user may
set their own password; an admin may set anyone's. Service accounts never get one (they act
through the pipeline, not a browser). The hash is written into the roles file in place of the
previous one, atomically, by a round-trip YAML editor, so the file's comments, order and layout (often
kept under version control, reviewed by people) stay as they were; the audit entry names the user and
the roles file's hash before and after.
"""

from __future__ import annotations

import hashlib
import io
import os
import tempfile
from pathlib import Path
from typing import Any

import duckdb
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq

from store.ledger import command, record_refusal
from store.roles import Principal, RoleBook, RoleRefused, RolesError, as_principal, load_roles, roles_path_for

MIN_LENGTH = 12
_hasher = PasswordHasher()  # argon2id with the library's current recommended parameters (RFC 9106 low-memory)
_DUMMY = _hasher.hash("linernotes: no such user, same work")


class PasswordRejected(ValueError):
    """The password cannot be set (too short, unknown user, service account); the refusal is audited."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(book: RoleBook, name: str, password: str) -> bool:
    """Whether ``password`` is ``name``'s; unknown users and users without a hash cost the same work."""
    user = book.users.get(name)
    stored = user.password_argon2 if user is not None and not user.service else None
    try:
        return _hasher.verify(stored or _DUMMY, password) and stored is not None
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def password_version(book: RoleBook, name: str) -> str | None:
    """A short digest of the stored hash: a session made before the password changed no longer matches."""
    user = book.users.get(name)
    if user is None or not user.password_argon2:
        return None
    return hashlib.sha256(user.password_argon2.encode()).hexdigest()[:16]


def _write_atomically(path: Path, text: str) -> None:
    mode = path.stat().st_mode & 0o777 if path.exists() else 0o600
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".roles-", suffix=".yaml")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def set_password(con: duckdb.DuckDBPyConnection, name: str, password: str, *, actor: Principal | str,
                 roles_path: Path | None = None) -> str:
    """Store an argon2 hash of ``password`` for ``name`` in the roles file; return the file's new sha256.

    ``users.set_own_password`` when the actor is ``name``, else ``users.set_password`` (admins).
    Raises :class:`~store.roles.RoleRefused` or :class:`PasswordRejected` (both audited).
    """
    principal = as_principal(actor)
    path = Path(roles_path) if roles_path is not None else roles_path_for(con)
    action = "users.set_own_password" if principal.name == name else "users.set_password"
    subject = f"user:{name}"
    try:
        book = load_roles(path)
    except RolesError as exc:
        record_refusal(con, principal, action, subject, code="roles_unavailable", message=str(exc))
        raise RoleRefused("roles_unavailable", str(exc)) from exc
    code, message = "", ""
    if name not in book.users:
        code, message = "unknown_user", f"{name} is not a user in {path}"
    elif book.users[name].service:
        code, message = "service_account", f"{name} is a service account: it does not log in to the web app"
    elif len(password) < MIN_LENGTH:
        code, message = "password_too_short", f"a password needs at least {MIN_LENGTH} characters"
    if code:
        record_refusal(con, principal, action, subject, code=code, message=message)
        raise PasswordRejected(code, message)
    try:
        return _store(con, principal, action, subject, path, name, password)
    except RoleRefused:  # a PermissionError, so an OSError too: already recorded by the command
        raise
    except OSError as exc:
        message = f"cannot rewrite {path}: {exc.strerror or exc}"
        record_refusal(con, principal, action, subject, code="roles_unwritable", message=message)
        raise PasswordRejected("roles_unwritable", message) from exc


def _store(con: duckdb.DuckDBPyConnection, principal: Principal, action: str, subject: str, path: Path, name: str,
           password: str) -> str:
    with command(con, principal, action, subject) as w:
        raw = path.read_bytes()
        editor = YAML()  # round-trip: comments, key order and quoting survive the edit
        editor.preserve_quotes = True
        editor.width = 4096  # an argon2 hash stays on its line
        data: Any = editor.load(raw) or CommentedMap()
        users = data.setdefault("users", CommentedMap())
        entry = users.get(name)
        if not isinstance(entry, dict):  # the short form `name: [roles]` becomes a mapping
            roles = CommentedSeq(entry or [])
            roles.fa.set_flow_style()
            entry = CommentedMap(roles=roles)
            users[name] = entry
        entry["password_argon2"] = hash_password(password)
        out = io.StringIO()
        editor.dump(data, out)
        text = out.getvalue()
        after = hashlib.sha256(text.encode("utf-8")).hexdigest()
        w.payload.update({"user": name, "roles_file": str(path), "roles_sha256_before": hashlib.sha256(raw).hexdigest(),
                          "roles_sha256_after": after})
        _write_atomically(path, text)
    return after
