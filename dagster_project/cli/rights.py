"""``linernotes rights|release|consent ...`` and ``linernotes impact``: thin commands over ``licensing``."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any, Optional

import typer
from rich.markup import escape

from dagster_project.cli.common import (
    ActorOption,
    HomeOption,
    JsonOption,
    actor_from,
    console,
    fail,
    home_from,
    print_json,
    refusals,
)

PURPOSE_HELP = "DDEX use type: UseForTrainingGenerativeAI, UseForTrainingNonGenerativeAI or UseForDataMining."
PolicyOption = typer.Option(None, "--policy", help="Policy YAML (default: the packaged licensing policy).")
ROLE_CODES = ("role_missing", "unknown_user", "roles_unavailable", "unknown_action")


def _policy(path: Optional[Path]):  # type: ignore[no-untyped-def]
    from licensing.policy import PolicyError, load_policy

    try:
        return load_policy(path)
    except PolicyError as exc:
        fail(str(exc))


def _date(text: str, option: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        fail(f"{option} must be YYYY-MM-DD, got {text!r}")
        raise


def _print_report(report, as_json: bool) -> None:  # type: ignore[no-untyped-def]
    if as_json:
        print_json(report.model_dump(mode="json"))
        return
    if report.already_imported:
        console.print(f"[dim]{report.path}: already imported (sha256 {report.file_sha256[:12]}), nothing changed[/dim]")
        return
    status = "[red]rejected[/red]" if report.rejected else "[green]imported[/green]"
    console.print(f"{report.path}: {status} parties={report.parties} recordings={report.recordings} "
                  f"deals={report.deals} consents={report.consents} errors={len(report.errors)}")
    for err in report.errors:
        console.print(f"  [yellow]{err.reason_code}[/yellow] {escape(err.source_ref)}: {escape(err.message)}")


def _print_impact(report: Any) -> None:
    console.print(f"[bold]{report.isrc}[/bold] on {report.checked_on}: tracks {', '.join(report.track_ids) or 'none in the catalog'}")
    console.print("decisions now:")
    for d in report.decisions_now:
        verdict = "[green]allowed[/green]" if d.allowed else f"[red]denied[/red] ({', '.join(d.reason_codes)})"
        console.print(f"  {d.purpose} in {d.territory} (policy {d.policy_hash[:12]}): {verdict}")
    console.print(f"releases ({len(report.releases)}):")
    for r in report.releases:
        alert = f" [red]alert: {', '.join(r.alert_reason_codes)}[/red]" if r.alert_reason_codes else ""
        console.print(f"  {r.release_id} {r.status} {r.purpose} {r.territory} approved by {r.approved_by or '-'}{alert}")
    console.print(f"shard builds ({len(report.shard_builds)}):")
    for b in report.shard_builds:
        console.print(f"  {b.build_id} ({b.release_id}) {b.rows} row(s) in shard(s) {list(b.shard_indexes)}: {b.manifest_uri}")
    for e in report.shard_exclusions:
        console.print(f"  left out of {e.build_id}: {e.reason_code}")
    console.print(f"training runs / models ({len(report.training_runs)}):")
    for t in report.training_runs:
        ack = " (trained past its denial under acknowledgement)" if t.acknowledged else ""
        console.print(f"  {t.run_id} {t.status} model {t.model}: {t.samples} sample(s), {t.fraction:.4%}{ack}; "
                      f"checkpoint {t.checkpoint_uri or '-'}")
    for v in report.revocations:
        console.print(f"revocation {v['revocation_id']} by {v['party_id']} at {v['revoked_at']}: {v['evidence_ref']}")
    for x in report.deal_expiries:
        console.print(f"deal {x['deal_id']} ended {x['valid_to']} (was {x['previous_valid_to'] or 'open'}): {x['evidence_ref']}")


def _record_change(home: Optional[str], change):  # type: ignore[no-untyped-def]
    """Run a revocation or deal-end on the ledger; a role refusal exits 3, any other refusal exits 1."""
    from licensing.revocation import RevocationError
    from store.database import connect
    from store.roles import RoleRefused

    with connect(home_from(home).db_path) as con:
        try:
            return change(con)
        except RoleRefused as exc:
            fail(f"refused ({exc.code}): {exc.message}", code=3)
        except RevocationError as exc:
            fail(f"{exc.code}: {exc.message}")


def register(app: typer.Typer) -> None:
    rights = typer.Typer(no_args_is_help=True, help="Rights data: import deals and consents, explain decisions.")
    release = typer.Typer(no_args_is_help=True, help="Training releases: propose, approve, reject, inspect.")
    consent = typer.Typer(no_args_is_help=True, help="Consents: record a withdrawal (revocation).")
    app.add_typer(rights, name="rights")
    app.add_typer(release, name="release")
    app.add_typer(consent, name="consent")

    @consent.command("revoke")
    def revoke_cmd(party: str = typer.Option(..., "--party", help="The party withdrawing consent."),
                   consent_id: Optional[str] = typer.Option(None, "--consent-id", help="Revoke this consent."),
                   scope: Optional[str] = typer.Option(None, "--scope", help="Revoke every consent of this scope "
                                                                           "(all, recording, work)."),
                   isrc: Optional[str] = typer.Option(None, "--isrc", help="Withdraw for this recording only."),
                   evidence_ref: str = typer.Option(..., "--evidence-ref", help="Where the withdrawal is kept."),
                   evidence_sha256: Optional[str] = typer.Option(None, "--evidence-sha256"),
                   reason: str = typer.Option("", "--reason", "-m"),
                   home: Optional[str] = HomeOption, actor: Optional[str] = ActorOption,
                   as_json: bool = JsonOption) -> None:
        """Record a consent withdrawal (rights team): revoked_at is set, nothing is deleted, all audited."""
        from licensing.revocation import revoke_consent

        who = actor_from(actor, home_from(home))
        result = _record_change(home, lambda con: revoke_consent(
            con, party_id=party, consent_id=consent_id, scope=scope, isrc=isrc, evidence_ref=evidence_ref,
            evidence_sha256=evidence_sha256, reason=reason, actor=who))
        if as_json:
            print_json(result.model_dump(mode="json"))
            return
        console.print(f"[bold]{result.revocation_id}[/bold]: {party} revoked "
                      f"{', '.join(result.revoked_consent_ids) or 'no stored consent'}"
                      + (f"; refusal {result.refusal_consent_id} recorded for {isrc}" if result.refusal_consent_id else "")
                      + f" at {result.revoked_at:%Y-%m-%d %H:%M} UTC; {len(result.isrcs)} recording(s) concerned")
        console.print("  the rights_change_sensor re-decides and reports; `linernotes impact <ISRC>` shows one now")

    @app.command("impact")
    def impact_cmd(isrc: str = typer.Argument(..., help="ISRC of the recording."),
                   on: Optional[str] = typer.Option(None, "--on", help="Decide as of YYYY-MM-DD (default: today)."),
                   home: Optional[str] = HomeOption, as_json: bool = JsonOption) -> None:
        """Every release, shard build and training run holding a recording, and what the policy says of it now."""
        from licensing.impact import impact_report
        from store.database import connect

        when = _date(on, "--on") if on else None
        with connect(home_from(home).db_path, read_only=True) as con:
            try:
                report = impact_report(con, isrc, on_date=when)
            except ValueError as exc:
                fail(str(exc))
        if as_json:
            print_json(report.model_dump(mode="json"))
            return
        _print_impact(report)

    def _import(files: list[Path], home: Optional[str], actor: Optional[str], as_json: bool,
                supersede: list[str], evidence_ref: Optional[str], read: Callable[..., Any]) -> None:
        """Import each file in turn (each in one command); exit 1 if any was rejected or met a conflict."""
        from licensing.records import Supersession
        from store.database import connect
        from store.roles import RoleRefused

        if supersede and not (evidence_ref and evidence_ref.strip()):
            fail("--supersede needs --evidence-ref: where the document that overrides the earlier event is kept",
                 code=2)
        data_home = home_from(home)
        who = actor_from(actor, data_home)
        override = Supersession(frozenset(supersede), evidence_ref or "") if supersede else None
        failed = 0
        with connect(data_home.db_path) as con:
            for f in files:
                try:
                    report = read(con, f, who, override)
                except RoleRefused as exc:
                    fail(f"refused ({exc.code}): {exc.message}", code=3)
                failed += report.rejected or any(e.reason_code == "rights_conflict" for e in report.errors)
                _print_report(report, as_json)
        if failed:
            raise typer.Exit(1)

    SupersedeOption = typer.Option([], "--supersede", metavar="EVENT_ID",
                                   help="Let these records loosen what this rights event restricted (repeatable; "
                                        "needs --evidence-ref; audited).")
    EvidenceOption = typer.Option(None, "--evidence-ref", help="Where the document behind --supersede is kept.")
    MatchNamesOption = typer.Option(False, "--match-names",
                                    help="Also match a party with no shared ISNI/IPI/DPID to the one recorded party "
                                         "of exactly the same normalised name.")

    parties = typer.Typer(no_args_is_help=True, help="Parties: one per person or company.")
    rights.add_typer(parties, name="parties")

    @parties.command("merge")
    def merge_cmd(keep: str = typer.Argument(..., help="The party that stays."),
                  merge: str = typer.Argument(..., help="The party merged into it (same person or company)."),
                  evidence_ref: str = typer.Option(..., "--evidence-ref", help="Where the proof of identity is kept."),
                  reason: str = typer.Option("", "--reason", "-m"),
                  home: Optional[str] = HomeOption, actor: Optional[str] = ActorOption,
                  as_json: bool = JsonOption) -> None:
        """Merge two records of one party (rights team): deals, consents, contributions and shares follow; audited."""
        from licensing.parties import PartyMergeError, merge_parties
        from store.database import connect
        from store.roles import RoleRefused

        data_home = home_from(home)
        who = actor_from(actor, data_home)
        with connect(data_home.db_path) as con:
            try:
                result = merge_parties(con, keep, merge, actor=who, evidence_ref=evidence_ref, reason=reason)
            except RoleRefused as exc:
                fail(f"refused ({exc.code}): {exc.message}", code=3)
            except PartyMergeError as exc:
                fail(f"{exc.code}: {exc.message}", code=2)
        if as_json:
            print_json(result)
            return
        moved = ", ".join(f"{n} {t}" for t, n in result["moved"].items() if n) or "no records"
        console.print(f"party [bold]{result['merged']}[/bold] merged into [bold]{result['kept']}[/bold] "
                      f"({moved} moved; event {result['event']})")

    @rights.command("import-ddex")
    def import_ddex_cmd(files: list[Path] = typer.Argument(..., exists=True, dir_okay=False),
                        validate_xsd: bool = typer.Option(False, "--validate", "--validate-xsd",
                                                          help="Validate against the DDEX XSD of the message's standard and version."),
                        xsd_dir: Optional[Path] = typer.Option(None, "--xsd-dir",
                                                               help="Folder holding ernv43/, ernv42/, ernv383/, mwnv13/ ... (DDEX's XSDs; default $LINERNOTES_DDEX_XSD_DIR)."),
                        strict: bool = typer.Option(False, "--strict", help="Reject a message if any item is invalid."),
                        match_names: bool = MatchNamesOption, supersede: list[str] = SupersedeOption, evidence_ref: Optional[str] = EvidenceOption,
                        home: Optional[str] = HomeOption, actor: Optional[str] = ActorOption,
                        as_json: bool = JsonOption) -> None:
        """Import DDEX ERN 4.1-4.3 / 3.8.x and MWN 1.1 / 1.3 messages (the type is read from the message), each
        message in one command (rights team)."""
        from licensing.importers.ddex import import_ddex

        _import(files, home, actor, as_json, supersede, evidence_ref, lambda con, f, who, over: import_ddex(
            con, f, actor=who, validate_xsd=validate_xsd, xsd_dir=xsd_dir, strict=strict, supersede=over,
            match_names=match_names))

    @rights.command("import")
    def import_cmd(files: list[Path] = typer.Argument(..., exists=True, dir_okay=False),
                   match_names: bool = MatchNamesOption, supersede: list[str] = SupersedeOption, evidence_ref: Optional[str] = EvidenceOption,
                   home: Optional[str] = HomeOption, actor: Optional[str] = ActorOption,
                   as_json: bool = JsonOption) -> None:
        """Import CSV/JSON licenses, consents and parties; bad records are quarantined, the rest imported (rights team).

        A record that would loosen what a later event restricted (an early deal end, a revoked or refused
        consent, an excluded territory) is refused as rights_conflict, naming that event.
        """
        from licensing.importers.tabular import import_rights_file

        _import(files, home, actor, as_json, supersede, evidence_ref,
                lambda con, f, who, over: import_rights_file(con, f, actor=who, supersede=over,
                                                             match_names=match_names))

    @rights.command("history")
    def history_cmd(ref: str = typer.Argument(..., help="An ISRC, a deal id, a consent id or a party id."),
                    home: Optional[str] = HomeOption, as_json: bool = JsonOption) -> None:
        """Every recorded change to a recording, deal, consent or party, oldest first, with who, why and evidence."""
        from rich.table import Table

        from licensing.records import history
        from store.database import connect

        with connect(home_from(home).db_path, read_only=True) as con:
            events = history(con, ref.strip())
        if as_json:
            print_json(events)
            return
        if not events:
            fail(f"no rights event concerns {ref!r}")
        table = Table("event", "when", "who", "what", "subject", "tightened", "loosened", "evidence / source",
                      title=f"rights history of {ref}")
        for e in events:
            what = e["kind"] + (f" (supersedes {', '.join(e['supersedes'])})" if e["supersedes"] else "")
            table.add_row(e["event_id"], f"{e['recorded_at']:%Y-%m-%d %H:%M}", e["actor"], what,
                          f"{e['subject_kind']} {e['subject_id']}", ", ".join(e["tightened"]) or "-",
                          ", ".join(e["loosened"]) or "-", e["evidence_ref"] or e["source"])
        console.print(table)

    @rights.command("expire-deal")
    def expire_deal_cmd(deal_id: str = typer.Argument(..., help="The deal that ends early."),
                        valid_to: str = typer.Option(..., "--valid-to", help="Last day the deal licenses, YYYY-MM-DD."),
                        evidence_ref: str = typer.Option(..., "--evidence-ref", help="Where the termination is kept."),
                        reason: str = typer.Option("", "--reason", "-m"),
                        home: Optional[str] = HomeOption, actor: Optional[str] = ActorOption,
                        as_json: bool = JsonOption) -> None:
        """End a deal early (rights team); the rights_change_sensor re-decides and reports the impact."""
        from licensing.revocation import expire_deal

        who = actor_from(actor, home_from(home))
        end = _date(valid_to, "--valid-to")
        result = _record_change(home, lambda con: expire_deal(con, deal_id, valid_to=end, actor=who,
                                                              evidence_ref=evidence_ref, reason=reason))
        if as_json:
            print_json(result.model_dump(mode="json"))
            return
        console.print(f"deal {result.deal_id}: valid to [bold]{result.valid_to}[/bold] (was {result.previous_valid_to or 'open'}); "
                      f"{len(result.isrcs)} recording(s) affected from {result.valid_to}")

    @rights.command("recount")
    def recount_cmd(home: Optional[str] = HomeOption, actor: Optional[str] = ActorOption) -> None:
        """Count the current decisions per reason anew (decision_counts), e.g. for a ledger written before
        they were kept or when `audit verify` finds them changed; needs the rights.evaluate permission."""
        from licensing.decision_counts import recount
        from store.database import connect
        from store.roles import RoleRefused

        who = actor_from(actor, home_from(home))
        with connect(home_from(home).db_path) as con:
            try:
                keys = recount(con, actor=who)
            except RoleRefused as exc:
                fail(f"refused ({exc.code}): {exc.message}", code=3)
        console.print(f"decision counts rebuilt for {keys} evaluation key(s)")

    @rights.command("import-lyrics")
    def import_lyrics_cmd(path: Path = typer.Argument(..., help="JSON list of lyrics licences (schemas/text.py)."),
                          home: Optional[str] = HomeOption, actor: Optional[str] = ActorOption) -> None:
        """Record publishers' lyrics licences (with the lyrics): long-form shards ship lyrics only under one."""
        import json

        from pydantic import TypeAdapter, ValidationError

        from licensing.lyrics import record_lyrics_licences
        from schemas.text import LyricsLicence
        from store.database import connect

        h = home_from(home)
        who = actor_from(actor, h)
        try:
            licences = TypeAdapter(list[LyricsLicence]).validate_python(json.loads(path.read_text(encoding="utf-8")))
        except (OSError, ValueError, ValidationError) as exc:
            fail(f"{path}: {escape(str(exc))}", code=2)
            return
        with connect(h.db_path) as con, refusals():
            written = record_lyrics_licences(con, licences, actor=who, source=str(path))
        console.print(f"{written} lyrics licence(s) recorded from {path}")

    @rights.command("explain")
    def explain_cmd(isrc: str = typer.Argument(..., help="ISRC of the recording."),
                    purpose: str = typer.Option(..., "--purpose", help=PURPOSE_HELP),
                    territory: str = typer.Option(..., "--territory", help="ISO 3166-1 alpha-2 code or Worldwide."),
                    on: Optional[str] = typer.Option(None, "--on", help="Date of use, YYYY-MM-DD (default: today)."),
                    policy: Optional[Path] = PolicyOption, home: Optional[str] = HomeOption,
                    as_json: bool = JsonOption) -> None:
        """Print the decision for one recording and every reason behind it."""
        from licensing.evaluate import UnknownPurpose, require_purpose
        from licensing.explain import consent_denials, explain_all
        from schemas.decisions import REASON_TEXT
        from schemas.identifiers import normalize_territory
        from store.database import connect

        on_date = _date(on, "--on") if on else date.today()
        pol = _policy(policy)
        try:
            require_purpose(pol, purpose)
            territory = normalize_territory(territory)
        except (UnknownPurpose, ValueError) as exc:
            fail(str(exc), code=2)
        with connect(home_from(home).db_path, read_only=True) as con:
            try:
                decisions = explain_all(con, isrc, purpose=purpose, territory=territory, on_date=on_date, policy=pol)
            except ValueError as exc:
                fail(str(exc), code=2)
            named = [consent_denials(con, d) for d in decisions]
        if as_json:
            print_json([{**d.model_dump(mode="json"), "consent_denials": n} for d, n in zip(decisions, named, strict=True)])
            return
        for d, lines in zip(decisions, named, strict=True):
            verdict = "[green]ALLOWED[/green]" if d.allowed else "[red]DENIED[/red]"
            console.print(f"{verdict} {d.isrc} (track {d.track_id or 'not in catalog'}) for {d.purpose} "
                          f"in {d.territory} on {d.on_date}")
            for code in d.reason_codes:
                console.print(f"  [yellow]{code.value}[/yellow]: {REASON_TEXT[code]}")
            for line in lines:
                console.print(f"    {escape(line)}")
            if d.allowed:
                console.print(f"  deal {d.deal_id}; consents {', '.join(d.consent_ids) or 'none required'}")
            for key, value in sorted(d.evidence.items()):
                if value not in (None, [], {}) and key != "consent_findings":
                    shown = ", ".join(str(v) for v in value) if isinstance(value, list) else str(value)
                    console.print(f"  {key.replace('_', ' ')}: {escape(shown)}")
            console.print(f"  policy {d.policy_hash[:12]}  inputs {d.inputs_hash[:12]}  decision {d.decision_id}")

    @release.command("propose")
    def propose_cmd(purpose: str = typer.Option(..., "--purpose", help=PURPOSE_HELP),
                    territory: str = typer.Option(..., "--territory"),
                    on: Optional[str] = typer.Option(None, "--on", help="Date of use, YYYY-MM-DD (default: today)."),
                    release_id: Optional[str] = typer.Option(None, "--id", help="Release id (default: generated)."),
                    policy: Optional[Path] = PolicyOption,
                    home: Optional[str] = HomeOption, actor: Optional[str] = ActorOption,
                    as_json: bool = JsonOption) -> None:
        """Freeze the currently allowed tracks for one purpose into a proposed release (ML engineers)."""
        from licensing.evaluate import UnknownPurpose, require_purpose
        from licensing.releases import ReleaseError, propose_release
        from schemas.identifiers import normalize_territory
        from store.database import connect

        who = actor_from(actor, home_from(home))
        pol = _policy(policy)
        try:
            require_purpose(pol, purpose)
            territory = normalize_territory(territory)
        except (UnknownPurpose, ValueError) as exc:
            fail(str(exc), code=2)
        with connect(home_from(home).db_path) as con:
            try:
                rel = propose_release(con, purpose=purpose, territory=territory,
                                      on_date=date.fromisoformat(on) if on else date.today(), actor=who, policy=pol,
                                      release_id=release_id)
            except ReleaseError as exc:
                fail(f"{exc.code}: {exc.message}", code=3 if exc.code in ROLE_CODES else 1)
        if as_json:
            print_json(rel.model_dump(mode="json", exclude={"tracks"}))
        else:
            console.print(f"[green]proposed[/green] {rel.release_id}: {rel.track_count} tracks for {rel.purpose} "
                          f"in {rel.territory} on {rel.on_date} (policy {rel.policy_hash[:12]}, "
                          f"content {rel.content_sha256[:12]})")

    def _decide(action: str, release_id: str, comment: str, home: Optional[str], actor: Optional[str],
                as_json: bool) -> None:
        from licensing import releases as rl
        from store.database import connect

        who = actor_from(actor, home_from(home))
        fn = {"approve": rl.approve_release, "reject": rl.reject_release, "revoke": rl.revoke_release}[action]
        with connect(home_from(home).db_path) as con:
            try:
                rel = fn(con, release_id, actor=who, comment=comment)
            except rl.ReleaseError as exc:
                fail(f"{exc.code}: {exc.message}", code=3 if exc.code in ROLE_CODES else 1)
        if as_json:
            print_json(rel.model_dump(mode="json", exclude={"tracks"}))
        else:
            console.print(f"{rel.release_id}: [bold]{rel.status}[/bold] by {who}: {comment}")

    @release.command("approve")
    def approve_cmd(release_id: str, comment: str = typer.Option(..., "--comment", "-m"),
                    home: Optional[str] = HomeOption,
                    actor: Optional[str] = ActorOption, as_json: bool = JsonOption) -> None:
        """Approve a proposed release (rights team; not the proposer)."""
        _decide("approve", release_id, comment, home, actor, as_json)

    @release.command("reject")
    def reject_cmd(release_id: str, comment: str = typer.Option(..., "--comment", "-m"),
                   home: Optional[str] = HomeOption,
                   actor: Optional[str] = ActorOption, as_json: bool = JsonOption) -> None:
        """Reject a proposed release with the reason (rights team; not the proposer)."""
        _decide("reject", release_id, comment, home, actor, as_json)

    @release.command("revoke")
    def revoke_release_cmd(release_id: str, comment: str = typer.Option(..., "--comment", "-m"),
                           home: Optional[str] = HomeOption,
                           actor: Optional[str] = ActorOption, as_json: bool = JsonOption) -> None:
        """Withdraw an approved release: no further shards or training from it (rights team)."""
        _decide("revoke", release_id, comment, home, actor, as_json)

    @release.command("show")
    def show_cmd(release_id: str, home: Optional[str] = HomeOption, as_json: bool = JsonOption,
                 tracks: bool = typer.Option(False, "--tracks", help="List every track.")) -> None:
        """Show a release, its approval trail and whether it may be used now."""
        from licensing.gate import decide
        from licensing.releases import get_release
        from store.database import connect

        with connect(home_from(home).db_path, read_only=True) as con:
            rel = get_release(con, release_id)
            if rel is None:
                fail(f"no release {release_id}")
            gate = decide(con, release_id, use="show")
        if as_json:
            print_json({"release": rel.model_dump(mode="json", exclude=None if tracks else {"tracks"}),
                        "gate": gate.model_dump(mode="json")})
            return
        console.print(f"[bold]{rel.release_id}[/bold] {rel.status}: {rel.track_count} tracks, {rel.purpose} in "
                      f"{rel.territory} on {rel.on_date}, proposed by {rel.proposed_by} at {rel.proposed_at:%Y-%m-%d %H:%M}")
        console.print(f"  policy {rel.policy_hash}  content {rel.content_sha256}")
        for a in rel.approvals:
            console.print(f"  {a.action} by {a.actor} at {a.recorded_at:%Y-%m-%d %H:%M}: {a.comment}")
        usable = "[green]usable[/green]" if gate.allowed else f"[red]not usable[/red] ({', '.join(gate.reason_codes)})"
        console.print(f"  gate on {gate.checked_on}: {usable}")
        for d in gate.denied_tracks:
            console.print(f"    {d.isrc} {d.track_id}: {', '.join(d.reason_codes)}")
        if tracks:
            for t in rel.tracks:
                console.print(f"  {t.track_id} {t.isrc} {t.decision_id}")

    @release.command("list")
    def list_cmd(status: Optional[str] = typer.Option(None, "--status"), home: Optional[str] = HomeOption,
                 as_json: bool = JsonOption) -> None:
        """List releases, newest last."""
        from rich.table import Table

        from licensing.releases import list_releases
        from store.database import connect

        with connect(home_from(home).db_path, read_only=True) as con:
            rels = list_releases(con, status=status)
        if as_json:
            print_json([r.model_dump(mode="json", exclude={"tracks", "approvals"}) for r in rels])
            return
        table = Table()
        for name in ("release", "status", "tracks", "purpose", "territory", "date", "proposed by", "proposed at"):
            table.add_column(name, no_wrap=name in ("release", "status", "tracks"))
        for r in rels:
            table.add_row(r.release_id, r.status, f"{r.track_count:,}", r.purpose, r.territory, str(r.on_date),
                          r.proposed_by, f"{r.proposed_at:%Y-%m-%d %H:%M}")
        console.print(table)
