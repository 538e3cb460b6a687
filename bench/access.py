"""DMP access control (issue 8): the decision latency, the overhead of a guarded ITI-67 search
over an unguarded one, and the cost of the audit trail every guarded request writes.

1. Decision latency, in process: ``access.basis(facts, viewer, now)`` +
   ``access.document_verdict(resource, viewer, basis, matrix)`` over the packaged habilitation
   matrix (``matrix_store.packaged_matrix(canonical_system)``) for realistic cases: a médecin
   with the patient's consent, a nurse (profession 60) with a consent but denied by the matrix,
   a ``MASQUE_PS`` document read by a médecin who did not author it, a member of one of 3
   consented équipes de soins on a record with 10 other consents; ``document_filter`` (once per
   search) for the médecin. Then ``relations.record_facts`` (what a request reads to know a
   record's relationships) over a real SQLite store unit, for a patient with 5 Consents and 2
   CareTeams (members Practitioners and an Organization). Target: p50 < 50 µs per resource.
2. Guarded search overhead: ``--documents N`` DocumentReferences (20 per patient) bulk-loaded
   with ``bench/dmp.py``'s loader (its ``install_reference_data`` installs the PDSm guides and
   the NOS, then ``bulk_load``), then ``maison serve --no-demo`` and, for random patients,
   ``GET /DocumentReference?patient=Patient/<id>&status=current`` with (a) the ``system/*.*``
   token (the rules trust backend services: unguarded, nothing audited), (b) a médecin's
   professional token (minted as ``tests/servers.py`` ``mint_professional`` does) after the
   patient's consent ``POST Patient/<id>/$dmp-consent`` (method=oral) by that médecin, (c) a
   nurse (profession 60) with her own consent: the matrix denies every class, the search
   returns nothing without running it (the fast path, but after the record's facts are read
   and with its denial audited). (d) The same three against a second server, running at the
   same time over the same store, with the audit trail off. There is no setting for that: a
   bench-only ``sitecustomize`` (on the PYTHONPATH of that server only) makes
   ``AuditTrail.open`` return None, which ``Services`` reads as "not recorded"; the chain's
   growth is printed to show it (only (b) and (c) of the audited server add entries). All six
   series are interleaved request by request over the same patients (servers measured one
   after the other drifted by 10-30 ms on a shared machine). (b) - (d, médecin) is the audit
   write of a guarded read (its own write unit, durable: an fsync); (d, médecin) - (a, audit
   off) is the policy itself (the record's facts, read on the first request for a record and
   then kept by the server while nothing they depend on is written, and the narrowed SQL).
   (b2)/(d2): the médecin again on the same record right after, the record's facts cached, as
   every request after the first of a consultation. Target: the guarded search (the policy,
   (d) against (a')) < 20% over the unguarded one; the durable audit write of the read,
   (b) - (d), is reported as its own figure (the issue asks for both).
3. Audit write cost, in process: ``AuditTrail.record([event])`` (one event, its own write
   unit) p50, then the chain filled in batches of 10,000 (``--audit-entries``, within
   ``--audit-fill-seconds``) and ``maison audit verify`` run on it (a subprocess, timed): its
   rate, extrapolated to 10,000,000 entries.

Figures, not a test: nothing asserts a time. Everything (SQLite folders, server logs, the
shim) lives under ``/var/tmp/bench-access-*`` and is removed at the end (unless ``--keep``).

    .venv/bin/python bench/access.py                                  # SQLite, 100,000 documents
    .venv/bin/python bench/access.py --parts decision                 # in process only, seconds
    .venv/bin/python bench/access.py --parts search,audit --pg postgresql://maison@127.0.0.1:PORT/postgres
    .venv/bin/python bench/access.py --parts search --data /var/tmp/bench-access-store/data
    .venv/bin/python bench/access.py --parts audit --audit-entries 10000000 --audit-fill-seconds 660
    .venv/bin/python bench/access.py --documents 20000 --searches 200 # quicker

https://www.legifrance.gouv.fr/jorf/id/JORFTEXT000048256185, https://profiles.ihe.net/ITI/BALP/
"""

from __future__ import annotations

import argparse
import contextlib
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson

import common
import dmp as dmpbench  # bench/dmp.py: reference data, bulk loader, store pinning
from maison.security import access
from maison.security.access import Grant, RecordFacts, Viewer
from maison.security.matrix_store import packaged_matrix
from maison.security.professional import ActingProfessional
from maison.services.dmp import record
from maison.services.dmp.lifecycle import VISIBILITY_SYSTEM
from maison.terminology.source import canonical_system

Row = dict[str, Any]
IDNPS = access.IDNPS
MEDECIN = "810000001007"  # not the author of the bench documents (tests/dmp_documents: ...009)
NURSE = "810000000017"
FINESS = "750000001"
NOW = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)

SHIM = '''"""bench/access.py: the audit trail off for this server only (no setting exists)."""
import os

if os.environ.get("MAISON_BENCH_NO_AUDIT") == "1":
    from maison.audit import chain

    chain.AuditTrail.open = classmethod(lambda cls, store, state_dir, **options: None)
'''


def _stats(samples_ns: list[int]) -> tuple[float, float, float]:
    """(p50, p95, p99) in µs."""
    return tuple(common.percentile(samples_ns, p) / 1000 for p in (50, 95, 99))  # type: ignore[return-value]


def professional(idnps: str, profession: str) -> ActingProfessional:
    """The professional context a token carries (as ``ActingProfessional.from_claims``)."""
    return ActingProfessional(
        national_id=idnps,
        rpps=None,
        profession=profession,
        category=None,
        savoir_faire_type=None,
        savoir_faire=None,
        secteur=None,
        role=None,
        structure={"finess": FINESS},
        activity=0,
        acr="eidas1",
    )


def viewer(idnps: str, profession: str) -> Viewer:
    return Viewer("professional", professional(idnps, profession), f"Practitioner/{idnps}")


# --------------------------------------------------------------------------- 1. decisions


def consent_grant(n: int, idnps: str) -> Grant:
    return Grant(
        "consent",
        f"Consent/c{n}",
        frozenset({idnps}),
        frozenset({f"Practitioner/{idnps}"}),
        start=NOW - timedelta(hours=1),
        end=NOW + timedelta(hours=23),
    )


def decision_cases(rng: random.Random) -> list[tuple[str, RecordFacts, Viewer, dict[str, Any]]]:
    """(label, facts, viewer, document) of the measured cases."""
    pairs = dmpbench.type_class_pairs()
    patient = "Patient/p1"
    doc = dmpbench.bulk_document(patient, rng, pairs, NOW)
    doc["securityLabel"] = [
        c for c in doc.get("securityLabel", []) if "MASQUE_PS" not in orjson.dumps(c).decode()
    ]
    masked = dmpbench.bulk_document(patient, rng, pairs, NOW)
    masked.setdefault("securityLabel", []).append(
        {"coding": [{"system": VISIBILITY_SYSTEM, "code": access.MASQUE_PS}]}
    )
    doctor, nurse = viewer(MEDECIN, "10"), viewer(NURSE, "60")
    with_consents = RecordFacts(
        patient, grants=(consent_grant(0, MEDECIN), consent_grant(1, NURSE))
    )
    member = viewer("810000000990", "10")
    mine = frozenset({"810000000990"})
    teams = tuple(
        Grant(
            "care-team",
            f"CareTeam/t{t}",
            frozenset(f"8100000009{t}{m}" for m in range(5)) | (mine if t == 2 else frozenset()),
            frozenset(f"Practitioner/x{t}{m}" for m in range(5)),
            frozenset({f"75000{t}001"}),
            start=NOW - timedelta(days=300),
            consent=f"Consent/team{t}",
        )
        for t in range(3)
    )
    others = tuple(consent_grant(10 + n, f"8100000001{n:02d}") for n in range(10))
    busy = RecordFacts(patient, grants=(*others, *teams))
    return [
        ("médecin, consent, document allowed", with_consents, doctor, doc),
        ("nurse (60), consent, denied by the matrix", with_consents, nurse, doc),
        ("médecin, consent, MASQUE_PS document (hidden)", with_consents, doctor, masked),
        ("care team member (3 teams, 10 consents)", busy, member, doc),
    ]


def time_decisions(iterations: int, seed: int) -> list[Row]:
    """p50/p95/p99 of basis + document_verdict per case, and of document_filter."""
    matrix = packaged_matrix(canonical_system)
    rows: list[Row] = []
    clock = time.perf_counter_ns
    basis, verdict_of = access.basis, access.document_verdict
    for label, facts, who, doc in decision_cases(random.Random(seed)):
        for _ in range(1000):  # warm up
            verdict_of(doc, who, basis(facts, who, NOW), matrix)
        samples: list[int] = []
        for _ in range(iterations):
            t0 = clock()
            granted = basis(facts, who, NOW)
            verdict = verdict_of(doc, who, granted, matrix)
            samples.append(clock() - t0)
        basis_only: list[int] = []
        for _ in range(iterations // 4):
            t0 = clock()
            basis(facts, who, NOW)
            basis_only.append(clock() - t0)
        p50, p95, p99 = _stats(samples)
        rows.append(
            {
                "case": label,
                "outcome": f"{'allowed' if verdict.allowed else 'denied'} [{verdict.rule}]"
                + (" hidden" if verdict.hidden else ""),
                "n": iterations,
                "basis+verdict p50 µs": round(p50, 2),
                "p95 µs": round(p95, 2),
                "p99 µs": round(p99, 2),
                "basis alone p50 µs": round(_stats(basis_only)[0], 2),
                "target": "p50 < 50 µs",
            }
        )
    # the search-time form, once per search
    label, facts, who, _ = decision_cases(random.Random(seed))[0]
    granted = access.basis(facts, who, NOW)
    samples = []
    for _ in range(max(1000, iterations // 10)):
        t0 = clock()
        wanted = access.document_filter(who, granted, matrix, ())
        samples.append(clock() - t0)
    p50, p95, p99 = _stats(samples)
    rows.append(
        {
            "case": "document_filter, médecin (once per search)",
            "outcome": f"{len(wanted.classes or ())} classes, masks {wanted.exclude_labels}",
            "n": len(samples),
            "basis+verdict p50 µs": round(p50, 2),
            "p95 µs": round(p95, 2),
            "p99 µs": round(p99, 2),
        }
    )
    return rows


def _sqlite_store(folder: Path) -> tuple[Any, Any, Path]:
    from maison.fhir.definitions import default_definitions
    from maison.fhir.indexing import Indexer
    from maison.store.crypto import Keyring
    from maison.store.sql import SqlStore

    folder.mkdir(parents=True, exist_ok=True)
    defs = default_definitions()
    store = SqlStore(
        f"sqlite:///{folder / 'maison.db'}", Keyring.load_or_create(folder), Indexer(defs).extract
    )
    store.migrate()
    return store, defs, folder


def record_with_relations(tx: Any, n: int) -> str:
    """Patient ``p<n>`` with 2 CareTeams (Practitioners and an Organization) and 5 active
    Consents (2 to the teams, 3 to professionals for a consultation); its id."""
    pid = f"p{n}"
    tx.create("Patient", {"resourceType": "Patient", "name": [{"family": f"R{n}"}]}, pid, True)
    for m in range(4):
        tx.create(
            "Practitioner",
            {"resourceType": "Practitioner",
             "identifier": [{"system": IDNPS, "value": f"81{n:06d}{m:04d}"}]},
            f"pr{n}-{m}",
            True,
        )  # fmt: skip
    tx.create(
        "Organization",
        {"resourceType": "Organization", "identifier": [
            {"system": "http://finess.sante.gouv.fr", "value": f"75{n:07d}"}]},
        f"org{n}",
        True,
    )  # fmt: skip
    members = [[f"Practitioner/pr{n}-0", f"Practitioner/pr{n}-1", f"Organization/org{n}"],
               [f"Practitioner/pr{n}-2", f"Practitioner/pr{n}-3"]]  # fmt: skip
    at = NOW.isoformat().replace("+00:00", "Z")
    end = (NOW + timedelta(hours=24)).isoformat().replace("+00:00", "Z")
    for t, team in enumerate(members):
        tx.create(
            "CareTeam",
            {
                "resourceType": "CareTeam",
                "status": "active",
                "subject": {"reference": f"Patient/{pid}"},
                "period": {"start": "2025-01-01"},
                "participant": [{"member": {"reference": ref}} for ref in team],
            },
            f"ct{n}-{t}",
            True,
        )
        tx.create(
            "Consent",
            record.consent_resource(pid, record.Kind.CARE_TEAM, True, at, method="oral",
                                    actor={"reference": f"CareTeam/ct{n}-{t}"}),
        )  # fmt: skip
    for m in range(3):
        actor = {"identifier": {"system": IDNPS, "value": f"8199{n:04d}{m:04d}"}}
        tx.create(
            "Consent",
            record.consent_resource(pid, record.Kind.PROFESSIONAL, True, at, method="oral",
                                    actor=actor, period=(at, end)),
        )  # fmt: skip
    return pid


def time_record_facts(root: Path, iterations: int) -> list[Row]:
    """``record_facts`` over SQLite: in its own read unit, and inside an open unit."""
    from maison.services.dmp.relations import record_facts

    store, defs, _ = _sqlite_store(root / "facts")
    try:
        patients = store.write(lambda tx: [record_with_relations(tx, n) for n in range(200)])
        store.analyze()
        facts = store.read(lambda tx: record_facts(tx, defs, patients[0]))
        assert facts is not None
        shape = (
            f"{sum(g.kind == 'consent' for g in facts.grants)} consent grants, "
            f"{sum(g.kind == 'care-team' and g.consent is not None for g in facts.grants)} "
            "consented care teams"
        )
        rng = random.Random(3)
        picks = [rng.choice(patients) for _ in range(iterations)]
        own: list[int] = []
        for pid in picks:
            t0 = time.perf_counter_ns()
            store.read(lambda tx, pid=pid: record_facts(tx, defs, pid))
            own.append(time.perf_counter_ns() - t0)

        def inside(tx: Any) -> list[int]:
            out = []
            for pid in picks:
                t0 = time.perf_counter_ns()
                record_facts(tx, defs, pid)
                out.append(time.perf_counter_ns() - t0)
            return out

        within = store.read(inside)
        empty: list[int] = []
        for _ in range(iterations):
            t0 = time.perf_counter_ns()
            store.read(lambda tx: None)
            empty.append(time.perf_counter_ns() - t0)
    finally:
        store.close()
    rows = []
    for label, samples in (
        ("record_facts, its own read unit", own),
        ("record_facts, inside an open read unit", within),
        ("an empty read unit (for reference)", empty),
    ):
        p50, p95, p99 = _stats(samples)
        rows.append(
            {
                "case": label,
                "outcome": shape,
                "n": len(samples),
                "basis+verdict p50 µs": "",
                "p50 µs": round(p50, 1),
                "p95 µs": round(p95, 1),
                "p99 µs": round(p99, 1),
                "note": "SQLite, 200 records of 2 CareTeams + 5 Consents",
            }
        )
    return rows


# --------------------------------------------------------------------------- 2. search


def mint_professional(state: Path, idnps: str, profession: str) -> str:
    """A platform token with a professional context, signed by the server's local issuer
    (as ``tests/servers.py`` ``Server.mint_professional``)."""
    from maison.security.issuer import LocalIssuer

    info = orjson.loads((state / "server.json").read_bytes())
    issuer = LocalIssuer.load_or_create(state / "keys", info["issuer"])
    claims = {
        "SubjectNameID": idnps,
        "fhirUser": f"Practitioner/{idnps}",
        "acr": "eidas1",
        "professional": {
            "idnps": idnps,
            "activity": 0,
            "structure": {"finess": FINESS},
            "profession": profession,
        },
    }
    return issuer.mint(idnps, ["user/*.cruds"], info["audience"], 3600 * 8, claims)


def consent(client: Any, pid: str, token: str) -> None:
    """The patient's consent to the caller, recorded by the caller ($dmp-consent, oral)."""
    body = {"resourceType": "Parameters", "parameter": [{"name": "method", "valueCode": "oral"}]}
    r = client.post(
        f"/Patient/{pid}/$dmp-consent",
        content=orjson.dumps(body),
        headers={"Authorization": f"Bearer {token}"},
    )
    if r.status_code != 200:
        raise SystemExit(f"$dmp-consent on Patient/{pid}: HTTP {r.status_code} {r.text[:600]}")


def measure(
    servers: dict[str, tuple[common.Server, dict[str, str]]], picks: list[int], budget: float
) -> dict[tuple[str, str], Row]:
    """ITI-67 for each (server, token) over the same patients, interleaved request by request
    (the order rotates per patient), so the machine's drift hits every series alike; per
    (server, token): latencies, matches, errors."""
    series = [(label, name) for label, (_, tokens) in servers.items() for name in tokens]
    # the médecin again on the same record, right after: the record's facts are then in the
    # server's cache, as for every request after the first of a consultation
    again = [(label, AGAIN) for label in servers]
    everything = series + again
    seconds: dict[tuple[str, str], list[float]] = {k: [] for k in everything}
    matches: dict[tuple[str, str], list[int]] = {k: [] for k in everything}
    errors = dict.fromkeys(everything, 0)
    began = time.perf_counter()
    stopped = ""
    with contextlib.ExitStack() as stack:
        clients = {label: stack.enter_context(srv.client()) for label, (srv, _) in servers.items()}
        for n, index in enumerate(picks):
            if time.perf_counter() - began > budget:
                stopped = f"stopped after {budget:.0f} s"
                break
            path = (
                f"/DocumentReference?patient=Patient/{dmpbench.BULK_PREFIX}{index}&status=current"
            )
            order = series[n % len(series) :] + series[: n % len(series)]
            for key in order + again:
                label, name = key
                token = servers[label][1][MEDECIN_TOKEN if name == AGAIN else name]
                headers = {"Authorization": f"Bearer {token}"}
                t0 = time.perf_counter()
                r = clients[label].get(path, headers=headers)
                elapsed = time.perf_counter() - t0
                if r.status_code != 200:
                    errors[key] += 1
                    if errors[key] <= 2:
                        print(f"[{label}] {name} {path}: HTTP {r.status_code} {r.text[:300]}",
                              file=sys.stderr)  # fmt: skip
                    continue
                if n >= 20:  # the first 20 warm the connections and the caches
                    seconds[key].append(elapsed)
                    matches[key].append(len(orjson.loads(r.content).get("entry", [])))
    out: dict[tuple[str, str], Row] = {}
    for key in everything:
        s = seconds[key]
        out[key] = {
            "server": key[0],
            "token": key[1],
            "n": len(s),
            "errors": errors[key],
            "matches (mean)": round(sum(matches[key]) / max(1, len(matches[key])), 1),
            "p50_ms": round(common.percentile(s, 50) * 1000, 2),
            "p95_ms": round(common.percentile(s, 95) * 1000, 2),
            "p99_ms": round(common.percentile(s, 99) * 1000, 2),
            "mean_ms": round(sum(s) / max(1, len(s)) * 1000, 2),
            "note": stopped,
        }
    return out


@contextlib.contextmanager
def no_audit_env(root: Path) -> Iterator[None]:
    """PYTHONPATH with the shim, and the switch, for the servers started inside."""
    shim = root / "no-audit-shim"
    shim.mkdir(exist_ok=True)
    (shim / "sitecustomize.py").write_text(SHIM)
    saved = {k: os.environ.get(k) for k in ("PYTHONPATH", "MAISON_BENCH_NO_AUDIT")}
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (str(shim), saved["PYTHONPATH"]) if p)
    os.environ["MAISON_BENCH_NO_AUDIT"] = "1"
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def audit_rows(server: common.Server) -> int:
    """How many entries the server's audit chain holds (its head's seq, read from the
    database: ``GET /AuditEvent`` needs a ``system/AuditEvent.rs`` scope of its own)."""
    from sqlalchemy import create_engine
    from sqlalchemy.pool import NullPool

    from maison.api.settings import Settings
    from maison.store.audit_log import head_of

    engine = create_engine(Settings(data=server.data).database_url, poolclass=NullPool)
    try:
        head = head_of(engine)
    finally:
        engine.dispose()
    return head.seq if head else 0


MEDECIN_TOKEN = "(b) médecin, consent (guarded)"
NURSE_TOKEN = "(c) nurse 60, consent, matrix denies all"
SYSTEM_TOKEN = "(a) system/*.* (unguarded)"
AGAIN = "(b2) médecin, same record again (facts cached)"


def server_tokens(server: common.Server) -> dict[str, str]:
    """The three callers, with tokens of this server's issuer (its URL is in the issuer: a
    server on another port refuses the tokens of the previous one)."""
    state = dmpbench._state_dir(server)
    return {
        SYSTEM_TOKEN: server.token or "",
        MEDECIN_TOKEN: mint_professional(state, MEDECIN, "10"),
        NURSE_TOKEN: mint_professional(state, NURSE, "60"),
    }


def search_part(args: argparse.Namespace, root: Path) -> tuple[list[Row], Row, Row]:
    """Bulk load, consents, then (a)/(b)/(c) with the audit trail and without it."""
    count = max(1, args.documents // args.per_patient)
    with dmpbench.one_store(args):
        with common.running_server(args, "access load") as server:
            setup = dmpbench.install_reference_data(args, server)
            load = dmpbench.bulk_load(
                server, dmpbench._state_dir(server), count, args.per_patient, args.batch, args.seed
            )
        rng = random.Random(args.seed + 5)
        picks = [rng.randrange(count) for _ in range(args.searches + 20)]
        on, off = "audit on", "audit off (shim)"
        with contextlib.ExitStack() as stack:
            server = stack.enter_context(common.running_server(args, "access search"))
            tokens = server_tokens(server)
            t0 = time.perf_counter()
            with server.client() as client:
                for index in dict.fromkeys(picks):
                    pid = f"{dmpbench.BULK_PREFIX}{index}"
                    consent(client, pid, tokens[MEDECIN_TOKEN])
                    consent(client, pid, tokens[NURSE_TOKEN])
            consents_s = time.perf_counter() - t0
            # the second server, on the same store, runs with the audit trail off
            stack.enter_context(no_audit_env(root))
            quiet = stack.enter_context(common.running_server(args, "access search, no audit"))
            before = audit_rows(server)
            results = measure(
                {on: (server, tokens), off: (quiet, server_tokens(quiet))},
                picks,
                args.search_seconds,
            )
            after = audit_rows(server)
        audited = {name: results[(on, name)] for name in [*tokens, AGAIN]}
        plain = {name: results[(off, name)] for name in [*tokens, AGAIN]}
    rows = [*audited.values(), *plain.values()]
    sampled = len(dict.fromkeys(picks))
    setup_row: Row = {
        **setup,
        **load,
        "patients sampled": sampled,
        "consents recorded ($dmp-consent x2 per patient)": 2 * sampled,
        "consents_s": round(consents_s, 1),
        "audit chain entries before/after the searches (both servers)": f"{before:,} -> {after:,}",
        "expected growth: (b), (c) and (b2) of the audit-on server only": 3 * len(picks),
    }
    a, b, c = audited[SYSTEM_TOKEN], audited[MEDECIN_TOKEN], audited[NURSE_TOKEN]
    a2, d, c2 = plain[SYSTEM_TOKEN], plain[MEDECIN_TOKEN], plain[NURSE_TOKEN]
    b2, d2 = audited[AGAIN], plain[AGAIN]

    def pct(x: float, y: float) -> str:
        return f"{(x - y) / y:+.0%}" if y else "n/a"

    summary: Row = {
        "documents": f"{count * args.per_patient:,} ({count:,} patients)",
        "(a) unguarded p50/p95 ms": f"{a['p50_ms']} / {a['p95_ms']}",
        "(b) guarded médecin p50/p95 ms": f"{b['p50_ms']} / {b['p95_ms']}",
        "(b) vs (a), p50":
            f"{b['p50_ms'] - a['p50_ms']:+.2f} ms ({pct(b['p50_ms'], a['p50_ms'])})",
        "(b) vs (a), p95":
            f"{b['p95_ms'] - a['p95_ms']:+.2f} ms ({pct(b['p95_ms'], a['p95_ms'])})",
        "(c) nurse fast path p50/p95 ms":
            f"{c['p50_ms']} / {c['p95_ms']} (matches {c['matches (mean)']})",
        "(d) médecin, audit off p50/p95 ms": f"{d['p50_ms']} / {d['p95_ms']}",
        "(a') unguarded, audit-off server p50 ms": a2["p50_ms"],
        "(c') nurse, audit off p50 ms": c2["p50_ms"],
        "policy = (d) - (a'), p50":
            f"{d['p50_ms'] - a2['p50_ms']:+.2f} ms ({pct(d['p50_ms'], a2['p50_ms'])})",
        "audit write = (b) - (d), p50": f"{b['p50_ms'] - d['p50_ms']:+.2f} ms",
        "(b2) médecin, same record again p50/p95 ms": f"{b2['p50_ms']} / {b2['p95_ms']}",
        "(b2) vs (a), p50":
            f"{b2['p50_ms'] - a['p50_ms']:+.2f} ms ({pct(b2['p50_ms'], a['p50_ms'])})",
        "(d2) same record again, audit off p50 ms": d2["p50_ms"],
        "policy, record already opened = (d2) - (a'), p50":
            f"{d2['p50_ms'] - a2['p50_ms']:+.2f} ms ({pct(d2['p50_ms'], a2['p50_ms'])})",
        "target": "policy (d) < (a') + 20%; the audit write (b) - (d) is its own figure",
    }  # fmt: skip
    return rows, setup_row, summary


# --------------------------------------------------------------------------- 3. audit


def audit_part(args: argparse.Namespace, root: Path) -> list[Row]:
    """``AuditTrail.record`` of one event (own unit) p50, then ``maison audit verify``'s rate."""
    import audit as auditbench  # bench/audit.py: a typical AuditEvent
    from maison.audit.chain import AuditTrail
    from maison.fhir.definitions import default_definitions
    from maison.fhir.indexing import Indexer
    from maison.store.crypto import Keyring
    from maison.store.sql import SqlStore

    state = root / "audit-state"
    state.mkdir(parents=True, exist_ok=True)
    cleanup: Callable[[], None] = lambda: None  # noqa: E731
    if common.store_kind(args) == "pg":
        url, cleanup = common.pg_database(args.pg or common.DEFAULT_PG, None, False)
        data = url
    else:
        folder = root / "audit-data"
        folder.mkdir(parents=True, exist_ok=True)
        data = str(folder)
        url = f"sqlite:///{folder / 'maison.db'}"
    rows: list[Row] = []
    try:
        store = SqlStore(url, Keyring.load_or_create(state), Indexer(default_definitions()).extract)
        store.migrate()
        trail = AuditTrail.open(store, state)
        try:
            for i in range(50):
                trail.record([auditbench.event(i)])
            samples: list[int] = []
            for i in range(args.audit_writes):
                ev = auditbench.event(i)
                t0 = time.perf_counter_ns()
                trail.record([ev])
                samples.append(time.perf_counter_ns() - t0)
            p50, p95, p99 = _stats(samples)
            rows.append(
                {
                    "measure": "AuditTrail.record, 1 event, its own write unit",
                    "store": store.dialect,
                    "n": len(samples),
                    "p50 µs": round(p50),
                    "p95 µs": round(p95),
                    "p99 µs": round(p99),
                }
            )
            events = [auditbench.event(i) for i in range(10_000)]
            started = time.perf_counter()
            done = 0
            target = args.audit_entries
            while done < target and time.perf_counter() - started < args.audit_fill_seconds:
                store.write(lambda tx: trail.append(tx, events))
                done += len(events)
            fill_s = time.perf_counter() - started
            rows.append(
                {
                    "measure": "chain filled in batches of 10,000",
                    "store": store.dialect,
                    "n": done,
                    "seconds": round(fill_s, 1),
                    "entries/s": round(done / fill_s),
                    "note": ""
                    if done >= target
                    else f"fill budget {args.audit_fill_seconds:.0f} s",
                }
            )
        finally:
            store.close()
        if common.store_kind(args) == "sqlite":
            size = sum(p.stat().st_size for p in (root / "audit-data").glob("maison.db*"))
            rows[-1]["store size MB"] = round(size / 1e6)
        cmd = [
            *common.maison_command(args),
            "audit",
            "verify",
            "--data",
            data,
            "--state",
            str(state),
        ]
        began = time.perf_counter()
        out = subprocess.run(cmd, capture_output=True, text=True, check=False,
                             env={**os.environ, "COLUMNS": "200"})  # fmt: skip
        wall = time.perf_counter() - began
        text = out.stdout + out.stderr
        checked = re.search(r"([\d,]+) entries checked", text)
        entries = int(checked.group(1).replace(",", "")) if checked else 0
        rate: float = entries / wall if wall else 0.0
        stated = re.search(r"([\d,.]+)\s*entries/s", text)
        rows.append(
            {
                "measure": "maison audit verify (subprocess, wall clock incl. start-up)",
                "store": common.store_kind(args),
                "n": entries,
                "seconds": round(wall, 1),
                "entries/s": round(rate),
                "rate it prints": stated.group(1) if stated else "",
                "exit": out.returncode,
                "10,000,000 entries": (
                    f"{wall:,.0f} s (measured)"
                    if entries >= 10_000_000
                    else f"~{10_000_000 / rate:,.0f} s (extrapolated from {entries:,})"
                )
                if rate
                else "",
                "output": text.strip().splitlines()[-1][:160] if text.strip() else "",
            }
        )
    finally:
        cleanup()
    return rows


# --------------------------------------------------------------------------- main


def _parts(text: str) -> set[str]:
    return common.parts(text, {"decision", "search", "audit"})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    common.add_server_options(parser)
    parser.add_argument("--parts", type=_parts, default=_parts("decision,search,audit"),
                        help="which parts to run: decision,search,audit")  # fmt: skip
    parser.add_argument("--iterations", type=int, default=100_000, help="decisions per case")
    parser.add_argument("--facts", type=int, default=2000, help="record_facts calls")
    parser.add_argument("--documents", type=int, default=100_000)
    parser.add_argument("--per-patient", type=int, default=20)
    parser.add_argument("--batch", type=int, default=500, help="documents per bulk transaction")
    parser.add_argument("--searches", type=int, default=400, help="patients searched per server")
    parser.add_argument("--search-seconds", type=float, default=240.0,
                        help="time budget of each server's interleaved searches")  # fmt: skip
    parser.add_argument("--audit-writes", type=int, default=1000)
    parser.add_argument("--audit-entries", type=int, default=2_000_000)
    parser.add_argument("--audit-fill-seconds", type=float, default=300.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", default=None, metavar="FILE", help="append the rows as JSON")
    args = parser.parse_args()
    common.own_servers_only(parser, args)

    root = Path(tempfile.mkdtemp(prefix="bench-access-", dir="/var/tmp"))
    tempfile.tempdir = str(root)  # the stores, server folders and logs of bench/dmp + common
    summary: Row = {"store": common.store_kind(args)}
    try:
        if "decision" in args.parts:
            rows = time_decisions(args.iterations, args.seed)
            common.print_rows("1a. basis + document_verdict (packaged matrix)", rows, args.json)
            rows_f = time_record_facts(root, args.facts)
            common.print_rows("1b. record_facts over SQLite", rows_f, args.json)
            for r in rows:
                summary[f"decision: {r['case']}"] = (
                    f"p50 {r['basis+verdict p50 µs']} µs, p95 {r['p95 µs']} µs"
                )
            for r in rows_f:
                summary[r["case"]] = f"p50 {r['p50 µs']} µs, p95 {r['p95 µs']} µs"
        if "search" in args.parts:
            rows, setup, result = search_part(args, root)
            common.print_rows("2a. setup", [setup], args.json)
            common.print_rows("2b. ITI-67 patient=…&status=current, 1 client", rows, args.json)
            common.print_rows("2c. guarded vs unguarded", [result], args.json)
            summary.update({f"search {k}": v for k, v in result.items()})
        if "audit" in args.parts:
            rows = audit_part(args, root)
            common.print_rows("3. audit trail", rows, args.json)
            for r in rows:
                summary[f"audit: {r['measure']}"] = ", ".join(
                    f"{k} {v}" for k, v in r.items() if k not in ("measure", "output")
                )
    finally:
        if args.keep:
            print(f"kept {root}", file=sys.stderr)
        else:
            shutil.rmtree(root, ignore_errors=True)
    common.print_rows("summary", [summary], args.json)


if __name__ == "__main__":
    main()
