"""The signing key of a ledger: Ed25519 signatures over the audit chain's head.

Each command of the write path signs the head it leaves (sequence number and entry hash) and
stores the signature in ``audit_heads``. An auditor keeps a signed head elsewhere
(``linernotes audit checkpoint``); ``audit verify --against`` later proves the log still holds
that exact prefix, as a transparency log's signed tree head does.

The key is ``$LINERNOTES_SIGNING_KEY`` (a PEM file supplied by the deployment, readable by the
service that writes the ledger and by nobody else) or, by default, ``keys/ledger-ed25519.pem``
under the data directory, created on first use. A key under the data directory proves only that
the log was not rewritten by someone without access to that directory; the checkpoint held
elsewhere is what proves the rest.
"""

from __future__ import annotations

import base64
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

KEY_ENV = "LINERNOTES_SIGNING_KEY"
KEY_FILE = Path("keys") / "ledger-ed25519.pem"
ALGORITHM = "ed25519"


class SigningError(RuntimeError):
    """The signing key cannot be read or created."""


@dataclass(frozen=True)
class SigningKey:
    private: Ed25519PrivateKey
    source: str

    @property
    def public_raw(self) -> bytes:
        return self.private.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)

    @property
    def public_b64(self) -> str:
        return base64.b64encode(self.public_raw).decode("ascii")

    @property
    def key_id(self) -> str:
        return key_id_of(self.public_raw)

    def sign(self, message: bytes) -> str:
        return base64.b64encode(self.private.sign(message)).decode("ascii")


def key_id_of(public_raw: bytes) -> str:
    return hashlib.sha256(public_raw).hexdigest()[:16]


def head_message(ledger_id: str, seq: int, entry_hash: str) -> bytes:
    """What is signed: the ledger's id, the head's sequence number and its entry hash."""
    return f"linernotes-audit-head|v1|{ledger_id}|{seq}|{entry_hash}".encode()


def load_key(root: Path | None) -> SigningKey:
    """The deployment's key (``$LINERNOTES_SIGNING_KEY``), else the data directory's, created if absent."""
    env = os.environ.get(KEY_ENV)
    if env:
        path = Path(env)
        create = False
    elif root is not None:
        path = root / KEY_FILE
        create = True
    else:
        raise SigningError("an in-memory ledger has no data directory to keep a signing key in")
    if not path.exists():
        if not create:
            raise SigningError(f"{KEY_ENV} names {path}, which does not exist")
        path.parent.mkdir(parents=True, exist_ok=True)
        key = Ed25519PrivateKey.generate()
        pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(pem)
            handle.flush()
            os.fsync(handle.fileno())
        try:
            os.link(tmp, path)  # exclusive: when two processes create the key at once, the first one wins
            (path.with_suffix(".pub")).write_text(SigningKey(key, str(path)).public_b64 + "\n", encoding="ascii")
        except FileExistsError:
            pass
        finally:
            tmp.unlink()
    try:
        loaded = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (OSError, ValueError) as exc:
        raise SigningError(f"cannot read the signing key {path}: {exc}") from exc
    if not isinstance(loaded, Ed25519PrivateKey):
        raise SigningError(f"{path} is not an Ed25519 private key")
    return SigningKey(loaded, str(path))


def verify_signature(public_b64: str, message: bytes, signature_b64: str) -> bool:
    try:
        Ed25519PublicKey.from_public_bytes(base64.b64decode(public_b64)).verify(base64.b64decode(signature_b64),
                                                                                  message)
    except (InvalidSignature, ValueError):
        return False
    return True
