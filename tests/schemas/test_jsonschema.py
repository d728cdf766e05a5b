"""The checked-in JSON Schemas are exactly what the models export, and they accept what the models accept."""

from __future__ import annotations

import json

import jsonschema
import pytest

from licensing.contracts import CONTRACTS, SCHEMA_DIR, render
from schemas.rights import RightsFile


@pytest.mark.parametrize("name", sorted(CONTRACTS))
def test_checked_in_schema_matches_model(name: str) -> None:
    path = SCHEMA_DIR / f"{name}.json"
    assert path.is_file(), f"missing {path}: run python -m licensing.contracts"
    assert path.read_text(encoding="utf-8") == render(CONTRACTS[name]), \
        f"{path.name} is stale: run python -m licensing.contracts"


def test_rights_file_schema_accepts_demo_and_rejects_extra_fields() -> None:
    schema = json.loads((SCHEMA_DIR / "rights_file.json").read_text())
    demo = {"schema_version": 1,
            "parties": [{"party_id": "P-maxstack", "name": "Maxstack", "isni": None, "ipi": None}],
            "deals": [{"deal_id": "D-1", "licensor": "P-maxstack", "license": "CC-BY-SA-3.0", "isrcs": ["QZXXX2600001"],
                       "use_types": ["UseForTrainingGenerativeAI"], "territories": {"include": ["Worldwide"], "exclude": []},
                       "valid_from": "2012-12-15", "valid_to": None, "conditions": ["attribution_required"],
                       "rights_controllers": [{"party_id": "P-maxstack", "isrc": "QZXXX2600001", "share": 100.0}]}],
            "consents": []}
    jsonschema.validate(demo, schema)
    RightsFile.model_validate(demo)
    demo["deals"][0]["royalty"] = 3
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(demo, schema)
    demo["deals"][0].pop("royalty")
    demo["deals"][0]["use_types"] = ["UseForTrainingGenAI"]
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(demo, schema)
