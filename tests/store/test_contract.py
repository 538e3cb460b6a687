"""The storage contract: one suite, run on SQLite and on PostgreSQL (MAISON_TEST_STORE)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from maison.api.settings import Settings
from maison.fhir.definitions import Definitions
from maison.fhir.errors import Category, FhirError
from maison.fhir.indexing import Indexer
from maison.fhir.search import DEFAULT_COUNT, parse_search
from maison.store.crypto import Keyring
from maison.store.schema import idx_string, idx_token, resource_history
from maison.store.sql import SqlStore
from support import open_sql_store


@pytest.fixture
def store(data_url: str, tmp_path: Path, defs: Definitions) -> Iterator[SqlStore]:
    s: SqlStore = open_sql_store(data_url, tmp_path / "state", defs, ids=True)
    yield s
    s.close()


PATIENT: dict[str, Any] = {
    "resourceType": "Patient",
    "identifier": [{"system": "urn:oid:1.2.250.1.213.1.4.10", "value": "279035121518989"}],
    "name": [{"family": "Lefèvre", "given": ["Hélène"]}],
    "birthDate": "1979-03-05",
}


def test_create_read_and_meta(store: SqlStore) -> None:
    created = store.write(lambda tx: tx.create("Patient", dict(PATIENT)))
    assert created.id == "id1" and created.version == 1
    assert created.last_updated == "2026-01-01T00:00:01.000000Z"
    got = store.read(lambda tx: tx.read("Patient", "id1"))
    assert got is not None and got.resource is not None
    assert got.resource["meta"] == {"versionId": "1", "lastUpdated": created.last_updated}
    assert got.resource["name"][0]["family"] == "Lefèvre"
    assert store.read(lambda tx: tx.read("Patient", "nope")) is None


def test_update_versions_and_history(store: SqlStore) -> None:
    store.write(lambda tx: tx.create("Patient", dict(PATIENT), "p1"))
    v2, created = store.write(lambda tx: tx.update("Patient", "p1", {**PATIENT, "id": "p1"}))
    assert not created and v2.version == 2
    with pytest.raises(FhirError) as err:
        store.write(lambda tx: tx.update("Patient", "p1", {**PATIENT, "id": "p1"}, 1))
    assert err.value.category == Category.PRECONDITION
    gone = store.write(lambda tx: tx.delete("Patient", "p1"))
    assert gone is not None and gone.version == 3 and gone.deleted
    assert store.write(lambda tx: tx.delete("Patient", "p1")) is None
    tomb = store.read(lambda tx: tx.read("Patient", "p1"))
    assert tomb is not None and tomb.deleted and tomb.resource is None
    v1 = store.read(lambda tx: tx.vread("Patient", "p1", 1))
    assert v1 is not None and v1.resource is not None and v1.resource["meta"]["versionId"] == "1"
    page = store.read(lambda tx: tx.history("Patient", "p1", None, 2, None))
    assert [e.version for e in page.entries] == [3, 2] and page.total == 3
    rest = store.read(lambda tx: tx.history("Patient", "p1", None, 2, page.next_cursor))
    assert [e.version for e in rest.entries] == [1] and rest.next_cursor is None


def test_bodies_are_encrypted_at_rest(store: SqlStore) -> None:
    store.write(lambda tx: tx.create("Patient", dict(PATIENT), "enc"))
    with store.engine.connect() as conn:
        blobs = [bytes(r[0]) for r in conn.execute(select(resource_history.c.content))]
    assert len(blobs) == 1  # one body per version, not a copy per table
    for blob in blobs:
        assert b"Lef" not in blob and b"279035121518989" not in blob
        assert b"Patient" not in blob


def test_index_rows_follow_the_current_version(store: SqlStore) -> None:
    store.write(lambda tx: tx.create("Patient", dict(PATIENT), "ix"))
    moved = {**PATIENT, "id": "ix", "name": [{"family": "Béranger"}]}
    store.write(lambda tx: tx.update("Patient", "ix", moved))
    with store.engine.connect() as conn:
        families = {
            r.value_folded
            for r in conn.execute(
                select(idx_string.c.value_folded).where(
                    idx_string.c.res_id == "ix", idx_string.c.code == "family"
                )
            )
        }
        tokens = conn.execute(
            select(idx_token.c.system, idx_token.c.value).where(
                idx_token.c.res_id == "ix", idx_token.c.code == "identifier"
            )
        ).all()
    assert families == {"beranger"}
    assert ("urn:oid:1.2.250.1.213.1.4.10", "279035121518989") in [tuple(t) for t in tokens]
    store.write(lambda tx: tx.delete("Patient", "ix"))
    with store.engine.connect() as conn:
        left = conn.execute(select(idx_string.c.res_id).where(idx_string.c.res_id == "ix")).all()
    assert left == []


def test_index_rows_of_several_writes_in_one_unit(store: SqlStore, defs: Definitions) -> None:
    """Index deletions wait for the unit's flush: two updates of one resource in one unit,
    then a search in it, see only the last version's rows; ``read_many`` sees the unit's
    own writes and skips the deleted."""
    store.write(lambda tx: tx.create("Patient", dict(PATIENT), "u1"))
    store.write(lambda tx: tx.create("Patient", dict(PATIENT), "u2"))

    def unit(tx: Any) -> tuple[list[str], list[str], dict[str, Any]]:
        tx.update("Patient", "u1", {**PATIENT, "name": [{"family": "Aubert"}]})
        tx.update("Patient", "u1", {**PATIENT, "name": [{"family": "Caron"}]})
        tx.delete("Patient", "u2")
        found = tx.read_many("Patient", ["u1", "u2", "nope"])

        def ids(family: str) -> list[str]:
            q = parse_search(defs, "Patient", [("family", family)])
            return sorted(s.id for s in tx.search(q).entries)

        return ids("aubert"), ids("caron"), found

    aubert, caron, found = store.write(unit)
    assert aubert == [] and caron == ["u1"]
    assert sorted(found) == ["u1"] and found["u1"].resource["name"] == [{"family": "Caron"}]
    with store.engine.connect() as conn:
        families = conn.execute(
            select(idx_string.c.res_id, idx_string.c.value_folded).where(
                idx_string.c.code == "family"
            )
        ).all()
    assert sorted(tuple(f) for f in families) == [("u1", "caron")]


def test_search_compiles_to_sql(store: SqlStore, defs: Definitions) -> None:
    store.write(lambda tx: tx.create("Patient", dict(PATIENT), "s1"))
    store.write(lambda tx: tx.create("Patient", {**PATIENT, "name": [{"family": "Noël"}]}, "s2"))

    def ids(*params: tuple[str, str]) -> list[str]:
        q = parse_search(defs, "Patient", list(params))
        return sorted(s.id for s in store.read(lambda tx: tx.search(q)).entries)

    assert ids(("family", "lefevre")) == ["s1"]
    assert ids(("family", "LEF")) == ["s1"]
    assert ids(("family", "noel,lef")) == ["s1", "s2"]
    assert ids(("family:exact", "Noël")) == ["s2"]
    assert ids(("identifier", "urn:oid:1.2.250.1.213.1.4.10|279035121518989")) == ["s1", "s2"]
    assert ids(("birthdate", "1979")) == ["s1", "s2"]
    assert ids(("birthdate", "gt1979-03-05")) == []
    assert ids(("_id", "s2")) == ["s2"]
    assert ids(("_id:not", "s2")) == ["s1"]
    # _lastUpdated is answered from the resource table (the clock ticks one second a write)
    assert ids(("_lastUpdated", "2026-01-01T00:00:01Z")) == ["s1"]
    assert ids(("_lastUpdated", "gt2026-01-01T00:00:01Z")) == ["s2"]
    assert ids(("_lastUpdated", "2026-01-01")) == ["s1", "s2"]
    assert ids(("_lastUpdated", "lt2025")) == []


def test_failed_unit_of_a_group_is_rolled_back_alone(store: SqlStore) -> None:
    barrier = threading.Barrier(8)
    outcomes: dict[int, str] = {}

    def unit(i: int) -> None:
        barrier.wait()

        def work(tx: Any) -> None:
            tx.create("Basic", {"resourceType": "Basic", "code": {"text": str(i)}}, f"b{i}")
            if i % 2:
                raise FhirError(Category.INVALID, "refused on purpose")

        try:
            store.write(work)
            outcomes[i] = "ok"
        except FhirError:
            outcomes[i] = "refused"

    threads = [threading.Thread(target=unit, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for i in range(8):
        stored = store.read(lambda tx, i=i: tx.read("Basic", f"b{i}"))
        assert (stored is not None) == (i % 2 == 0), (i, outcomes[i])


def test_create_with_taken_id_conflicts(store: SqlStore) -> None:
    store.write(lambda tx: tx.create("Basic", {"resourceType": "Basic"}, "same"))
    with pytest.raises(FhirError) as err:
        store.write(lambda tx: tx.create("Basic", {"resourceType": "Basic"}, "same"))
    assert err.value.category == Category.CONFLICT


def test_migrations_are_idempotent(store: SqlStore) -> None:
    store.migrate()
    store.migrate()
    assert store.count() == 0


def test_data_key_rotation_keeps_old_bodies_readable(store: SqlStore, tmp_path: Path) -> None:
    store.write(lambda tx: tx.create("Basic", {"resourceType": "Basic"}, "old"))
    (tmp_path / "state" / "keys" / "data-0002.key").write_bytes(b"k" * 32)
    store.keyring = Keyring.load_or_create(tmp_path / "state")
    store.write(lambda tx: tx.create("Basic", {"resourceType": "Basic"}, "new"))
    assert store.read(lambda tx: tx.read("Basic", "old")) is not None
    assert store.read(lambda tx: tx.read("Basic", "new")) is not None


def test_a_missing_data_key_is_refused_at_start(store: SqlStore, tmp_path: Path) -> None:
    from maison.store.crypto import DataKeyError

    store.check_keys("state")
    store.write(lambda tx: tx.create("Basic", {"resourceType": "Basic"}, "k"))
    elsewhere = tmp_path / "elsewhere"
    store.keyring = Keyring.load_or_create(elsewhere)  # e.g. started from another folder
    with pytest.raises(DataKeyError, match="--state"):
        store.check_keys(str(elsewhere))
    assert not (elsewhere / "keys").exists()  # no stray key was written


def test_number_and_quantity_search(store: SqlStore, defs: Definitions) -> None:
    def obs(rid: str, value: float, unit: str = "mg") -> None:
        body = {
            "resourceType": "Observation",
            "status": "final",
            "code": {"text": "x"},
            "valueQuantity": {
                "value": value,
                "system": "http://unitsofmeasure.org",
                "code": unit,
                "unit": unit,
            },
        }
        store.write(lambda tx: tx.create("Observation", body, rid))

    obs("q1", 5.4)
    obs("q2", 5.45)
    obs("q3", 100)
    obs("q4", 5.4, "g")

    def ids(value: str) -> list[str]:
        q = parse_search(defs, "Observation", [("value-quantity", value)])
        return sorted(s.id for s in store.read(lambda tx: tx.search(q)).entries)

    assert ids("5.4") == ["q1", "q4"]  # 5.4 means [5.35, 5.45)
    assert ids("5.4|http://unitsofmeasure.org|mg") == ["q1"]
    assert ids("5.4||g") == ["q4"]
    assert ids("gt5.4") == ["q2", "q3"]
    assert ids("ge5.4") == ["q1", "q2", "q3", "q4"]
    assert ids("lt5.45") == ["q1", "q4"]
    assert ids("le5.4|http://unitsofmeasure.org|mg") == ["q1"]
    assert ids("ne5.4") == ["q2", "q3"]
    assert ids("ap100") == ["q3"]
    assert ids("1e2") == ["q3"]  # exponent: [50, 150)
    with pytest.raises(FhirError) as err:
        ids("abc")
    assert err.value.category == Category.INVALID


def test_chained_and_reverse_chained_search(store: SqlStore, defs: Definitions) -> None:
    org = {"resourceType": "Organization", "name": "CHU de Nantes"}
    store.write(lambda tx: tx.create("Organization", org, "org1"))
    pat = {**PATIENT, "managingOrganization": {"reference": "Organization/org1"}}
    store.write(lambda tx: tx.create("Patient", pat, "p1"))
    store.write(lambda tx: tx.create("Patient", {**PATIENT, "name": [{"family": "Noël"}]}, "p2"))
    enc = {
        "resourceType": "Encounter",
        "status": "finished",
        "class": {"code": "AMB"},
        "subject": {"reference": "Patient/p1"},
    }
    store.write(lambda tx: tx.create("Encounter", enc, "e1"))
    for rid, subject, code, encounter in (
        ("o1", "Patient/p1", "8867-4", "Encounter/e1"),
        ("o2", "Patient/p2", "8867-4", None),
        ("o3", "Patient/p1", "29463-7", None),
    ):
        body: dict[str, Any] = {
            "resourceType": "Observation",
            "status": "final",
            "code": {"coding": [{"system": "http://loinc.org", "code": code}]},
            "subject": {"reference": subject},
        }
        if encounter:
            body["encounter"] = {"reference": encounter}
        store.write(lambda tx, rid=rid, body=body: tx.create("Observation", body, rid))

    def ids(rtype: str, *params: tuple[str, str]) -> list[str]:
        q = parse_search(defs, rtype, list(params))
        return sorted(s.id for s in store.read(lambda tx: tx.search(q)).entries)

    ins = "urn:oid:1.2.250.1.213.1.4.10|279035121518989"
    assert ids("Observation", ("subject:Patient.family", "lefevre")) == ["o1", "o3"]
    assert ids("Observation", ("patient.family", "noel")) == ["o2"]
    assert ids("Observation", ("patient.identifier", ins)) == ["o1", "o2", "o3"]
    assert ids("Observation", ("patient.organization.name", "chu")) == ["o1", "o3"]
    assert ids("Observation", ("encounter.subject.family", "lef")) == ["o1"]
    assert ids("Observation", ("patient.family", "lef"), ("code", "8867-4")) == ["o1"]
    assert ids("Patient", ("_has:Observation:patient:code", "29463-7")) == ["p1"]
    assert ids("Patient", ("_has:Observation:patient:code", "8867-4")) == ["p1", "p2"]
    assert ids(
        "Organization", ("_has:Patient:organization:_has:Observation:patient:code", "29463-7")
    ) == ["org1"]
    for bad in (
        ("patient.nonsense", "x"),
        ("code.text", "x"),
        ("_has:Observation:code:x", "1"),
        ("_has:Nope:patient:code", "1"),
        ("_has:Observation", "1"),
    ):
        with pytest.raises(FhirError) as err:
            ids("Observation" if not bad[0].startswith("_has") else "Patient", bad)
        assert err.value.category == Category.INVALID, bad


def test_sort_include_and_revinclude(store: SqlStore, defs: Definitions) -> None:
    for rid, family, birth in (
        ("a", "Béranger", "1990-01-01"),
        ("b", "Albert", "1980-05-05"),
        ("c", "Albert", "2000-01-01"),
        ("d", "Zola", None),
    ):
        body: dict[str, Any] = {"resourceType": "Patient", "name": [{"family": family}]}
        if birth:
            body["birthDate"] = birth
        store.write(lambda tx, rid=rid, body=body: tx.create("Patient", body, rid))
    store.write(
        lambda tx: tx.create(
            "Group", {"resourceType": "Group", "type": "person", "actual": True}, "g"
        )
    )
    for rid, subject in (("o1", "a"), ("o2", "a"), ("o3", "b")):
        body = {
            "resourceType": "Observation",
            "status": "final",
            "code": {"text": "x"},
            "subject": {"reference": f"Patient/{subject}"},
            "focus": [{"reference": "Group/g"}],
        }
        store.write(lambda tx, rid=rid, body=body: tx.create("Observation", body, rid))

    def run(rtype: str, *params: tuple[str, str]) -> tuple[list[str], list[str]]:
        q = parse_search(defs, rtype, list(params))
        page = store.read(lambda tx: tx.search(q))
        return [s.id for s in page.entries], sorted(f"{s.type}/{s.id}" for s in page.included)

    assert run("Patient", ("_sort", "family,birthdate"))[0] == ["b", "c", "a", "d"]
    assert run("Patient", ("_sort", "family,-birthdate"))[0] == ["c", "b", "a", "d"]
    assert run("Patient", ("_sort", "-birthdate"))[0] == ["c", "a", "b", "d"]  # missing last
    assert run("Patient", ("_sort", "_id"))[0] == ["a", "b", "c", "d"]
    matches, inc = run("Observation", ("_id", "o1,o3"), ("_include", "Observation:subject"))
    assert sorted(matches) == ["o1", "o3"] and inc == ["Patient/a", "Patient/b"]
    _, inc = run("Observation", ("_id", "o1"), ("_include", "Observation:*"))
    assert inc == ["Group/g", "Patient/a"]
    _, inc = run("Observation", ("_id", "o1"), ("_include", "Observation:subject:Group"))
    assert inc == []
    matches, inc = run("Patient", ("_id", "a"), ("_revinclude", "Observation:subject"))
    assert matches == ["a"] and inc == ["Observation/o1", "Observation/o2"]
    _, inc = run(
        "Patient",
        ("_id", "a"),
        ("_revinclude", "Observation:subject"),
        ("_include:iterate", "Observation:focus"),
    )
    assert inc == ["Group/g", "Observation/o1", "Observation/o2"]
    for bad in (
        ("_sort", "nonsense"),
        ("_include", "Observation"),
        ("_include", "Nope:subject"),
        ("_include", "Observation:code"),
    ):
        with pytest.raises(FhirError) as err:
            run("Observation", bad)
        assert err.value.category == Category.INVALID, bad


def test_identifier_of_type(store: SqlStore, defs: Definitions) -> None:
    v2 = "http://terminology.hl7.org/CodeSystem/v2-0203"
    body = {
        "resourceType": "Patient",
        "identifier": [
            {
                "type": {"coding": [{"system": v2, "code": "MR"}]},
                "system": "urn:ipp",
                "value": "42",
            },
            {"type": {"coding": [{"system": v2, "code": "NI"}]}, "system": "urn:x", "value": "7"},
        ],
    }
    store.write(lambda tx: tx.create("Patient", body, "t1"))

    def ids(value: str) -> list[str]:
        q = parse_search(defs, "Patient", [("identifier:of-type", value)])
        return sorted(s.id for s in store.read(lambda tx: tx.search(q)).entries)

    assert ids(f"{v2}|MR|42") == ["t1"]
    assert ids(f"{v2}|MR|7") == []
    assert ids(f"{v2}|NI|7") == ["t1"]
    with pytest.raises(FhirError):
        ids("MR|42")


def test_runaway_statements_are_stopped(
    store: SqlStore, backend: str, defs: Definitions, data_url: str, tmp_path: Path
) -> None:
    from sqlalchemy.exc import DBAPIError

    from maison.store.sql import StoreSettings, db_error

    if backend == "sqlite":
        bodies = [{"resourceType": "Basic", "code": {"text": f"x{i}"}} for i in range(3000)]
        store.write(lambda tx: [tx.create("Basic", b) for b in bodies])
        store.settings.statement_timeout_ms = 0  # every statement is already over time
        q = parse_search(defs, "Basic", [("code:text", "x")])
        with pytest.raises(FhirError) as err:
            store.read(lambda tx: tx.search(q))
        assert err.value.category == Category.TIMEOUT
        store.settings.statement_timeout_ms = 30_000
        assert len(store.read(lambda tx: tx.search(q)).entries) == DEFAULT_COUNT
    else:
        slow = SqlStore(
            Settings(data=data_url).database_url,
            store.keyring,
            Indexer(defs).extract,
            settings=StoreSettings(statement_timeout_ms=50),
        )
        try:
            with pytest.raises(DBAPIError) as exc, slow.engine.connect() as conn:
                conn.exec_driver_sql("SELECT pg_sleep(2)")
            mapped = db_error(exc.value)
            assert isinstance(mapped, FhirError) and mapped.category == Category.TIMEOUT
        finally:
            slow.close()


def test_referencing_lists_current_resources_of_every_type(store: SqlStore) -> None:
    store.write(lambda tx: tx.create("Patient", {**PATIENT, "link": []}, "r1"))
    self_link = {"other": {"reference": "Patient/r1"}, "type": "seealso"}
    store.write(lambda tx: tx.update("Patient", "r1", {**PATIENT, "id": "r1", "link": [self_link]}))
    store.write(lambda tx: tx.create("Patient", {**PATIENT, "link": [self_link]}, "r2"))
    obs = {"resourceType": "Observation", "status": "final", "code": {"text": "x"}}
    subject = {"reference": "Patient/r1"}
    store.write(lambda tx: tx.create("Observation", {**obs, "subject": subject}, "o1"))
    store.write(lambda tx: tx.create("Observation", {**obs, "performer": [subject]}, "o2"))
    enc = {"resourceType": "Encounter", "status": "finished", "subject": subject}
    store.write(lambda tx: tx.create("Encounter", enc, "e1"))
    expected = [
        ("Encounter", "e1"),
        ("Observation", "o1"),
        ("Observation", "o2"),
        ("Patient", "r2"),
    ]
    assert store.read(lambda tx: tx.referencing("Patient", "r1")) == expected
    via = {"Observation": ["subject"], "Patient": ["link"]}
    assert store.read(lambda tx: tx.referencing("Patient", "r1", via)) == [
        ("Observation", "o1"),
        ("Patient", "r2"),
    ]
    assert store.read(lambda tx: tx.referencing("Patient", "r1", {})) == []
    # ``having``: only those holding a token code (any system), here a security label
    label = {"system": "urn:x", "code": "MASQUE_PS"}
    masked = {**obs, "subject": subject, "meta": {"security": [label]}}
    store.write(lambda tx: tx.create("Observation", masked, "o3"))
    other = {**obs, "subject": {"reference": "Patient/r2"}, "meta": {"security": [label]}}
    store.write(lambda tx: tx.create("Observation", other, "o4"))
    having = {"Observation": ("_security", "MASQUE_PS")}
    observations = {"Observation": ["subject"]}
    assert store.read(lambda tx: tx.referencing("Patient", "r1", observations, having)) == [
        ("Observation", "o3")
    ]
    # the types ``having`` does not name are not filtered
    assert store.read(lambda tx: tx.referencing("Patient", "r1", via, having)) == [
        ("Observation", "o3"),
        ("Patient", "r2"),
    ]
    assert store.read(lambda tx: tx.referencing("Patient", "r1", None, having)) == [
        ("Encounter", "e1"),
        ("Observation", "o3"),
        ("Patient", "r2"),
    ]
    other_label = {"Observation": ("_security", "N")}
    assert store.read(lambda tx: tx.referencing("Patient", "r1", observations, other_label)) == []
    store.write(lambda tx: tx.delete("Observation", "o3"))
    assert store.read(lambda tx: tx.referencing("Patient", "r1", observations, having)) == []
    # several types in one read
    both = store.read(
        lambda tx: tx.read_each(
            [("Patient", "r2"), ("Observation", "o1"), ("Observation", "o3"), ("Patient", "nope")]
        )
    )
    assert sorted(both) == [("Observation", "o1"), ("Patient", "r2")]
    assert both[("Observation", "o1")].resource["subject"] == subject
    store.write(lambda tx: tx.delete("Encounter", "e1"))

    def within(tx: Any) -> list[tuple[str, str]]:  # pending rows are seen in the same unit
        tx.create("Encounter", enc, "e2")
        found: list[tuple[str, str]] = tx.referencing("Patient", "r1")
        return found

    assert store.write(within)[0] == ("Encounter", "e2")
    assert ("Encounter", "e1") not in store.read(lambda tx: tx.referencing("Patient", "r1"))


def test_swap_meta_is_a_compare_and_set_one_caller_wins(store: SqlStore) -> None:
    """Single-use records (an authorization code, a refresh token's rotation): of concurrent
    swaps of one key from the same expected value, exactly one happens."""
    start = threading.Barrier(8)
    found: list[str | None] = []

    def claim(i: int) -> None:
        start.wait()
        found.append(store.swap_meta("psc:c:test", None, f"winner-{i}"))

    threads = [threading.Thread(target=claim, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    winner = store.get_meta("psc:c:test")
    assert found.count(None) == 1 and winner is not None and winner.startswith("winner-")
    assert sorted(f for f in found if f is not None) == [winner] * 7
    assert store.swap_meta("psc:c:test", "other", "x") == winner  # not the expected: unchanged
    assert store.swap_meta("psc:c:test", winner, "rotated") == winner
    assert store.get_meta("psc:c:test") == "rotated"


def test_last_write_is_a_stamp_of_every_write(store: SqlStore) -> None:
    """The stamp the access rules' cache trusts: it moves when, and only when, a resource is
    written (deletions included)."""
    assert store.read(lambda tx: tx.last_write()) == 0
    consent = {"resourceType": "Consent", "status": "active"}
    made = store.write(lambda tx: tx.create("Consent", consent))
    after = store.read(lambda tx: tx.last_write())
    assert after > 0
    assert store.read(lambda tx: tx.last_write()) == after  # reading changes nothing
    store.write(lambda tx: tx.create("Patient", {"resourceType": "Patient"}))
    later = store.read(lambda tx: tx.last_write())
    assert later > after
    store.write(lambda tx: tx.delete("Consent", made.id))
    assert store.read(lambda tx: tx.last_write()) > later


def test_work_queued_while_another_process_writes_joins_one_commit(store: SqlStore) -> None:
    """The writer takes its batch once it holds the write lock: what queued while another
    process held it shares one commit (one fsync) instead of one each."""
    if store.dialect != "sqlite":
        pytest.skip("the cross-process write lock is SQLite's")
    import fcntl
    import os
    import time

    from sqlalchemy import event

    commits: list[int] = []
    event.listen(store.engine, "commit", lambda _conn: commits.append(1))
    store.write(lambda tx: tx.create("Basic", {"resourceType": "Basic"}, "first"))
    assert store._lock_path is not None
    other = os.open(store._lock_path, os.O_RDWR)
    try:
        fcntl.flock(other, fcntl.LOCK_EX)  # another process writing
        commits.clear()

        def queue(i: int) -> Any:
            return store.write_future(
                lambda tx: tx.create("Basic", {"resourceType": "Basic"}, f"q{i}")
            )

        def queued(n: int) -> None:
            deadline = time.monotonic() + 10
            while store._committer is not None and store._committer.queue.qsize() != n:
                assert time.monotonic() < deadline
                time.sleep(0.01)

        futures = [queue(0)]
        queued(0)  # the writer took it and waits for the lock
        time.sleep(0.05)
        futures += [queue(i) for i in range(1, 6)]
        queued(5)
        assert not any(f.done() for f in futures)
    finally:
        os.close(other)  # releases the lock
    for f in futures:
        f.result(timeout=10)
    assert len(commits) == 1
    for i in range(6):
        assert store.read(lambda tx, i=i: tx.read("Basic", f"q{i}")) is not None


def test_index_rows_extracted_ahead_serve_only_the_write_of_that_very_body(
    store: SqlStore, defs: Definitions
) -> None:
    """``index_ahead`` moves the extraction out of the serialised writer; the write uses it
    only for the same content, and the rows are the ones the write would have extracted."""
    calls: list[str] = []
    real = store.indexer

    def counting(body: dict[str, Any]) -> Any:
        calls.append(str(body.get("id")))
        return real(body)

    store.indexer = counting

    def patient(pid: str, family: str) -> dict[str, Any]:
        return {**PATIENT, "id": pid, "name": [{"family": family, "given": ["Hélène"]}]}

    def create(body: dict[str, Any]) -> None:
        rest = {k: v for k, v in body.items() if k != "id"}
        store.write(lambda tx: tx.create("Patient", rest, body["id"], fresh=True))

    def ids(*params: tuple[str, str]) -> list[str]:
        q = parse_search(defs, "Patient", list(params))
        return sorted(s.id for s in store.read(lambda tx: tx.search(q)).entries)

    store.index_ahead(patient("a1", "Aubert"))
    assert calls == ["a1"]
    create(patient("a1", "Aubert"))
    assert calls == ["a1"]  # not extracted again in the unit
    assert ids(("family", "aubert")) == ["a1"]
    assert ids(("_id", "a1"), ("_lastUpdated", "gt2000")) == ["a1"]  # the stamp's columns
    # foreseen wrong: the unit extracts what it stores
    store.index_ahead(patient("a2", "Caron"))
    create(patient("a2", "Brun"))
    assert calls == ["a1", "a2", "a2"]
    assert ids(("family", "brun")) == ["a2"] and ids(("family", "caron")) == []
    # definitions changed meanwhile (a new indexer): never the old extraction
    store.index_ahead(patient("a3", "Dupont"))
    store.indexer = lambda body: (calls.append("new"), real(body))[1]
    create(patient("a3", "Dupont"))
    assert calls[-1] == "new" and ids(("family", "dupont")) == ["a3"]
