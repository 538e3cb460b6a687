"""The INSi reference base at rest, on SQLite and on PostgreSQL (MAISON_TEST_STORE)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import inspect, select, text

from maison.api.settings import Settings
from maison.store.crypto import Keyring
from maison.store.identity_base import (
    LOOKUP_KEY_META,
    IdentityBase,
    IdentityRecord,
    LoadCounts,
    lookup_key,
)
from maison.store.schema import insi_call, insref_history, insref_identity
from maison.store.sql import SqlStore

NIR = "1.2.250.1.213.1.4.8"
NIA = "1.2.250.1.213.1.4.9"


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 1, 1, tzinfo=UTC)

    def __call__(self) -> datetime:
        self.now += timedelta(seconds=1)
        return self.now


def _no_indexer(body: dict[str, Any]) -> Any:
    raise AssertionError("the identity base indexes no FHIR resource")


def _open_store(data_url: str, state: Path) -> SqlStore:
    cfg = Settings(data=data_url, state=str(state))
    if not cfg.is_url:
        Path(cfg.data).mkdir(parents=True, exist_ok=True)
    store = SqlStore(cfg.database_url, Keyring.load_or_create(state), _no_indexer, clock=Clock())
    store.migrate()
    return store


@pytest.fixture
def store(data_url: str, tmp_path: Path) -> Iterator[SqlStore]:
    s = _open_store(data_url, tmp_path / "state")
    yield s
    s.close()


@pytest.fixture
def base(store: SqlStore) -> IdentityBase:
    return IdentityBase(store)


HELENE = IdentityRecord(
    matricule="279035121518989",
    oid=NIR,
    birth_name="LEFEVRE",
    given_names=("HELENE", "MARIE"),
    sex="F",
    birth_date="1979-03-05",
    birth_place="51215",
    history=("279035121599999", "279035121588888"),
)
PIERRE = IdentityRecord(
    matricule="180012A00100123",
    oid=NIR,
    birth_name="D'ARTAGNAN-MARTIN",
    given_names=("PIERRE",),
    sex="M",
    birth_date="1980-01",
    birth_place="2A004",
)
ANONYME = IdentityRecord(
    matricule="780011234567842",
    oid=NIA,
    birth_name="LEFEVRE",
    given_names=("JEAN",),
    sex="M",
    birth_date="1978",
    birth_place="",
)
HOMONYME = IdentityRecord(
    matricule="279039935000011",
    oid=NIR,
    birth_name="LEFEVRE",
    given_names=("HELENE",),
    sex="F",
    birth_date="1979-03-05",
    birth_place="99350",
)


def _generated(n: int, start: int = 0) -> Iterator[IdentityRecord]:
    for i in range(start, start + n):
        yield IdentityRecord(
            matricule=f"{1 + i % 2}{i:012d}{i % 97:02d}",
            oid=NIR,
            birth_name=f"NOM{i % 1000:03d}",
            given_names=(f"PRENOM{i % 50}",),
            sex="M" if i % 2 == 0 else "F",
            birth_date=f"{1930 + i % 90}-{1 + i % 12:02d}-{1 + i % 28:02d}",
            birth_place=f"{75001 + i % 20}",
            history=(f"9{i:012d}00",) if i % 10 == 0 else (),
        )


def test_load_then_search_by_traits_and_matricule(base: IdentityBase) -> None:
    seen: list[int] = []
    counts = base.load([HELENE, PIERRE, ANONYME, HOMONYME], progress=seen.append)
    assert counts == LoadCounts(created=4, updated=0, unchanged=0)
    assert seen == [4] and base.count() == 4
    assert base.by_traits("LEFEVRE", "1979-03-05", "F") == [HELENE, HOMONYME]
    assert base.by_traits("LEFEVRE", "1979-03-05", "M") == []
    assert base.by_traits("LEFEVRE", "1979-03", "F") == []
    assert base.by_traits("D'ARTAGNAN-MARTIN", "1980-01", "M") == [PIERRE]
    assert base.by_traits("LEFEVRE", "1978", "M") == [ANONYME]
    assert base.by_matricule(HELENE.matricule) == HELENE
    assert base.by_matricule("279035121599999") == HELENE  # INSHISTO
    assert base.by_matricule("279035121588888") == HELENE
    assert base.by_matricule(ANONYME.matricule) == ANONYME
    assert base.by_matricule("279035121500000") is None


def test_reload_is_idempotent_and_updates_are_counted(base: IdentityBase) -> None:
    records = [HELENE, PIERRE, ANONYME, HOMONYME]
    base.load(records)
    assert base.load(iter(records), batch=3) == LoadCounts(created=0, updated=0, unchanged=4)
    married = IdentityRecord(
        matricule=HELENE.matricule,
        oid=NIR,
        birth_name="LEFEVRE",
        given_names=("HELENE", "MARIE", "LOUISE"),
        sex="F",
        birth_date="1979-03-05",
        birth_place="51215",
        history=("279035121577777",),
    )
    assert base.load([*records[1:], married]) == LoadCounts(created=0, updated=1, unchanged=3)
    assert base.count() == 4
    assert base.by_matricule(HELENE.matricule) == married
    assert base.by_matricule("279035121577777") == married
    assert base.by_matricule("279035121599999") is None  # history replaced with the record
    moved = replace(PIERRE, birth_date="1980-01-15")
    assert base.load([moved]) == LoadCounts(created=0, updated=1, unchanged=0)
    assert base.by_traits("D'ARTAGNAN-MARTIN", "1980-01", "M") == []
    assert base.by_traits("D'ARTAGNAN-MARTIN", "1980-01-15", "M") == [moved]


def test_same_matricule_under_two_authorities_is_two_identities(base: IdentityBase) -> None:
    twin = replace(HELENE, oid=NIA, history=())
    assert base.load([HELENE, twin]) == LoadCounts(created=2, updated=0, unchanged=0)
    assert base.count() == 2
    assert base.by_traits("LEFEVRE", "1979-03-05", "F") == [HELENE, twin]  # sorted by oid


def test_repeats_within_one_batch_count_in_order(base: IdentityBase) -> None:
    renamed = replace(PIERRE, given_names=("PIERRE", "PAUL"))
    counts = base.load([PIERRE, PIERRE, renamed])
    assert counts == LoadCounts(created=1, updated=1, unchanged=1)
    assert base.count() == 1 and base.by_matricule(PIERRE.matricule) == renamed


def test_nothing_identifying_is_stored_in_clear(base: IdentityBase, store: SqlStore) -> None:
    base.load([HELENE, PIERRE, ANONYME])
    base.record_call("verify", "client-1", "00", HELENE.matricule, NIR, {"given": "HELENE"})
    secrets = [
        HELENE.matricule,
        *HELENE.history,
        PIERRE.matricule,
        ANONYME.matricule,
        "HELENE",
        "51215",
    ]
    with store.engine.connect() as conn:
        for table in (insref_identity, insref_history, insi_call):
            rows = conn.execute(select(table)).all()
            assert rows
            for row in rows:
                for value in row:
                    raw = bytes(value) if isinstance(value, bytes | memoryview) else str(value)
                    for secret in secrets:
                        needle: Any = secret.encode() if isinstance(raw, bytes) else secret
                        assert needle not in raw, (table.name, secret)
        wrapped = conn.execute(
            text("SELECT value FROM store_meta WHERE key = :k"), {"k": LOOKUP_KEY_META}
        ).scalar_one()
    assert lookup_key(store).hex() not in wrapped  # the lookup key itself is wrapped


def test_lookups_survive_a_data_key_rotation(
    base: IdentityBase, store: SqlStore, data_url: str, tmp_path: Path
) -> None:
    base.load([HELENE])
    before = lookup_key(store)
    (tmp_path / "state" / "keys" / "data-0002.key").write_bytes(b"k" * 32)
    rotated = _open_store(data_url, tmp_path / "state")
    try:
        assert rotated.keyring.current != store.keyring.current
        assert lookup_key(rotated) == before
        again = IdentityBase(rotated)
        assert again.by_matricule("279035121588888") == HELENE
        assert again.load([HELENE, PIERRE]) == LoadCounts(created=1, updated=0, unchanged=1)
        assert again.by_matricule(PIERRE.matricule) == PIERRE
    finally:
        rotated.close()


def test_record_call_and_calls_for(base: IdentityBase, store: SqlStore) -> None:
    first = base.record_call("search", "sub-1", "00", HELENE.matricule, NIR, {"sex": "F"})
    assert first.at == datetime(2026, 1, 1, 0, 0, 1, tzinfo=UTC)
    assert (first.operation, first.client, first.cr, first.oid) == ("search", "sub-1", "00", NIR)
    miss = base.record_call("search", "sub-1", "01", None, None, {})
    assert miss.matricule is None and miss.traits == {}
    other = base.record_call("verify", "sub-2", "00", PIERRE.matricule, NIR, {})
    second = base.record_call(
        "verify", "sub-2", "00", HELENE.matricule, NIR, {"birthName": "LEFEVRE", "given": ["A"]}
    )
    assert len({first.id, miss.id, other.id, second.id}) == 4
    assert base.calls_for(HELENE.matricule) == [second, first]
    assert base.calls_for(HELENE.matricule, since=second.at) == [second]
    assert base.calls_for(HELENE.matricule, since=second.at + timedelta(microseconds=1)) == []
    assert base.calls_for(PIERRE.matricule) == [other]
    assert base.calls_for(ANONYME.matricule) == []


def test_search_columns_are_indexed(base: IdentityBase, store: SqlStore) -> None:
    indexes = {
        ix["name"]: ix["column_names"]
        for ix in inspect(store.engine).get_indexes("insref_identity")
    }
    assert indexes["ix_insref_identity_traits"] == ["birth_name", "birth_date", "sex"]
    if store.dialect == "sqlite":
        with store.engine.connect() as conn:
            plan = conn.exec_driver_sql(
                "EXPLAIN QUERY PLAN SELECT payload FROM insref_identity "
                "WHERE birth_name = 'A' AND birth_date = '1990' AND sex = 'M'"
            ).all()
        assert "ix_insref_identity_traits" in " ".join(str(r) for r in plan)


def test_a_large_load_streams_in_batches(base: IdentityBase) -> None:
    pulled = 0
    at_progress: list[tuple[int, int]] = []

    def source() -> Iterator[IdentityRecord]:
        nonlocal pulled
        for rec in _generated(20_000):
            pulled += 1
            yield rec

    counts = base.load(source(), progress=lambda n: at_progress.append((n, pulled)))
    assert counts == LoadCounts(created=20_000, updated=0, unchanged=0)
    assert [n for n, _ in at_progress] == [5000] * 4
    assert at_progress[0][1] <= 5000  # never materialised: one batch pulled at a time
    assert base.count() == 20_000
    sample = next(_generated(1, start=12_340))
    assert base.by_matricule(sample.matricule) == sample
    assert base.by_matricule(sample.history[0]) == sample
    assert sample in base.by_traits(sample.birth_name, sample.birth_date, sample.sex)
    again = base.load(_generated(20_000), batch=7000)
    assert again == LoadCounts(created=0, updated=0, unchanged=20_000)


_letters = st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZ -'", min_size=1, max_size=30)
_matricule = st.from_regex(
    r"[12][0-9]{2}(0[1-9]|1[0-2])(2A|2B|[0-9]{2})[0-9]{6}[0-9]{2}", fullmatch=True
)
_date = st.from_regex(r"(19|20)[0-9]{2}(-(0[1-9]|1[0-2])(-(0[1-9]|[12][0-9]))?)?", fullmatch=True)


@st.composite
def _records(draw: st.DrawFn) -> list[IdentityRecord]:
    mats = draw(st.lists(_matricule, min_size=1, max_size=12, unique=True))
    actives, previous = mats[: (len(mats) + 1) // 2], mats[(len(mats) + 1) // 2 :]
    records = []
    for i, mat in enumerate(actives):
        records.append(
            IdentityRecord(
                matricule=mat,
                oid=draw(st.sampled_from([NIR, NIA])),
                birth_name=draw(_letters),
                given_names=tuple(draw(st.lists(_letters, min_size=1, max_size=3))),
                sex=draw(st.sampled_from(["M", "F"])),
                birth_date=draw(_date),
                birth_place=draw(st.sampled_from(["", "75056", "2A004", "99350"])),
                history=tuple(previous[i :: len(actives)]),
            )
        )
    return records


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(records=_records())
def test_records_round_trip(
    base: IdentityBase, store: SqlStore, records: list[IdentityRecord]
) -> None:
    with store.engine.begin() as conn:
        conn.execute(insref_history.delete())
        conn.execute(insref_identity.delete())
    assert base.load(records, batch=4).created == len(records)
    for rec in records:
        assert base.by_matricule(rec.matricule) == rec
        for old in rec.history:
            assert base.by_matricule(old) == rec
        assert rec in base.by_traits(rec.birth_name, rec.birth_date, rec.sex)
    assert base.load(reversed(records), batch=5).unchanged == len(records)
