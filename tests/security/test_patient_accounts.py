"""Patient accounts: bound to a qualified INS, password + TOTP (RFC 6238) with lockout and no
replay, secrets not stored in clear, legal representatives as RelatedPerson resources (a
minor's until 18), on SQLite and PostgreSQL (MAISON_TEST_STORE)."""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pyotp
import pytest
from sqlalchemy import select

from maison.fhir.definitions import Definitions
from maison.security.patient_accounts import (
    LOCK_SECONDS,
    REPRESENTATION_CS,
    ROLE_CODE,
    AccountError,
    Enrolment,
    PatientAccounts,
    ScryptParams,
    check_password,
    majority_day,
    password_problem,
)
from maison.services.ins import reference
from maison.services.ins.accounts import patient_accounts
from maison.store.accounts import patient_account
from maison.store.sql import SqlStore
from support import open_sql_store

PASSWORD = "Correct-Horse-42"
FAST = ScryptParams(log_n=10)  # tests only; the default is N=2**17
START = datetime(2026, 3, 2, 9, 0, tzinfo=UTC).timestamp()
_identities = reference.synthesize(10_000, seed=uuid.uuid4().int % 2**31)


class Clock:
    """A settable clock (seconds since the epoch)."""

    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def store(data_url: str, tmp_path: Path, defs: Definitions) -> Iterator[SqlStore]:
    s = open_sql_store(data_url, tmp_path / "state", defs)
    yield s
    s.close()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def accounts(store: SqlStore, clock: Clock) -> PatientAccounts:
    return patient_accounts(store, clock=clock, params=FAST)


def add_patient(store: SqlStore, status: str = "QUAL", birth_date: str | None = None) -> str:
    """A Patient as the INS reference base gives it, with this identity status."""
    body = reference.to_patient(next(_identities), status)
    if birth_date is not None:
        body["birthDate"] = birth_date
    return store.write(lambda tx: tx.create("Patient", body)).id


def ins_of(store: SqlStore, patient_id: str) -> str:
    found = store.read(lambda tx: tx.read("Patient", patient_id))
    assert found is not None and found.resource is not None
    return str(found.resource["identifier"][0]["value"])


def code(enrolment: Enrolment, at: float, steps: int = 0) -> str:
    return pyotp.TOTP(enrolment.totp_secret).at(at, counter_offset=steps)


def refused(code_: str, call: Any, *args: Any) -> AccountError:
    with pytest.raises(AccountError) as info:
        call(*args)
    assert info.value.code == code_, info.value.reason
    return info.value


# -- creation -----------------------------------------------------------------------------


def test_create_binds_a_qualified_identity(store: SqlStore, accounts: PatientAccounts) -> None:
    pid = add_patient(store)
    enrolment = accounts.create(pid, PASSWORD)
    account = enrolment.account
    assert (account.patient_id, account.ins) == (pid, ins_of(store, pid))
    assert account.display and not account.totp_enrolled
    assert enrolment.provisioning_uri.startswith("otpauth://totp/")
    assert f"secret={enrolment.totp_secret}" in enrolment.provisioning_uri
    assert account.ins not in enrolment.provisioning_uri  # the label names the person
    assert accounts.by_ins(account.ins) == account
    assert accounts.patient_by_ins(account.ins) == pid
    assert [a.account_id for a in accounts.listing()] == [account.account_id]


@pytest.mark.parametrize("status", ["PROV", "RECUP", "VALI"])
def test_create_refuses_an_identity_not_qualified(
    store: SqlStore, accounts: PatientAccounts, status: str
) -> None:
    pid = add_patient(store, status)
    err = refused("not_qualified", accounts.create, pid, PASSWORD)
    assert f"status {status}" in err.reason and "QUAL" in err.reason


def test_create_refuses_an_unknown_patient(accounts: PatientAccounts) -> None:
    err = refused("unknown", accounts.create, "nobody", PASSWORD)
    assert "Patient/nobody" in err.reason


def test_one_account_per_ins(store: SqlStore, accounts: PatientAccounts) -> None:
    pid = add_patient(store)
    accounts.create(pid, PASSWORD)
    refused("exists", accounts.create, pid, "Another-Password-7")


@pytest.mark.parametrize(
    "weak", ["Short-1a", "alllowercase", "abcdefghijk1", "aaaaaaaaaaaaaaaaaaaa"]
)
def test_weak_passwords_are_refused_with_the_rule(
    store: SqlStore, accounts: PatientAccounts, weak: str
) -> None:
    pid = add_patient(store)
    err = refused("weak_password", accounts.create, pid, weak)
    assert "12 characters" in err.reason or "different characters" in err.reason


def test_password_rule() -> None:
    assert password_problem("Correct-Horse-42") is None  # 16, 4 kinds
    assert password_problem("Abcdefgh1234") is None  # 12, 3 kinds
    assert password_problem("correct horse battery") is None  # a passphrase of 16+
    assert password_problem("Abcdefgh123") is not None  # 11
    assert password_problem("xY-295109912611193z", "295109912611193") is not None


# -- sign-in ------------------------------------------------------------------------------


def _enrolled(store: SqlStore, accounts: PatientAccounts) -> Enrolment:
    return accounts.create(add_patient(store), PASSWORD)


def test_verify_with_password_and_code(
    store: SqlStore, accounts: PatientAccounts, clock: Clock
) -> None:
    e = _enrolled(store, accounts)
    account = accounts.verify(e.account.ins, PASSWORD, code(e, clock.now))
    assert account.account_id == e.account.account_id and account.totp_enrolled
    assert accounts.get(account.account_id).totp_enrolled


def test_wrong_password_and_unknown_ins_look_the_same(
    store: SqlStore, accounts: PatientAccounts, clock: Clock
) -> None:
    e = _enrolled(store, accounts)
    now = code(e, clock.now)
    wrong = refused("bad_credentials", accounts.verify, e.account.ins, "Wrong-Password-1", now)
    unknown = refused("bad_credentials", accounts.verify, "199999999999999", PASSWORD, now)
    assert wrong.reason == unknown.reason


def test_code_required_then_wrong_replayed_expired(
    store: SqlStore, accounts: PatientAccounts, clock: Clock
) -> None:
    e = _enrolled(store, accounts)
    ins = e.account.ins
    refused("totp_required", accounts.verify, ins, PASSWORD, "")
    good = code(e, clock.now)
    wrong = f"{(int(good) + 1) % 10**6:06d}"
    refused("totp_invalid", accounts.verify, ins, PASSWORD, wrong)
    refused("totp_invalid", accounts.verify, ins, PASSWORD, code(e, clock.now, steps=-2))
    refused("totp_invalid", accounts.verify, ins, PASSWORD, code(e, clock.now, steps=2))
    accounts.verify(ins, PASSWORD, good)
    err = refused("totp_invalid", accounts.verify, ins, PASSWORD, good)  # replay
    assert "already used" in err.reason
    # the previous step's code is older than the one used: refused too
    refused("totp_invalid", accounts.verify, ins, PASSWORD, code(e, clock.now, steps=-1))
    clock.now += 30
    accounts.verify(ins, PASSWORD, code(e, clock.now))


def test_one_step_of_tolerance(store: SqlStore, accounts: PatientAccounts, clock: Clock) -> None:
    e = _enrolled(store, accounts)
    accounts.verify(e.account.ins, PASSWORD, code(e, clock.now, steps=-1))
    accounts.verify(e.account.ins, PASSWORD, code(e, clock.now, steps=1))


def test_lockout_after_five_failures_then_unlock(
    store: SqlStore, accounts: PatientAccounts, clock: Clock
) -> None:
    e = _enrolled(store, accounts)
    ins = e.account.ins
    for _ in range(4):
        refused("bad_credentials", accounts.verify, ins, "Wrong-Password-1", "000000")
    refused("locked", accounts.verify, ins, "Wrong-Password-1", "000000")
    err = refused("locked", accounts.verify, ins, PASSWORD, code(e, clock.now))
    assert "15 minutes" in err.reason
    clock.now += LOCK_SECONDS - 1
    refused("locked", accounts.verify, ins, PASSWORD, code(e, clock.now))
    clock.now += 2
    assert accounts.verify(ins, PASSWORD, code(e, clock.now)).ins == ins


def test_wrong_codes_count_as_failures(
    store: SqlStore, accounts: PatientAccounts, clock: Clock
) -> None:
    e = _enrolled(store, accounts)
    good = code(e, clock.now)
    wrong = f"{(int(good) + 1) % 10**6:06d}"
    for _ in range(4):
        refused("totp_invalid", accounts.verify, e.account.ins, PASSWORD, wrong)
    refused("locked", accounts.verify, e.account.ins, PASSWORD, wrong)


def test_a_success_resets_the_failure_count(
    store: SqlStore, accounts: PatientAccounts, clock: Clock
) -> None:
    e = _enrolled(store, accounts)
    ins = e.account.ins
    for _ in range(4):
        refused("bad_credentials", accounts.verify, ins, "Wrong-Password-1", "")
    accounts.verify(ins, PASSWORD, code(e, clock.now))
    for _ in range(4):
        refused("bad_credentials", accounts.verify, ins, "Wrong-Password-1", "")


def test_secrets_are_not_stored_in_clear(store: SqlStore, accounts: PatientAccounts) -> None:
    e = _enrolled(store, accounts)
    with store.engine.connect() as conn:
        row = conn.execute(select(patient_account)).one()._mapping
    raw = b"".join(v if isinstance(v, bytes) else str(v).encode() for v in row.values())
    assert e.totp_secret.encode() not in raw
    assert PASSWORD.encode() not in raw
    assert row["password_hash"].startswith("scrypt$ln=10,r=8,p=1$")
    assert check_password(PASSWORD, row["password_hash"])
    # sealed with the store's data key and bound to the account
    opened = store.keyring.decrypt(
        bytes(row["totp_secret"]), f"patient_account/{row['account_id']}/totp".encode()
    )
    assert opened.decode() == e.totp_secret


def test_password_change_and_rehash_on_stronger_cost(
    store: SqlStore, accounts: PatientAccounts, clock: Clock
) -> None:
    e = _enrolled(store, accounts)
    refused("weak_password", accounts.set_password, e.account.account_id, "short")
    accounts.set_password(e.account.account_id, "New-Password-2026")
    stronger = patient_accounts(store, clock=clock, params=ScryptParams(log_n=11))
    stronger.verify(e.account.ins, "New-Password-2026", code(e, clock.now))
    with store.engine.connect() as conn:
        stored = conn.execute(select(patient_account.c.password_hash)).scalar_one()
    assert stored.startswith("scrypt$ln=11,")


def test_reset_totp_voids_the_old_secret(
    store: SqlStore, accounts: PatientAccounts, clock: Clock
) -> None:
    e = _enrolled(store, accounts)
    accounts.verify(e.account.ins, PASSWORD, code(e, clock.now))
    fresh = accounts.reset_totp(e.account.account_id)
    assert fresh.totp_secret != e.totp_secret and not fresh.account.totp_enrolled
    clock.now += 30
    refused("totp_invalid", accounts.verify, e.account.ins, PASSWORD, code(e, clock.now))
    assert accounts.current_code(e.account.ins) == code(fresh, clock.now)
    accounts.verify(e.account.ins, PASSWORD, code(fresh, clock.now))


# -- legal representatives ----------------------------------------------------------------


def test_a_parent_represents_a_minor_until_18(
    store: SqlStore, accounts: PatientAccounts, clock: Clock
) -> None:
    parent = _enrolled(store, accounts).account
    child = add_patient(store, "VALI", birth_date="2015-06-10")  # a minor needs no account
    rep = accounts.add_representative(child, parent.account_id, "parent", None)
    assert rep.valid_until == date(2033, 6, 9) and rep.kind == "parent"
    assert [r.patient_id for r in accounts.represented(parent.account_id)] == [child]
    assert accounts.act_for(parent.account_id, child).kind == "parent"
    # the mandate is FHIR data: a RelatedPerson the API and the portal can show
    assert rep.related_person_id is not None
    found = store.read(lambda tx: tx.read("RelatedPerson", rep.related_person_id or ""))
    assert found is not None and found.resource is not None
    body = found.resource
    assert body["patient"] == {"reference": f"Patient/{child}"}
    assert body["identifier"][0]["value"] == parent.ins
    codings = {(c["system"], c["code"]) for c in body["relationship"][0]["coding"]}
    assert codings == {(ROLE_CODE, "PRN"), (REPRESENTATION_CS, "parent")}
    assert body["period"] == {"start": "2026-03-02", "end": "2033-06-09"}
    # the day before the 18th birthday: still; on it: no more
    clock.now = datetime(2033, 6, 9, 12, tzinfo=UTC).timestamp()
    assert len(accounts.represented(parent.account_id)) == 1
    clock.now = datetime(2033, 6, 10, 12, tzinfo=UTC).timestamp()
    assert accounts.represented(parent.account_id) == []
    refused("no_representation", accounts.act_for, parent.account_id, child)


def test_majority_is_read_from_the_birth_date_even_with_a_later_end(
    store: SqlStore, accounts: PatientAccounts, clock: Clock
) -> None:
    parent = _enrolled(store, accounts).account
    child = add_patient(store, birth_date="2010-01-20")
    rep = accounts.add_representative(child, parent.account_id, "guardian", date(2040, 1, 1))
    assert rep.valid_until == date(2028, 1, 19)
    adult = add_patient(store, birth_date="2000-05-05")
    refused(
        "no_representation", accounts.add_representative, adult, parent.account_id, "parent", None
    )
    # an adult under tutelle: as long as the court decided
    until = date(2030, 12, 31)
    assert (
        accounts.add_representative(adult, parent.account_id, "tutelle", until).valid_until == until
    )
    assert [r.kind for r in accounts.represented(parent.account_id)] in (
        ["guardian", "tutelle"],
        ["tutelle", "guardian"],
    )


def test_majority_day() -> None:
    assert majority_day("2008-02-29") == date(2026, 3, 1)
    assert majority_day("2008-07") == date(2026, 7, 1)
    assert majority_day("2008") == date(2026, 1, 1)
    assert majority_day("not a date") is None


def test_an_expired_representation_is_not_returned(
    store: SqlStore, accounts: PatientAccounts, clock: Clock
) -> None:
    guardian = _enrolled(store, accounts).account
    adult = add_patient(store, birth_date="1950-01-01")
    accounts.add_representative(adult, guardian.account_id, "tutelle", date(2026, 3, 3))
    assert len(accounts.represented(guardian.account_id)) == 1
    clock.now += 2 * 86400
    assert accounts.represented(guardian.account_id) == []
    refused(
        "no_representation",
        accounts.add_representative,
        adult,
        guardian.account_id,
        "tutelle",
        date(2026, 3, 1),
    )


def test_removed_representation_ends_and_stays_as_history(
    store: SqlStore, accounts: PatientAccounts
) -> None:
    parent = _enrolled(store, accounts).account
    child = add_patient(store, birth_date="2020-01-01")
    rep = accounts.add_representative(child, parent.account_id, "parent", None)
    again = accounts.add_representative(child, parent.account_id, "parent", date(2030, 1, 1))
    assert again.related_person_id == rep.related_person_id  # updated, not duplicated
    assert accounts.remove_representative(child, parent.account_id) == 1
    assert accounts.represented(parent.account_id) == []
    found = store.read(lambda tx: tx.read("RelatedPerson", rep.related_person_id or ""))
    assert found is not None and found.resource is not None
    assert found.resource["active"] is False and found.resource["period"]["end"] == "2026-03-02"
    refused("no_representation", accounts.remove_representative, child, parent.account_id)


def test_someone_elses_record_cannot_be_used(store: SqlStore, accounts: PatientAccounts) -> None:
    parent = _enrolled(store, accounts).account
    stranger = _enrolled(store, accounts).account
    child = add_patient(store, birth_date="2019-09-09")
    accounts.add_representative(child, parent.account_id, "parent", None)
    assert accounts.represented(stranger.account_id) == []
    refused("no_representation", accounts.act_for, stranger.account_id, child)
    refused("no_representation", accounts.act_for, stranger.account_id, parent.patient_id)
    assert accounts.act_for(stranger.account_id, stranger.patient_id).kind == "self"
    # a contact recorded by a hospital (no legal-representation code) is not a mandate
    contact = {
        "resourceType": "RelatedPerson",
        "active": True,
        "patient": {"reference": f"Patient/{child}"},
        "identifier": [{"system": f"urn:oid:{reference.OID_TEST}", "value": stranger.ins}],
        "relationship": [{"coding": [{"system": ROLE_CODE, "code": "PRN"}]}],
    }
    store.write(lambda tx: tx.create("RelatedPerson", contact))
    assert accounts.represented(stranger.account_id) == []
    refused("no_representation", accounts.act_for, stranger.account_id, child)
    # nor does a representative's own record count as represented
    refused(
        "invalid",
        accounts.add_representative,
        parent.patient_id,
        parent.account_id,
        "tutelle",
        None,
    )
    refused("invalid", accounts.add_representative, child, parent.account_id, "cousin", None)


def test_representations_of_many(store: SqlStore, accounts: PatientAccounts) -> None:
    parent = _enrolled(store, accounts).account
    children = [add_patient(store, birth_date=f"201{i}-01-01") for i in range(3)]
    for child in children:
        accounts.add_representative(child, parent.account_id, "parent", None)
    assert sorted(r.patient_id for r in accounts.represented(parent.account_id)) == sorted(children)
    assert all(r.ins for r in accounts.represented(parent.account_id))
    assert len(set(itertools.chain(children, [parent.patient_id]))) == 4
