"""Identity-vigilance merge and unmerge over a real store (SQLite and PostgreSQL).

https://hl7.org/fhir/R5/patient-operation-merge.html
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import date
from pathlib import Path
from typing import Any, TypeVar

import pytest

from maison.api import interactions as ix
from maison.api.merge_operations import RuleWriter
from maison.fhir.definitions import Definitions
from maison.fhir.errors import Category, FhirError
from maison.fhir.search import parse_search
from maison.fhir.validation import Validator
from maison.security.guard import GuardedTx
from maison.security.principal import Principal, parse_scopes
from maison.services.ins import merge as svc
from maison.services.ins import reference, rules
from maison.store.interface import Stored
from maison.store.sql import SqlStore, SqlTx
from support import open_sql_store

BASE = "https://maison.test/fhir"
IPP_SYSTEM = "urn:oid:1.2.250.1.71.4.2.7.999"
PI = {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "PI"}]}
T = TypeVar("T")


@pytest.fixture
def store(data_url: str, tmp_path: Path, defs: Definitions) -> Iterator[SqlStore]:
    s: SqlStore = open_sql_store(data_url, tmp_path / "state", defs, ids=True)
    yield s
    s.close()


@pytest.fixture(scope="module")
def validator(defs: Definitions) -> Validator:
    return Validator(defs)


@pytest.fixture
def ctx(defs: Definitions, validator: Validator) -> ix.Context:
    def patient(new: dict[str, Any], old: dict[str, Any] | None) -> Any:
        return rules.patient_write(new, old, False, date(2026, 1, 1))

    return ix.Context(defs, lambda r: validator.validate(r, None), BASE, rules={"Patient": patient})


def principal(scopes: str = "user/*.*", fhir_user: str | None = "Practitioner/pr1") -> Principal:
    parsed, others = parse_scopes(scopes)
    return Principal("iv-cell", "test", parsed, None, None, fhir_user, other_scopes=others)


def guarded(store: SqlStore, fn: Callable[[GuardedTx], T], who: Principal | None = None) -> T:
    return store.write(lambda tx: fn(GuardedTx(tx, who or principal())))


def do_merge(
    store: SqlStore,
    ctx: ix.Context,
    defs: Definitions,
    source: str | None = "src",
    target: str | None = "tgt",
    who: Principal | None = None,
    **kw: Any,
) -> svc.MergeResult:
    request = svc.MergeRequest(source=source, target=target, **kw)
    return guarded(
        store,
        lambda tx: svc.merge(tx, RuleWriter(ctx, tx), defs, request, "Practitioner/pr1", [BASE]),
        who,
    )


def do_unmerge(
    store: SqlStore,
    ctx: ix.Context,
    defs: Definitions,
    source: str = "src",
    prov: str | None = None,
) -> svc.MergeResult:
    return guarded(
        store,
        lambda tx: svc.unmerge(
            tx, RuleWriter(ctx, tx), defs, source, "Practitioner/pr1", prov, [BASE]
        ),
    )


def read(store: SqlStore, res_type: str, res_id: str) -> Stored:
    got = store.read(lambda tx: tx.read(res_type, res_id))
    assert got is not None and got.resource is not None
    return got


def body(store: SqlStore, res_type: str, res_id: str) -> dict[str, Any]:
    got = read(store, res_type, res_id).resource
    assert got is not None
    return got


def history_total(store: SqlStore) -> int:
    total = store.read(lambda tx: tx.history(None, None, None, 1, None)).total
    assert total is not None
    return total


def ins_patient(seed: int) -> dict[str, Any]:
    identity = next(iter(reference.synthesize(1, seed=seed)))
    patient = reference.to_patient(identity, "PROV")
    patient.pop("meta")
    return patient


def ipp(value: str, use: str = "usual") -> dict[str, Any]:
    return {"use": use, "type": PI, "system": IPP_SYSTEM, "value": value}


def plain_patient(family: str, ipp_value: str, **extra: Any) -> dict[str, Any]:
    return {
        "resourceType": "Patient",
        "identifier": [ipp(ipp_value)],
        "name": [{"family": family, "given": ["Jean"]}],
        "birthDate": "1980-02-03",
        **extra,
    }


def put(store: SqlStore, resource: dict[str, Any]) -> Stored:
    stored, _ = store.write(
        lambda tx: tx.update(resource["resourceType"], resource["id"], resource)
    )
    return stored


@pytest.fixture
def seeded(store: SqlStore) -> SqlStore:
    """Patient/src (a duplicate, no INS), Patient/tgt (INS) and what references them."""
    put(store, {**plain_patient("DUPONT", "IPP-001"), "id": "src"})
    put(store, {**ins_patient(11), "id": "tgt"})
    put(store, {**ins_patient(11), "id": "twin-ins"})  # same person, same matricule
    put(store, {**ins_patient(12), "id": "other-ins"})  # another person
    put(store, {**plain_patient("MARTIN", "IPP-002"), "id": "other"})
    put(
        store,
        {
            "resourceType": "Observation",
            "id": "obs1",
            "status": "final",
            "code": {"text": "poids"},
            "subject": {"reference": "Patient/src"},
            "performer": [{"reference": "Patient/src"}, {"reference": "Patient/other"}],
        },
    )
    put(
        store,
        {
            "resourceType": "Encounter",
            "id": "enc1",
            "status": "finished",
            "class": {
                "system": "http://terminology.hl7.org/CodeSystem/v3-ActCode",
                "code": "AMB",
            },
            "subject": {"reference": "Patient/src"},
        },
    )
    put(
        store,
        {
            "resourceType": "DocumentReference",
            "id": "doc1",
            "status": "current",
            "contained": [
                {
                    "resourceType": "RelatedPerson",
                    "id": "rp",
                    "patient": {"reference": "Patient/src"},
                }
            ],
            "subject": {"reference": f"{BASE}/Patient/src"},
            "author": [{"reference": "#rp"}],
            "content": [{"attachment": {"contentType": "text/plain", "data": "YQ=="}}],
            "context": {"related": [{"reference": "Patient/src"}]},
        },
    )
    put(
        store,
        {
            "resourceType": "Observation",
            "id": "obs-tgt",
            "status": "final",
            "code": {"text": "taille"},
            "subject": {"reference": "Patient/tgt"},
        },
    )
    put(
        store,
        {
            "resourceType": "Observation",
            "id": "obs-pinned",
            "status": "final",
            "code": {"text": "version"},
            "subject": {"reference": "Patient/src/_history/1"},
        },
    )
    return store


# ------------------------------------------------------------------------------ the store


def test_referencing_finds_every_type_but_itself(seeded: SqlStore, defs: Definitions) -> None:
    via = svc.reference_params(defs, "Patient")

    def found(tx: SqlTx) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
        return tx.referencing("Patient", "src"), tx.referencing("Patient", "src", via)

    everything, planned = seeded.read(found)
    expected = [
        ("DocumentReference", "doc1"),
        ("Encounter", "enc1"),
        ("Observation", "obs-pinned"),
        ("Observation", "obs1"),
    ]
    assert everything == planned == expected
    assert seeded.read(lambda tx: tx.referencing("Patient", "nobody")) == []
    assert seeded.read(lambda tx: tx.referencing("Patient", "src", {"Encounter": []})) == []
    seeded.write(lambda tx: tx.delete("Encounter", "enc1"))
    assert ("Encounter", "enc1") not in seeded.read(lambda tx: tx.referencing("Patient", "src"))


def test_guard_needs_read_on_every_type_found(seeded: SqlStore) -> None:
    no_encounter = principal("user/Patient.* user/Observation.* user/DocumentReference.*")
    with pytest.raises(FhirError) as err:
        guarded(seeded, lambda tx: tx.referencing("Patient", "src"), no_encounter)
    assert err.value.category == Category.FORBIDDEN and "Encounter" in err.value.message
    assert guarded(seeded, lambda tx: tx.referencing("Patient", "tgt"), no_encounter) == [
        ("Observation", "obs-tgt")
    ]


# ------------------------------------------------------------------------------ merge


def test_merge_repoints_links_and_keeps_history(
    seeded: SqlStore, ctx: ix.Context, defs: Definitions
) -> None:
    before_tgt = body(seeded, "Patient", "tgt")
    result = do_merge(seeded, ctx, defs)
    assert result.changed == [
        "DocumentReference/doc1/_history/2",
        "Encounter/enc1/_history/2",
        "Observation/obs1/_history/2",
    ]
    obs = body(seeded, "Observation", "obs1")
    assert obs["subject"] == {"reference": "Patient/tgt"}
    assert obs["performer"] == [{"reference": "Patient/tgt"}, {"reference": "Patient/other"}]
    doc = body(seeded, "DocumentReference", "doc1")
    assert doc["subject"] == {"reference": f"{BASE}/Patient/tgt"}  # absolute form kept
    assert doc["context"]["related"] == [{"reference": "Patient/tgt"}]
    assert doc["contained"][0]["patient"] == {"reference": "Patient/tgt"}
    assert body(seeded, "Encounter", "enc1")["subject"] == {"reference": "Patient/tgt"}
    # the prior versions stay readable
    v1 = seeded.read(lambda tx: tx.vread("Observation", "obs1", 1))
    assert v1 is not None and v1.resource is not None
    assert v1.resource["subject"] == {"reference": "Patient/src"}
    page = seeded.read(lambda tx: tx.history("Observation", "obs1", None, 10, None))
    assert [e.version for e in page.entries] == [2, 1]
    # untouched: a resource of the target, a version-specific reference
    assert read(seeded, "Observation", "obs-tgt").version == 1
    assert read(seeded, "Observation", "obs-pinned").version == 1
    assert any("obs-pinned" in i.diagnostics for i in result.issues)
    # links, active, identifiers
    src = body(seeded, "Patient", "src")
    assert src["active"] is False
    assert src["link"] == [{"other": {"reference": "Patient/tgt"}, "type": "replaced-by"}]
    tgt = body(seeded, "Patient", "tgt")
    assert tgt["link"] == [{"other": {"reference": "Patient/src"}, "type": "replaces"}]
    assert tgt["identifier"] == [*before_tgt["identifier"], ipp("IPP-001", "old")]
    assert result.target["identifier"] == tgt["identifier"]
    # the index follows: a search on the target finds what was the source's
    q = parse_search(defs, "Observation", [("subject", "Patient/tgt")])
    found = seeded.read(lambda tx: tx.search(q)).entries
    assert sorted(s.id for s in found) == ["obs-tgt", "obs1"]


def test_merge_provenance(seeded: SqlStore, ctx: ix.Context, defs: Definitions) -> None:
    result = do_merge(seeded, ctx, defs)
    assert result.provenance is not None
    prov = body(seeded, "Provenance", result.provenance.id)
    src = read(seeded, "Patient", "src")
    assert [t["reference"] for t in prov["target"]] == [
        "Patient/src/_history/2",
        "Patient/tgt/_history/2",
        "DocumentReference/doc1/_history/2",
        "Encounter/enc1/_history/2",
        "Observation/obs1/_history/2",
    ]
    assert prov["recorded"] == src.last_updated  # the store clock of the merge transaction
    assert prov["activity"]["text"] == "merge"
    assert {(c["system"], c["code"]) for c in prov["activity"]["coding"]} == {
        ("http://terminology.hl7.org/CodeSystem/v3-DataOperation", "UPDATE"),
        ("http://terminology.hl7.org/CodeSystem/iso-21089-lifecycle", "merge"),
    }
    assert prov["agent"][0]["who"] == {"reference": "Practitioner/pr1"}
    assert prov["entity"] == [{"role": "source", "what": {"reference": "Patient/src"}}]
    assert not [i for i in ctx.validate(prov) if i.severity in ("error", "fatal")]
    params = svc.output_parameters(result, {"resourceType": "Parameters"})
    assert [p["name"] for p in params["parameter"]] == ["input", "outcome", "result", "provenance"]


def test_preview_writes_nothing(seeded: SqlStore, ctx: ix.Context, defs: Definitions) -> None:
    before = history_total(seeded)
    result = do_merge(seeded, ctx, defs, preview=True)
    assert history_total(seeded) == before
    assert result.provenance is None
    assert result.changed == ["DocumentReference/doc1", "Encounter/enc1", "Observation/obs1"]
    assert result.target["link"] == [{"other": {"reference": "Patient/src"}, "type": "replaces"}]
    assert "would be merged" in result.issues[0].diagnostics
    assert body(seeded, "Patient", "src").get("active") is None


def test_merge_into_the_same_matricule_is_allowed(
    seeded: SqlStore, ctx: ix.Context, defs: Definitions
) -> None:
    result = do_merge(seeded, ctx, defs, source="twin-ins", target="tgt")
    assert result.source["active"] is False
    tgt = body(seeded, "Patient", "tgt")
    assert len(tgt["identifier"]) == 1  # the INS is not copied again


def _merged_first(store: SqlStore, ctx: ix.Context, defs: Definitions) -> None:
    do_merge(store, ctx, defs)


def _inactive_target(store: SqlStore, ctx: ix.Context, defs: Definitions) -> None:
    put(store, {**body(store, "Patient", "other"), "active": False})


@pytest.mark.parametrize(
    ("source", "target", "setup", "category", "words"),
    [
        ("src", "src", None, Category.UNPROCESSABLE, "same record"),
        ("nobody", "tgt", None, Category.NOT_FOUND, "source-patient Patient/nobody is not known"),
        ("src", "nobody", None, Category.NOT_FOUND, "target-patient Patient/nobody is not known"),
        ("src", "other", _merged_first, Category.UNPROCESSABLE, "already merged into Patient/tgt"),
        ("other", "src", _merged_first, Category.UNPROCESSABLE, "was itself merged"),
        ("src", "other", _inactive_target, Category.UNPROCESSABLE, "is inactive"),
        ("other-ins", "tgt", None, Category.UNPROCESSABLE, "two different persons"),
        ("tgt", "src", None, Category.UNPROCESSABLE, "merge the other way"),
    ],
)
def test_refusals_write_nothing(
    seeded: SqlStore,
    ctx: ix.Context,
    defs: Definitions,
    source: str,
    target: str,
    setup: Callable[[SqlStore, ix.Context, Any], None] | None,
    category: Category,
    words: str,
) -> None:
    if setup is not None:
        setup(seeded, ctx, defs)
    before = history_total(seeded)
    with pytest.raises(FhirError) as err:
        do_merge(seeded, ctx, defs, source=source, target=target)
    assert err.value.category == category
    assert words in err.value.message
    assert history_total(seeded) == before


def test_the_refusal_says_which_way_to_merge(
    seeded: SqlStore, ctx: ix.Context, defs: Definitions
) -> None:
    with pytest.raises(FhirError) as err:
        do_merge(seeded, ctx, defs, source="tgt", target="src")
    assert "source-patient Patient/src, target-patient Patient/tgt" in err.value.message


def test_identifiers_resolve_by_search(
    seeded: SqlStore, ctx: ix.Context, defs: Definitions
) -> None:
    ident = {"system": IPP_SYSTEM, "value": "IPP-001"}
    with pytest.raises(FhirError) as err:
        do_merge(seeded, ctx, defs, source=None, source_identifiers=({**ident, "value": "none"},))
    assert err.value.category == Category.UNPROCESSABLE and "No Patient" in err.value.message
    put(seeded, {**plain_patient("DUPONT", "IPP-001"), "id": "src-copy"})
    with pytest.raises(FhirError) as err:
        do_merge(seeded, ctx, defs, source=None, source_identifiers=(ident,))
    assert "Several Patients" in err.value.message
    seeded.write(lambda tx: tx.delete("Patient", "src-copy"))
    with pytest.raises(FhirError) as err:
        do_merge(seeded, ctx, defs, source="other", source_identifiers=(ident,))
    assert "different records" in err.value.message
    result = do_merge(seeded, ctx, defs, source=None, source_identifiers=(ident,))
    assert result.source["id"] == "src"


def test_a_type_the_caller_may_not_read_refuses_the_whole_merge(
    seeded: SqlStore, ctx: ix.Context, defs: Definitions
) -> None:
    before = history_total(seeded)
    who = principal("user/Patient.* user/Observation.* user/DocumentReference.* user/Provenance.*")
    with pytest.raises(FhirError) as err:
        do_merge(seeded, ctx, defs, who=who)
    assert err.value.category == Category.FORBIDDEN
    assert "repoints every reference or none" in err.value.message
    assert "Encounter" in err.value.message
    assert history_total(seeded) == before


def test_a_type_the_caller_may_not_update_refuses_the_whole_merge(
    seeded: SqlStore, ctx: ix.Context, defs: Definitions
) -> None:
    before = history_total(seeded)
    who = principal(
        "user/Patient.* user/Observation.* user/DocumentReference.* user/Provenance.* "
        "user/Encounter.rs"
    )
    with pytest.raises(FhirError) as err:
        do_merge(seeded, ctx, defs, who=who)
    assert err.value.category == Category.FORBIDDEN
    assert err.value.message.startswith("Encounter/enc1 could not be repointed")
    assert err.value.outcome()["issue"][0]["diagnostics"] == err.value.message
    assert history_total(seeded) == before
    assert body(seeded, "Patient", "src").get("active") is None


# ------------------------------------------------------------------------------ unmerge


def test_unmerge_restores_everything(seeded: SqlStore, ctx: ix.Context, defs: Definitions) -> None:
    before_src = body(seeded, "Patient", "src")
    before_tgt = body(seeded, "Patient", "tgt")
    merged = do_merge(seeded, ctx, defs)
    assert merged.provenance is not None
    # changed since the merge: enc1 now points elsewhere (not reverted), tgt got a new phone
    enc = body(seeded, "Encounter", "enc1")
    put(seeded, {**enc, "subject": {"reference": "Patient/other"}})
    tgt = body(seeded, "Patient", "tgt")
    put(seeded, {**tgt, "telecom": [{"system": "phone", "value": "0102030405"}]})

    result = do_unmerge(seeded, ctx, defs)
    src = body(seeded, "Patient", "src")
    assert "active" not in src and "link" not in src
    assert src["identifier"] == before_src["identifier"]
    tgt = body(seeded, "Patient", "tgt")
    assert "link" not in tgt
    assert tgt["identifier"] == before_tgt["identifier"]
    assert tgt["telecom"] == [{"system": "phone", "value": "0102030405"}]  # kept
    obs = body(seeded, "Observation", "obs1")
    assert obs["subject"] == {"reference": "Patient/src"}
    assert obs["performer"] == [{"reference": "Patient/src"}, {"reference": "Patient/other"}]
    doc = body(seeded, "DocumentReference", "doc1")
    assert doc["subject"] == {"reference": f"{BASE}/Patient/src"}
    assert doc["context"]["related"] == [{"reference": "Patient/src"}]
    assert doc["contained"][0]["patient"] == {"reference": "Patient/src"}
    assert body(seeded, "Encounter", "enc1")["subject"] == {"reference": "Patient/other"}
    assert read(seeded, "Observation", "obs1").version == 3
    warnings = [i.diagnostics for i in result.issues if i.severity == "warning"]
    assert len(warnings) == 1 and "Encounter/enc1 no longer references" in warnings[0]
    assert result.changed == ["DocumentReference/doc1/_history/3", "Observation/obs1/_history/3"]
    assert result.provenance is not None
    prov = body(seeded, "Provenance", result.provenance.id)
    assert prov["activity"]["text"] == "unmerge"
    assert prov["entity"] == [
        {"role": "revision", "what": {"reference": f"Provenance/{merged.provenance.id}"}}
    ]
    assert [t["reference"] for t in prov["target"]] == [
        "Patient/src/_history/3",
        "Patient/tgt/_history/4",
        "DocumentReference/doc1/_history/3",
        "Observation/obs1/_history/3",
    ]
    # a second unmerge is refused and writes nothing
    before = history_total(seeded)
    with pytest.raises(FhirError) as err:
        do_unmerge(seeded, ctx, defs)
    assert err.value.category == Category.UNPROCESSABLE
    assert "already undone" in err.value.message
    with pytest.raises(FhirError) as err:
        do_unmerge(seeded, ctx, defs, prov=merged.provenance.id)
    assert "already undone" in err.value.message
    assert history_total(seeded) == before


def test_merge_again_after_unmerge(seeded: SqlStore, ctx: ix.Context, defs: Definitions) -> None:
    first = do_merge(seeded, ctx, defs)
    do_unmerge(seeded, ctx, defs)
    second = do_merge(seeded, ctx, defs)
    assert first.provenance is not None and second.provenance is not None
    assert second.changed == [
        "DocumentReference/doc1/_history/4",
        "Encounter/enc1/_history/4",
        "Observation/obs1/_history/4",
    ]
    # the earlier Provenances are records: never repointed
    assert read(seeded, "Provenance", first.provenance.id).version == 1
    again = do_unmerge(seeded, ctx, defs)
    assert again.provenance is not None
    prov = body(seeded, "Provenance", again.provenance.id)
    assert prov["entity"][0]["what"] == {"reference": f"Provenance/{second.provenance.id}"}
    assert body(seeded, "Observation", "obs1")["subject"] == {"reference": "Patient/src"}


def test_unmerge_refusals(seeded: SqlStore, ctx: ix.Context, defs: Definitions) -> None:
    with pytest.raises(FhirError) as err:
        do_unmerge(seeded, ctx, defs)
    assert err.value.category == Category.UNPROCESSABLE
    assert "no recorded merge" in err.value.message
    with pytest.raises(FhirError) as err:
        do_unmerge(seeded, ctx, defs, source="nobody")
    assert err.value.category == Category.NOT_FOUND
    merged = do_merge(seeded, ctx, defs)
    assert merged.provenance is not None
    with pytest.raises(FhirError) as err:
        do_unmerge(seeded, ctx, defs, source="other", prov=merged.provenance.id)
    assert "does not record a merge of Patient/other" in err.value.message
    # the target merged further since: undo that one first
    do_merge(seeded, ctx, defs, source="tgt", target="twin-ins")
    with pytest.raises(FhirError) as err:
        do_unmerge(seeded, ctx, defs)
    assert "undo that merge first" in err.value.message
    # undone in order: the later merge, then the first one
    do_unmerge(seeded, ctx, defs, source="tgt")
    assert svc.replaced_by(body(seeded, "Patient", "src")) == ["Patient/tgt"]
    do_unmerge(seeded, ctx, defs)
    assert body(seeded, "Observation", "obs1")["subject"] == {"reference": "Patient/src"}
    assert "link" not in body(seeded, "Patient", "src")


# ------------------------------------------------------------------------------ pure parts


def test_repoint_and_reference_ids() -> None:
    mapping = svc.repoint_map("a", "b", [BASE])
    resource = {
        "resourceType": "Observation",
        "subject": {"reference": "Patient/a"},
        "extension": [{"url": "x", "valueReference": {"reference": f"{BASE}/Patient/a"}}],
        "focus": [{"reference": "Patient/a/_history/2"}, {"reference": "Patient/ab"}],
    }
    moved, count = svc.repoint(resource, mapping)
    assert count == 2 and resource["subject"] == {"reference": "Patient/a"}  # a copy
    assert moved["subject"] == {"reference": "Patient/b"}
    assert moved["extension"][0]["valueReference"] == {"reference": f"{BASE}/Patient/b"}
    assert moved["focus"] == resource["focus"]
    assert svc.reference_id({"reference": f"{BASE}/Patient/x"}, "Patient", [BASE], "p") == "x"
    for bad in ({"reference": "Observation/x"}, {"display": "x"}, "Patient/x"):
        with pytest.raises(FhirError) as err:
            svc.reference_id(bad, "Patient", [BASE], "source-patient")
        assert err.value.category == Category.INVALID and "source-patient" in err.value.message


def test_copied_identifiers_are_local_and_old() -> None:
    source = ins_patient(21)
    source["identifier"].append(ipp("IPP-9"))
    source["identifier"].append({"system": "urn:x", "value": "dup"})
    target = {"resourceType": "Patient", "identifier": [{"system": "urn:x", "value": "dup"}]}
    assert svc.copied_identifiers(source, target) == [ipp("IPP-9", "old")]
