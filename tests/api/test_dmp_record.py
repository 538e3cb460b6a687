"""The DMP of a patient over HTTP: opening, oppositions, médecin traitant DMP, closure, the
TD0.2 check ``Patient/$dmp-access``, the check a feed runs, and ``maison dmp purge`` of the
closed DMPs past their retention period — with the refusals and their reasons.

https://interop.esante.gouv.fr/ig/fhir/pdsm4dmp/ (TD0.2), https://hl7.org/fhir/R4/consent.html
"""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from dmp_documents import dmp_server, pdf, provide_bundle, qualified_patient
from maison.api.dmp_operations import feeding_check
from maison.api.settings import Settings
from maison.fhir.errors import FhirError
from maison.security.issuer import LocalIssuer
from maison.security.professional import PROFESSIONAL_CLAIM
from maison.services.dmp import record
from maison.services.ins.matricule import compute_key
from maison.store.blobs import open_blob_store
from servers import MAISON, Server
from support import open_sql_store

DOCTOR_IDNPS = "810000000123"


@pytest.fixture(scope="module")
def dmp(backend: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    srv = dmp_server(backend, tmp_path_factory.mktemp("dmp-record"))
    yield srv
    srv.stop()


@pytest.fixture
def patient(dmp: Server) -> tuple[str, str]:
    return qualified_patient(dmp)


def _op(c: httpx.Client, ref: str, code: str, **params: Any) -> httpx.Response:
    """POST [ref]/$code with the keyword arguments as Parameters (value[x] by Python type)."""
    parameters = []
    for name, value in params.items():
        name = name.replace("_", "-")
        if isinstance(value, bool):
            parameters.append({"name": name, "valueBoolean": value})
        elif isinstance(value, dict):
            parameters.append({"name": name, "valueReference": value})
        elif name in ("date",):
            parameters.append({"name": name, "valueDateTime": value})
        elif name in ("kind", "method"):
            parameters.append({"name": name, "valueCode": value})
        else:
            parameters.append({"name": name, "valueString": value})
    return c.post(f"/{ref}/${code}", json={"resourceType": "Parameters", "parameter": parameters})


def _out(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 200, response.text
    out: dict[str, Any] = {}
    for p in response.json()["parameter"]:
        out[p["name"]] = next(v for k, v in p.items() if k.startswith("value"))
    return out


def _access(c: httpx.Client, **query: str) -> httpx.Response:
    return c.get("/Patient/$dmp-access", params=query)


def _outcome(response: httpx.Response, status: int) -> str:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["resourceType"] == "OperationOutcome"
    return " ".join(i.get("diagnostics", "") for i in body["issue"])


def _professional_token(srv: Server, idnps: str, scopes: str = "user/*.cruds") -> str:
    """A token of the server's local issuer carrying a professional context (IDNPS)."""
    info = orjson.loads((srv.state / "server.json").read_bytes())
    issuer = LocalIssuer.load_or_create(srv.state / "keys", info["issuer"])
    claims = {PROFESSIONAL_CLAIM: {"idnps": idnps, "activity": 0, "structure": {}}}
    return issuer.mint(f"pro-{idnps}", scopes.split(), info["audience"], 600, claims)


def _feeding(srv: Server, defs: Any) -> Any:
    """The feed check, as the document sharing will run it, on the server's store."""
    store = open_sql_store(srv.data, srv.state, defs, clock=False)
    return store, feeding_check(store.read)


def _purge(srv: Server, *args: str) -> str:
    command = [*MAISON[:-1], "maison.cli.dmp", "purge", *args]
    out = subprocess.run(
        [*command, "--data", srv.data, "--state", str(srv.state)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    return out.stdout


# --- opening, feeding, oppositions --------------------------------------------------------
def test_opened_dmp_is_fed_and_accessible(dmp: Server, patient: tuple[str, str]) -> None:
    ref, ins = patient
    with dmp.client() as c:
        never = _out(_access(c, identifier=f"urn:oid:1.2.250.1.213.1.4.10|{ins}"))
        assert never["exists"] is False and never["authorized"] is False
        assert "never opened" in never["reason"]
        opened = _out(_op(c, ref, "dmp-open", method="oral"))
        assert opened["open"] is True and opened["state"] == "open"
        consent = c.get(f"/{opened['consent']['reference']}").json()
        assert consent["status"] == "active" and consent["patient"] == {"reference": ref}
        assert consent["provision"]["type"] == "permit"
        assert consent["provision"]["action"][0]["coding"][0]["code"] == "collect"
        assert consent["performer"] == [{"reference": ref}]
        assert c.get(f"/{ref}").json()["active"] is True
        again = _out(_op(c, ref, "dmp-open"))  # already open: nothing new
        assert "consent" not in again and again["opened-at"] == opened["opened-at"]
        fed = c.post("/", json=provide_bundle(ref, [pdf("CR")]))
        assert fed.status_code == 200, fed.text
        access = _out(_access(c, patient=ref))
        assert access["exists"] is True and access["open"] is True
        assert access["authorized"] is True and access["feeding-opposed"] is False


def test_opposition_to_feeding_is_recorded_and_lifted(
    dmp: Server, patient: tuple[str, str], defs: Any
) -> None:
    ref, _ins = patient
    store, check = _feeding(dmp, defs)
    try:
        with dmp.client() as c:
            _out(_op(c, ref, "dmp-open"))
            assert check(ref) == ref  # open: the feed goes on, on the Patient it names
            opposed = _out(
                _op(c, ref, "dmp-opposition", kind="feeding", opposed=True, method="written")
            )
            assert opposed["feeding-opposed"] is True and opposed["open"] is True
            assert opposed["feeding-opposed-since"][:10] == date.today().isoformat()
            consent = c.get(f"/{opposed['consent']['reference']}").json()
            assert consent["provision"]["type"] == "deny"
            assert consent["policyRule"]["coding"][0]["code"] == "OPTOUT"
            with pytest.raises(FhirError) as refused:
                check(ref)
            assert "opposed the feeding of his DMP" in refused.value.message
            assert refused.value.category.value == "unprocessable"
            fed = c.post("/", json=provide_bundle(ref))  # the feed itself, refused
            assert fed.status_code == 422 and "opposed the feeding of his DMP" in fed.text
            # consultation is not affected by an opposition to feeding
            assert _out(_access(c, patient=ref))["authorized"] is True
            lifted = _out(_op(c, ref, "dmp-opposition", kind="feeding", opposed=False))
            assert lifted["feeding-opposed"] is False
            check(ref)
            old = c.get(f"/{opposed['consent']['reference']}").json()
            assert old["status"] == "inactive"  # history of decisions kept
            active = c.get("/Consent", params={"patient": ref, "status": "active"}).json()
            kinds = sorted(
                cat["coding"][0]["code"]
                for e in active.get("entry", [])
                for cat in e["resource"]["category"]
                if cat["coding"][0]["system"] == record.DECISION_SYSTEM
            )
            assert kinds == ["dmp-feeding", "dmp-opening"]
    finally:
        store.close()


def test_closed_dmp_says_closed_and_refuses_feeds(
    dmp: Server, patient: tuple[str, str], defs: Any
) -> None:
    ref, ins = patient
    store, check = _feeding(dmp, defs)
    try:
        with dmp.client() as c:
            _out(_op(c, ref, "dmp-open"))
            closed = _out(_op(c, ref, "dmp-close", reason="demande du patient"))
            assert closed["state"] == "closed" and closed["open"] is False
            today = datetime.now(UTC).date()
            assert closed["purge-after"] == today.replace(year=today.year + 10).isoformat()
            patient_now = c.get(f"/{ref}").json()
            assert patient_now["active"] is False
            access = _out(_access(c, identifier=f"urn:oid:1.2.250.1.213.1.4.10|{ins}"))
            assert access["exists"] is True and access["open"] is False
            assert access["authorized"] is False and "closed since" in access["reason"]
            with pytest.raises(FhirError) as refused:
                check(f"Patient?identifier=urn:oid:1.2.250.1.213.1.4.10|{ins}")
            assert "closed since" in refused.value.message
            fed = c.post("/", json=provide_bundle(ref))
            assert fed.status_code == 422 and "closed since" in fed.text
            twice = _op(c, ref, "dmp-close")
            assert "closed since" in _outcome(twice, 422)
            no_opposition = _op(c, ref, "dmp-opposition", kind="consultation", opposed=True)
            assert "closed" in _outcome(no_opposition, 422)
            reopened = _out(_op(c, ref, "dmp-open"))
            assert reopened["open"] is True and "closed-at" not in reopened
    finally:
        store.close()


# --- médecin traitant DMP and the opposition to consultation ------------------------------
def test_medecin_traitant_is_shown_and_recognised(dmp: Server, patient: tuple[str, str]) -> None:
    ref, _ins = patient
    idnps = f"8100{uuid.uuid4().int % 10**8:08d}"
    doctor = {
        "resourceType": "Practitioner",
        "identifier": [{"system": record.IDNPS, "value": idnps}],
        "name": [{"family": "TRAITANT", "given": ["Marie"], "prefix": ["Dr"]}],
    }
    with dmp.client() as c:
        made = c.post("/Practitioner", json=doctor)
        assert made.status_code == 201, made.text
        doc_ref = f"Practitioner/{made.json()['id']}"
        _out(_op(c, ref, "dmp-open"))
        designated = _out(_op(c, ref, "dmp-medecin-traitant", practitioner={"reference": doc_ref}))
        assert designated["medecin-traitant"] == {
            "reference": doc_ref,
            "identifier": {"system": record.IDNPS, "value": idnps},
            "display": "Dr Marie TRAITANT",
        }
    with dmp.client(_professional_token(dmp, idnps)) as him:
        mine = _out(_access(him, patient=ref))
        assert mine["medecin-traitant-is-caller"] is True and mine["authorized"] is True
        assert "you are the patient's médecin traitant DMP" in mine["reason"]
    with dmp.client(_professional_token(dmp, "810000000999")) as other:
        theirs = _out(_access(other, patient=ref))
        assert theirs["medecin-traitant-is-caller"] is False
        # no relationship at all: the access rules answer for him
        assert theirs["authorized"] is False and theirs["rule"] == "dmp-access:no-relationship"
    with dmp.client() as c:
        _out(_op(c, ref, "dmp-opposition", kind="consultation", opposed=True))
    with dmp.client(_professional_token(dmp, idnps)) as him:
        blocked = _out(_access(him, patient=ref))
        assert blocked["authorized"] is False and blocked["consultation-opposed"] is True
        assert "opposed the consultation" in blocked["reason"]
        assert blocked["rule"] == "dmp-access:opposition"
        assert "bris de glace" in blocked["reason"]
    with dmp.client() as c:
        cleared = _out(_op(c, ref, "dmp-medecin-traitant", clear=True))
        assert "medecin-traitant" not in cleared


# --- decisions for another patient -----------------------------------------------------------
def test_decisions_for_another_patient_are_refused(dmp: Server) -> None:
    mine, _ = qualified_patient(dmp)
    theirs, _ = qualified_patient(dmp)
    my_id = mine.split("/")[1]
    with dmp.client(dmp.mint("patient/*.*", patient=my_id)) as app:
        assert _out(_op(app, mine, "dmp-open"))["open"] is True
        other = _op(app, theirs, "dmp-opposition", kind="consultation", opposed=True)
        assert f"may not act on {theirs}'s DMP" in _outcome(other, 403)
        peek = _access(app, patient=theirs)
        assert "may not act" in _outcome(peek, 403)
    with dmp.client() as c:
        rep = c.post(
            "/RelatedPerson",
            json={"resourceType": "RelatedPerson", "patient": {"reference": theirs}},
        )
        assert rep.status_code == 201, rep.text
        rep_ref = {"reference": f"RelatedPerson/{rep.json()['id']}"}
        wrong = _op(c, mine, "dmp-opposition", kind="feeding", opposed=True, performer=rep_ref)
        assert f"represents {theirs}" in _outcome(wrong, 422)
        stranger = _op(c, mine, "dmp-open", performer={"reference": theirs})
        assert "made by the patient or his legal representative" in _outcome(stranger, 422)
        assert c.get("/Consent", params={"patient": theirs}).json().get("total", 0) == 0


# --- bad input -------------------------------------------------------------------------------
def _unknown_ins() -> str:
    n = uuid.uuid4().int
    body = f"1850575{101 + n % 800:03d}{1 + (n // 800) % 998:03d}"
    return body + compute_key(body)


@pytest.mark.parametrize(
    ("case", "status", "reason"),
    [
        ("unknown-patient", 404, "is not known"),
        ("unknown-ins", 404, "no patient of this platform carries the INS"),
        ("short-ins", 400, "a matricule INS has 15 characters"),
        ("not-an-ins-system", 400, "is not an INS"),
        ("neither", 400, "one of them"),
        ("unknown-kind", 400, "unknown opposition kind 'reading'"),
        ("no-opposed", 400, "parameter 'opposed' is required"),
        ("future-date", 400, "is in the future"),
        ("bad-date", 400, "is not a FHIR date"),
        ("bad-method", 400, "is not one of electronic, oral, written"),
        ("doctor-and-clear", 400, "not both and not neither"),
        ("doctor-unknown", 422, "is not known"),
        ("doctor-not-a-practitioner", 400, "must reference a Practitioner"),
        ("get-a-write", 405, "changes data"),
        ("close-never-opened", 422, "never opened"),
        ("close-before-opening", 400, "is before the opening"),
    ],
)
def test_bad_input_is_refused_with_its_reason(
    dmp: Server, patient: tuple[str, str], case: str, status: int, reason: str
) -> None:
    ref, _ins = patient
    with dmp.client() as c:
        if case in ("close-before-opening",):
            _out(_op(c, ref, "dmp-open", date="2020-01-01"))
        response = {
            "unknown-patient": lambda: _op(c, "Patient/nope", "dmp-open"),
            "unknown-ins": lambda: _access(
                c, identifier=f"urn:oid:1.2.250.1.213.1.4.10|{_unknown_ins()}"
            ),
            "short-ins": lambda: _access(c, identifier="urn:oid:1.2.250.1.213.1.4.8|1234"),
            "not-an-ins-system": lambda: _access(c, identifier="urn:oid:1.2.3|123"),
            "neither": lambda: _access(c),
            "unknown-kind": lambda: _op(c, ref, "dmp-opposition", kind="reading", opposed=True),
            "no-opposed": lambda: _op(c, ref, "dmp-opposition", kind="feeding"),
            "future-date": lambda: _op(c, ref, "dmp-open", date="2999-01-01"),
            "bad-date": lambda: _op(c, ref, "dmp-open", date="yesterday"),
            "bad-method": lambda: _op(c, ref, "dmp-open", method="telepathy"),
            "doctor-and-clear": lambda: _op(
                c,
                ref,
                "dmp-medecin-traitant",
                practitioner={"reference": "Practitioner/x"},
                clear=True,
            ),
            "doctor-unknown": lambda: _op(
                c, ref, "dmp-medecin-traitant", practitioner={"reference": "Practitioner/nope"}
            ),
            "doctor-not-a-practitioner": lambda: _op(
                c, ref, "dmp-medecin-traitant", practitioner={"reference": ref}
            ),
            "get-a-write": lambda: c.get(f"/{ref}/$dmp-open"),
            "close-never-opened": lambda: _op(c, ref, "dmp-close"),
            "close-before-opening": lambda: _op(c, ref, "dmp-close", date="2019-06-01"),
        }[case]()
        assert reason in _outcome(response, status)
        if case != "close-before-opening":
            assert c.get("/Consent", params={"patient": ref}).json().get("total", 0) == 0


def test_the_operations_are_declared(dmp: Server) -> None:
    with dmp.client() as c:
        meta = c.get("/metadata").json()
        patient = next(r for r in meta["rest"][0]["resource"] if r["type"] == "Patient")
        names = {o["name"] for o in patient.get("operation", [])}
        assert {
            "dmp-open",
            "dmp-close",
            "dmp-opposition",
            "dmp-medecin-traitant",
            "dmp-access",
        } <= names
        definition = c.get("/OperationDefinition/Patient-dmp-access").json()
        assert definition["code"] == "dmp-access" and definition["affectsState"] is False


# --- the purge -------------------------------------------------------------------------------
def _blob_ids(c: httpx.Client, ref: str) -> list[str]:
    found = c.get("/DocumentReference", params={"patient": ref, "status": "current"}).json()
    return [
        e["resource"]["content"][0]["attachment"]["url"].split("/")[1]
        for e in found.get("entry", [])
    ]


def test_purge_removes_the_documents_of_dmps_closed_past_their_retention(dmp: Server) -> None:
    old, _ = qualified_patient(dmp)  # closed in 2015: past its 10 years by 2028
    recent, _ = qualified_patient(dmp)  # closed today: kept in 2028
    today = datetime.now(UTC).date()
    with dmp.client() as c:
        _out(_op(c, old, "dmp-open", date="2014-01-01"))
        _out(_op(c, recent, "dmp-open"))
        for ref in (old, recent):
            fed = c.post("/", json=provide_bundle(ref, [pdf("CR 1"), pdf("CR 2")]))
            assert fed.status_code == 200, fed.text
        old_docs = c.get("/DocumentReference", params={"patient": old}).json()["entry"]
        old_doc = old_docs[0]["resource"]["id"]
        old_blobs, recent_blobs = _blob_ids(c, old), _blob_ids(c, recent)
        assert len(old_blobs) == 2 and len(recent_blobs) == 2
        _out(_op(c, old, "dmp-close", date="2015-06-01"))
        _out(_op(c, recent, "dmp-close"))
    settings = Settings(data=dmp.data, state=str(dmp.state))
    blobs = open_blob_store(settings.blob_dir, settings.state_dir / "keys")
    in_two_years = today.replace(year=today.year + 2).isoformat()

    dry = _purge(dmp, "--dry-run", "--now", in_two_years)
    assert "would purge 1 DMP(s): 2 document(s), 1 list(s), 2 binaries" in dry
    assert all(blobs.exists(b) for b in old_blobs)

    done = _purge(dmp, "--now", in_two_years)
    assert "purged 1 DMP(s): 2 document(s), 1 list(s), 2 binaries" in done
    assert "2 content blob(s) deleted" in done
    with dmp.client() as c:
        assert c.get("/DocumentReference", params={"patient": old}).json().get("total", 0) == 0
        assert c.get(f"/DocumentReference/{old_doc}").status_code == 404
        assert c.get(f"/DocumentReference/{old_doc}/_history").status_code in (404, 200)
        history = c.get(f"/DocumentReference/{old_doc}/_history").json()
        assert not history.get("entry")
        assert c.get(f"/DocumentReference/{old_doc}/_history/1").status_code == 404
        assert all(c.get(f"/Binary/{b}").status_code == 404 for b in old_blobs)
        assert c.get("/List", params={"patient": old}).json().get("total", 0) == 0
        # the patient and his decisions stay; the recent DMP is untouched
        assert c.get(f"/{old}").status_code == 200
        assert c.get("/Consent", params={"patient": old}).json()["total"] >= 1
        assert len(_blob_ids(c, recent)) == 2
    assert not any(blobs.exists(b) for b in old_blobs)
    assert all(blobs.exists(b) for b in recent_blobs)

    assert "nothing to purge" in _purge(dmp, "--now", in_two_years)  # idempotent
    later = today.replace(year=today.year + 11).isoformat()
    assert "2 document(s)" in _purge(dmp, "--now", later)
    assert not any(blobs.exists(b) for b in recent_blobs)


def test_purge_refuses_a_bad_date(dmp: Server, tmp_path: Path) -> None:
    out = subprocess.run(
        [*MAISON[:-1], "maison.cli.dmp", "purge", "--now", "soon", "--data", dmp.data,
         "--state", str(dmp.state)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert out.returncode == 2 and "--now must be a date" in out.stderr


@pytest.mark.parametrize(
    "name", ["dmp-open", "dmp-close", "dmp-opposition", "dmp-medecin-traitant", "dmp-access"]
)
def test_the_operation_definitions_are_valid(name: str, defs: Any) -> None:
    from maison.api.operations import load_definition
    from maison.fhir.validation import Validator

    opdef = load_definition(f"Patient-{name}")
    errors = [i for i in Validator(defs).validate(opdef) if i.severity in ("error", "fatal")]
    assert errors == []
    assert opdef["code"] == name and opdef["resource"] == ["Patient"]
    assert opdef["url"] == f"https://maison.example.org/fhir/OperationDefinition/{name}"
    assert all(p.get("documentation") and p.get("type") for p in opdef["parameter"])
    outputs = {p["name"] for p in opdef["parameter"] if p["use"] == "out"}
    assert {"exists", "open", "state", "feeding-opposed", "consultation-opposed"} <= outputs
