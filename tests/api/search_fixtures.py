"""The resources behind tests/api/test_search_semantics.py, loaded once per module run.

Every resource carries the tag ``urn:maison:search-test|<run>`` (a fresh uuid per run) so the
search table never sees what other modules store on the shared session server. References are
written ``"@name"`` and become ``urn:uuid:`` fullUrls inside one transaction Bundle.

The expected sets in the table depend on these values: change them together.
"""

from __future__ import annotations

import copy
import uuid
from dataclasses import dataclass, field
from typing import Any

import httpx

TAG_SYSTEM = "urn:maison:search-test"
EXTRA_TAG_SYSTEM = "urn:maison:search-test:extra"
MRN = "urn:maison:search-test:mrn"
INS = "urn:oid:1.2.250.1.213.1.4.8"
V2_0203 = "http://terminology.hl7.org/CodeSystem/v2-0203"
LOINC = "http://loinc.org"
UCUM = "http://unitsofmeasure.org"
FR_PATIENT = "http://interopsante.org/fhir/StructureDefinition/FrPatient"
CONFIDENTIALITY = "http://terminology.hl7.org/CodeSystem/v3-Confidentiality"


def _glucose(text: str | None = None) -> dict[str, Any]:
    concept: dict[str, Any] = {
        "coding": [{"system": LOINC, "code": "2339-0", "display": "Glucose [Mass/volume] in Blood"}]
    }
    if text:
        concept["text"] = text
    return concept


def _qty(value: float, code: str) -> dict[str, Any]:
    return {"value": value, "unit": code, "system": UCUM, "code": code}


def _loinc(code: str) -> dict[str, Any]:
    return {"coding": [{"system": LOINC, "code": code}]}


def _obs(code: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"resourceType": "Observation", "status": "final", "code": code, **extra}


def _patient(family: str, given: str, **extra: Any) -> dict[str, Any]:
    return {"resourceType": "Patient", "name": [{"family": family, "given": [given]}], **extra}


def _device(url: str | None) -> dict[str, Any]:
    return {"resourceType": "Device", **({"url": url} if url else {})}


def _risk(probability: float) -> dict[str, Any]:
    return {
        "resourceType": "RiskAssessment",
        "status": "final",
        "subject": {"reference": "@pat_helene"},
        "prediction": [{"probabilityDecimal": probability}],
    }


# name -> resource, in transaction order. Summary of what the table relies on:
#   Patients   family       given    gender  birthDate   other
#   helene     Lefèvre      Hélène   female  1980-05-01  INS + MRN-001, org_cardio, active,
#                                                        Saint-Étienne, FrPatient, R, tag vip
#   heloise    Lefebvre     Héloïse  female  1992-11-30  MRN-002, org_neuro, inactive
#   marc       Martin       Marc     male    1975-03-15  identifier LOCAL-7 without system
#   anne       Martin       Anne     female  2001-01-01
#   jose       García       José     male    1960-08-08
#   zoe        Lefèvre      Zoé      other   2010-10-10
#   comma      Roux,Martin  Paul     -       -
#   late       Tardif       Léa      female  1985-06-15  created after the transaction
#   Observations  code              subject  effective                       value
#   obs_a         LOINC glucose*    helene   2024-03-15T10:30:00+01:00       5.4 mmol/L
#   obs_b         LOINC glucose     heloise  2024-07-01                      5.44 mmol/L
#   obs_c         LOINC glucose     marc     2025-01-01T00:00:00Z            5.46 mmol/L
#   obs_d         LOINC glucose     -        -                               5.34 mmol/L
#   obs_weight    LOINC 29463-7     marc     Period 2023-12-20..2024-01-10   72 kg
#   obs_hr        LOINC 8867-4      helene   Period 2024-03-15T10:00Z..open  80 /min
#   obs_local     2339-0 no system  jose     2022-02-02                      -
#   (* obs_a: code.text "Glycémie", encounter enc_1)
RESOURCES: dict[str, dict[str, Any]] = {
    "org_cardio": {"resourceType": "Organization", "name": "Cardiologie Hôpital Nord"},
    "org_neuro": {"resourceType": "Organization", "name": "Neurologie Clinique Sud"},
    "pat_helene": _patient(
        "Lefèvre",
        "Hélène",
        meta={
            "profile": [FR_PATIENT],
            "security": [{"system": CONFIDENTIALITY, "code": "R"}],
            "tag": [{"system": EXTRA_TAG_SYSTEM, "code": "vip"}],
        },
        identifier=[
            {
                # a national identifier of the test's own (an INS would need the full traits)
                "system": "urn:maison:search-test:ni",
                "value": "280057512345678",
                "type": {"coding": [{"system": V2_0203, "code": "NI"}], "text": "Numéro INS"},
            },
            {
                "system": MRN,
                "value": "MRN-001",
                "type": {"coding": [{"system": V2_0203, "code": "MR"}]},
            },
        ],
        active=True,
        gender="female",
        birthDate="1980-05-01",
        address=[{"city": "Saint-Étienne", "postalCode": "42000"}],
        managingOrganization={"reference": "@org_cardio"},
    ),
    "pat_heloise": _patient(
        "Lefebvre",
        "Héloïse",
        identifier=[
            {
                "system": MRN,
                "value": "MRN-002",
                "type": {"coding": [{"system": V2_0203, "code": "MR"}]},
            }
        ],
        active=False,
        gender="female",
        birthDate="1992-11-30",
        managingOrganization={"reference": "@org_neuro"},
    ),
    "pat_marc": _patient(
        "Martin", "Marc", identifier=[{"value": "LOCAL-7"}], gender="male", birthDate="1975-03-15"
    ),
    "pat_anne": _patient("Martin", "Anne", gender="female", birthDate="2001-01-01"),
    "pat_jose": _patient("García", "José", gender="male", birthDate="1960-08-08"),
    "pat_zoe": _patient("Lefèvre", "Zoé", gender="other", birthDate="2010-10-10"),
    "pat_comma": _patient("Roux,Martin", "Paul"),
    "enc_1": {
        "resourceType": "Encounter",
        "status": "finished",
        "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
        "subject": {"reference": "@pat_helene"},
        "period": {"start": "2024-03-15T09:00:00Z", "end": "2024-03-15T11:00:00Z"},
    },
    "obs_a": _obs(
        _glucose("Glycémie"),
        subject={"reference": "@pat_helene"},
        encounter={"reference": "@enc_1"},
        effectiveDateTime="2024-03-15T10:30:00+01:00",
        valueQuantity=_qty(5.4, "mmol/L"),
    ),
    "obs_b": _obs(
        _glucose(),
        subject={"reference": "@pat_heloise"},
        effectiveDateTime="2024-07-01",
        valueQuantity=_qty(5.44, "mmol/L"),
    ),
    "obs_c": _obs(
        _glucose(),
        subject={"reference": "@pat_marc"},
        effectiveDateTime="2025-01-01T00:00:00Z",
        valueQuantity=_qty(5.46, "mmol/L"),
    ),
    "obs_d": _obs(_glucose(), valueQuantity=_qty(5.34, "mmol/L")),
    "obs_weight": _obs(
        {"coding": [{"system": LOINC, "code": "29463-7", "display": "Body weight"}]},
        subject={"reference": "@pat_marc"},
        effectivePeriod={"start": "2023-12-20", "end": "2024-01-10"},
        valueQuantity=_qty(72, "kg"),
    ),
    "obs_hr": _obs(
        {"coding": [{"system": LOINC, "code": "8867-4", "display": "Heart rate"}]},
        subject={"reference": "@pat_helene"},
        effectivePeriod={"start": "2024-03-15T10:00:00Z"},
        valueQuantity=_qty(80, "/min"),
    ),
    "obs_local": _obs(
        {"coding": [{"code": "2339-0"}]},
        subject={"reference": "@pat_jose"},
        effectiveDateTime="2022-02-02",
    ),
    # blood pressure panels: components bind a code to its own value (composite search)
    "obs_bp_high": _obs(
        {"coding": [{"system": LOINC, "code": "85354-9", "display": "Blood pressure panel"}]},
        subject={"reference": "@pat_anne"},
        component=[
            {"code": _loinc("8480-6"), "valueQuantity": _qty(150, "mm[Hg]")},
            {"code": _loinc("8462-4"), "valueQuantity": _qty(95, "mm[Hg]")},
        ],
    ),
    "obs_bp_odd": _obs(
        {"coding": [{"system": LOINC, "code": "85354-9", "display": "Blood pressure panel"}]},
        subject={"reference": "@pat_anne"},
        component=[
            {"code": _loinc("8480-6"), "valueQuantity": _qty(110, "mm[Hg]")},
            {"code": _loinc("8462-4"), "valueQuantity": _qty(150, "mm[Hg]")},
        ],
    ),
    "ra_low": _risk(0.1),
    "ra_mid": _risk(0.25),
    "ra_high": _risk(0.84),
    "dev_a": _device("http://acme.org/devices/glucometer/v2"),
    "dev_b": _device("http://acme.org/devices/glucometer"),
    "dev_c": _device("http://acme.org/devices"),
    "dev_d": _device(None),
    "doc_1": {
        "resourceType": "DocumentReference",
        "status": "current",
        "subject": {"reference": "@pat_helene"},
        "content": [{"attachment": {"contentType": "text/plain", "title": "CR cardio"}}],
    },
    "doc_2": {
        "resourceType": "DocumentReference",
        "status": "current",
        "subject": {"reference": "@pat_heloise"},
        "content": [{"attachment": {"contentType": "text/plain", "title": "CR neuro"}}],
    },
    "doc_ins": {
        "resourceType": "DocumentReference",
        "status": "current",
        # a logical reference by identifier (an INS here would have to be a qualified one's)
        "subject": {
            "identifier": {"system": "urn:maison:search-test:ni", "value": "280057512345678"}
        },
        "content": [{"attachment": {"contentType": "text/plain", "title": "CR INS"}}],
    },
}

# Created by its own request after the transaction: a later meta.lastUpdated.
LATE = "pat_late"
LATE_RESOURCE = _patient("Tardif", "Léa", gender="female", birthDate="1985-06-15")


@dataclass
class Fixtures:
    """The loaded fixtures: symbolic names <-> server ids, and per-run values for queries."""

    run: str
    base: str
    ids: dict[str, str] = field(default_factory=dict)  # name -> server id
    types: dict[str, str] = field(default_factory=dict)  # name -> resource type
    t1: str = ""  # meta.lastUpdated of the transaction
    t2: str = ""  # meta.lastUpdated of pat_late

    @property
    def tag(self) -> str:
        return f"{TAG_SYSTEM}|{self.run}"

    def name_of(self, rtype: str, rid: str) -> str:
        """The symbolic name of a server resource; foreign ones show as Type/id."""
        for name, sid in self.ids.items():
            if sid == rid and self.types[name] == rtype:
                return name
        return f"{rtype}/{rid}"

    def names(self, rtype: str) -> set[str]:
        return {n for n, t in self.types.items() if t == rtype}


def _tagged(resource: dict[str, Any], run: str, urls: dict[str, str]) -> dict[str, Any]:
    res = copy.deepcopy(resource)
    meta = res.setdefault("meta", {})
    meta["tag"] = [*meta.get("tag", []), {"system": TAG_SYSTEM, "code": run}]

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            ref = node.get("reference")
            if isinstance(ref, str) and ref.startswith("@"):
                node["reference"] = urls[ref[1:]]
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    walk(res)
    return res


def load(client: httpx.Client, base: str) -> Fixtures:
    """POST the fixtures (one transaction, then pat_late) and map names to server ids."""
    run = uuid.uuid4().hex
    urls = {name: f"urn:uuid:{uuid.uuid4()}" for name in RESOURCES}
    entries = [
        {
            "fullUrl": urls[name],
            "resource": _tagged(res, run, urls),
            "request": {"method": "POST", "url": res["resourceType"]},
        }
        for name, res in RESOURCES.items()
    ]
    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": entries}
    r = client.post("/", json=bundle)
    assert r.status_code == 200, r.text
    fx = Fixtures(run=run, base=base)
    for name, entry in zip(RESOURCES, r.json()["entry"], strict=True):
        created = entry["resource"]
        fx.ids[name] = created["id"]
        fx.types[name] = created["resourceType"]
        fx.t1 = created["meta"]["lastUpdated"]
    r = client.post("/Patient", json=_tagged(LATE_RESOURCE, run, urls))
    assert r.status_code == 201, r.text
    fx.ids[LATE] = r.json()["id"]
    fx.types[LATE] = "Patient"
    fx.t2 = r.json()["meta"]["lastUpdated"]
    assert fx.t2 > fx.t1, (fx.t1, fx.t2)
    return fx
