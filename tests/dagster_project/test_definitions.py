"""The asset graph as a reviewer sees it: a lineage change shows up here."""

import dagster as dg

import assets
from dagster_project.definitions import defs

EXPECTED_PARENTS = {
    "catalog_delivery": set(),
    "delivery_rights": {"catalog_delivery"},
    "track_fingerprints": {"catalog_delivery"},
    "optout_registry": set(),
    "fingerprint_index": {"track_fingerprints"},
    "duplicate_clusters": {"fingerprint_index"},
    "optout_matches": {"fingerprint_index", "optout_registry"},
    "rights_decisions": {"delivery_rights", "duplicate_clusters", "optout_matches"},
    "training_release": {"rights_decisions"},
    "release_shards": {"training_release"},
    "training_run": {"release_shards"},
    "model_lineage": {"training_run"},
}


def test_asset_graph_keys_and_dependencies() -> None:
    graph = defs.resolve_asset_graph()
    actual = {
        key.to_user_string(): {p.to_user_string() for p in graph.get(key).parent_keys}
        for key in graph.get_all_asset_keys()
    }
    assert actual == EXPECTED_PARENTS


def test_compliance_gates_are_blocking_checks() -> None:
    graph = defs.resolve_asset_graph()
    checks = {(k.asset_key.to_user_string(), k.name) for k in graph.asset_check_keys}
    assert checks == {("training_release", "release_excludes_denied_tracks"), ("release_shards", "shards_verified")}
    for check_def in dg.load_asset_checks_from_package_module(assets):
        for spec in check_def.check_specs:
            assert spec.blocking, spec.key


def test_partitioning_by_stage() -> None:
    graph = defs.resolve_asset_graph()

    def partitions(name: str) -> str | None:
        pdef = graph.get(dg.AssetKey(name)).partitions_def
        return getattr(pdef, "name", None)

    assert {n for n in EXPECTED_PARENTS if partitions(n) == "deliveries"} == {
        "catalog_delivery", "delivery_rights", "track_fingerprints", "fingerprint_index"}
    assert {n for n in EXPECTED_PARENTS if partitions(n) == "releases"} == {"training_release", "release_shards"}
    assert {n for n in EXPECTED_PARENTS if partitions(n) == "training_runs"} == {"training_run", "model_lineage"}
    assert partitions("rights_decisions") is None


def test_jobs_and_sensor_are_defined() -> None:
    names = {j.name for j in defs.resolve_all_job_defs()}
    assert {"ingest_delivery", "match_and_decide", "propose_release", "build_shards", "train_model"} <= names
    assert defs.resolve_sensor_def("delivery_inbox_sensor").job_name == "ingest_delivery"
