"""Loading the rights policy and keeping every version that decided something."""

from __future__ import annotations

import importlib.resources
import json
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import yaml

from schemas.canonical import canonical_json
from schemas.policy import Policy
from store.ledger import Writer

DEFAULT_POLICY = "default.yaml"


class PolicyError(ValueError):
    """The policy file cannot be read or does not describe a valid policy."""


def load_policy(path: str | Path | None = None) -> Policy:
    """Load a policy YAML (the packaged default when ``path`` is None) into a validated model."""
    if path is None:
        text = importlib.resources.files("licensing").joinpath("policies", DEFAULT_POLICY).read_text(encoding="utf-8")
        origin = f"licensing/policies/{DEFAULT_POLICY}"
    else:
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as exc:
            raise PolicyError(f"cannot read policy {path}: {exc}") from exc
        origin = str(path)
    try:
        data = yaml.safe_load(text)
        return Policy.model_validate(data)
    except (yaml.YAMLError, ValueError) as exc:
        raise PolicyError(f"invalid policy {origin}: {exc}") from exc


def store_policy(w: Writer, policy: Policy) -> str:
    """Keep the policy content under its hash (inside the caller's command), so any decision can be traced
    to the exact rules."""
    if not w.con.execute("SELECT count(*) FROM policies WHERE policy_hash = ?", [policy.content_hash]).fetchall()[0][0]:
        w.insert("policies", [{"policy_hash": policy.content_hash, "policy_id": policy.policy_id,
                               "version": policy.version, "content": canonical_json(policy.model_dump(mode="json")),
                               "loaded_at": datetime.now(UTC)}])
    return policy.content_hash


def policy_by_hash(con: duckdb.DuckDBPyConnection, policy_hash: str) -> Policy | None:
    """The stored policy with this content hash, or None."""
    row = con.execute("SELECT content FROM policies WHERE policy_hash = ?", [policy_hash]).fetchone()
    if row is None:
        return None
    content = row[0] if isinstance(row[0], dict) else json.loads(row[0])
    return Policy.model_validate(content)
