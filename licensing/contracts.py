"""Export the JSON Schema of every rights contract to ``schemas/jsonschema/`` (checked in, compared in CI).

Run ``python -m licensing.contracts`` after changing a model.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from pydantic import BaseModel

from licensing.impact import ImpactReport
from licensing.importers import ImportReport
from licensing.revocation import DealExpiry, Revocation
from schemas.decisions import Decision, EvaluationSummary
from schemas.policy import Policy
from schemas.releases import Approval, Release
from schemas.rights import Consent, Deal, Party, Recording, RightsFile, Work

CONTRACTS: dict[str, type[BaseModel]] = {
    "party": Party, "recording": Recording, "work": Work, "deal": Deal, "consent": Consent,
    "rights_file": RightsFile, "policy": Policy, "decision": Decision, "evaluation_summary": EvaluationSummary,
    "release": Release, "approval": Approval, "import_report": ImportReport,
    "revocation": Revocation, "deal_expiry": DealExpiry, "impact_report": ImpactReport,
}
SCHEMA_DIR = Path(__file__).resolve().parent.parent / "schemas" / "jsonschema"


def render(model: type[BaseModel]) -> str:
    return json.dumps(model.model_json_schema(mode="validation"), indent=2, sort_keys=True) + "\n"


def export(directory: Path = SCHEMA_DIR) -> list[Path]:
    """Write one ``<name>.json`` per contract and return the paths."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, model in CONTRACTS.items():
        path = directory / f"{name}.json"
        path.write_text(render(model), encoding="utf-8")
        written.append(path)
    return written


if __name__ == "__main__":
    for p in export(Path(sys.argv[1]) if len(sys.argv) > 1 else SCHEMA_DIR):
        print(p)
