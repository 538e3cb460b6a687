"""Deterministic synthetic French patients as FHIR R4 JSON (test data only, no network).

Every patient carries an INS-NIR *test* identifier (``urn:oid:1.2.250.1.213.1.4.10``, FR Core slice
``INS-NIR-TEST``) whose 15-character matricule is a structurally valid NIR with a correct key
(computed by python-stdnum), and every resource is labelled ``HTEST`` (test health data) in
``meta.security``. Names, places and clinical values are plausible but random.

https://hl7.org/fhir/R4/bundle.html#transaction
https://hl7.fr/ig/fhir/core/StructureDefinition-fr-core-patient-ins.html
"""

from __future__ import annotations

import base64
import hashlib
import random
import unicodedata
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from stdnum.fr import nir as stdnum_nir

Resource = dict[str, Any]

INS_NIR_TEST_SYSTEM = "urn:oid:1.2.250.1.213.1.4.10"
IPP_SYSTEM = "https://maison.example.org/fhir/sid/ipp"
NDA_SYSTEM = "https://maison.example.org/fhir/sid/nda"

FR_CORE_V2_0203 = "https://hl7.fr/ig/fhir/core/CodeSystem/fr-core-cs-v2-0203"
V2_0203 = "http://terminology.hl7.org/CodeSystem/v2-0203"
IDENTITY_RELIABILITY = (
    "https://hl7.fr/ig/fhir/core/StructureDefinition/fr-core-identity-reliability"
)
IDENTITY_STATUS_CS = "https://hl7.fr/ig/fhir/core/CodeSystem/fr-core-cs-identity-status"
METHOD_COLLECTION_CS = "https://hl7.fr/ig/fhir/core/CodeSystem/fr-core-cs-method-collection"
VALIDATION_MODE_CS = "https://hl7.fr/ig/fhir/core/CodeSystem/fr-core-cs-mode-validation-identity"
BIRTH_PLACE = "http://hl7.org/fhir/StructureDefinition/patient-birthPlace"
INSEE_CODE = "https://hl7.fr/ig/fhir/core/StructureDefinition/fr-core-address-insee-code"
COMMUNE_CS = "https://mos.esante.gouv.fr/NOS/TRE_R13-CommuneOM/FHIR/TRE-R13-CommuneOM"
COUNTRY_CS = "https://mos.esante.gouv.fr/NOS/TRE_R20-Pays/FHIR/TRE-R20-Pays"
BIRTH_LIST_GIVEN_NAME = (
    "https://hl7.fr/ig/fhir/core/StructureDefinition/fr-core-patient-birth-list-given-name"
)
CLASS_DOCUMENT_CS = (
    "https://mos.esante.gouv.fr/NOS/TRE_A03-ClasseDocument/FHIR/TRE-A03-ClasseDocument"
)
PRACTICE_SETTING_CS = (
    "https://mos.esante.gouv.fr/NOS/TRE_A01-CadreExercice/FHIR/TRE-A01-CadreExercice"
)
LOINC = "http://loinc.org"
SNOMED = "http://snomed.info/sct"
ICD10 = "http://hl7.org/fhir/sid/icd-10"
UCUM = "http://unitsofmeasure.org"
ACT_CODE = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
OBS_CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"

TEST_DATA_LABEL = {
    "system": "http://terminology.hl7.org/CodeSystem/v3-ActReason",
    "code": "HTEST",
    "display": "test health data",
}

#: Clinical dates are drawn before this fixed day, so the output never depends on the clock.
REFERENCE_DAY = date(2025, 6, 30)

BUNDLE_TYPES = ("transaction", "collection")

# fmt: off
FEMALE_GIVEN = (
    "Hélène", "Françoise", "Noëlle", "Amélie", "Chloé", "Léa", "Élodie", "Inès", "Maëlle",
    "Camille", "Anaïs", "Zoé", "Cécile", "Agnès", "Bérénice", "Margaux", "Océane", "Solène",
    "Geneviève", "Thérèse", "Joséphine", "Renée", "Aurélie", "Mélanie", "Marie", "Claire",
    "Sophie", "Juliette", "Manon", "Louise",
)
MALE_GIVEN = (
    "Noël", "François", "Jérôme", "Stéphane", "Benoît", "Gaël", "Loïc", "Hervé", "Frédéric",
    "Sébastien", "Thierry", "René", "André", "Clément", "Mathéo", "Raphaël", "Théo", "Émile",
    "Joël", "Jean-Baptiste", "Grégoire", "Valentin", "Cédric", "Aurélien", "Pierre", "Louis",
    "Nicolas", "Julien", "Antoine", "Hugo",
)
FAMILY_NAMES = (
    "Lefèvre", "Béranger", "Dupré", "Gauthier", "Mercier", "Lemaître", "Hébert", "Fournier",
    "Rousseau", "Chevalier", "Bénard", "Faure", "Girard", "Carré", "Delacroix", "Ménard",
    "Lévêque", "Thévenin", "Géraud", "Marchand", "Aubé", "Le Goff", "Le Bihan", "Martin",
    "Bernard", "Dubois", "Moreau", "Laurent", "Garnier", "Rivière", "Pelletier", "Noël",
    "Barbier", "Crémieux", "Després", "Bourdieu", "Leroy", "Dumas", "Roussel", "D'Aubigné",
)
STREETS = (
    "rue Victor Hugo", "avenue Jean Jaurès", "boulevard Gambetta", "place de la République",
    "rue de la Paix", "chemin des Écoliers", "allée des Tilleuls", "impasse du Moulin",
    "rue Émile Zola", "quai des Célestins", "rue Pasteur", "avenue du Général Leclerc",
    "rue des Lilas", "route de Bretagne", "rue de l'Église", "cours Lafayette",
)
# fmt: on


@dataclass(frozen=True)
class _City:
    name: str
    cog: str  # code officiel géographique INSEE of the commune
    postal: str
    arrondissements: int = 0  # Paris, Lyon, Marseille: postal and COG per arrondissement
    arr_cog_base: int = 0


CITIES = (
    _City("Paris", "75056", "75000", 20, 75100),
    _City("Lyon", "69123", "69000", 9, 69380),
    _City("Marseille", "13055", "13000", 16, 13200),
    _City("Toulouse", "31555", "31000"),
    _City("Nice", "06088", "06000"),
    _City("Nantes", "44109", "44000"),
    _City("Strasbourg", "67482", "67000"),
    _City("Montpellier", "34172", "34000"),
    _City("Bordeaux", "33063", "33000"),
    _City("Lille", "59350", "59000"),
    _City("Rennes", "35238", "35000"),
    _City("Reims", "51454", "51100"),
    _City("Orléans", "45234", "45000"),
    _City("Brest", "29019", "29200"),
    _City("Grenoble", "38185", "38000"),
    _City("Dijon", "21231", "21000"),
    _City("Limoges", "87085", "87000"),
    _City("Clermont-Ferrand", "63113", "63000"),
    _City("Besançon", "25056", "25000"),
    _City("Saint-Étienne", "42218", "42000"),
    _City("Le Havre", "76351", "76600"),
    _City("Nîmes", "30189", "30000"),
    _City("Ajaccio", "2A004", "20000"),
    _City("Bastia", "2B033", "20200"),
    _City("Fort-de-France", "97209", "97200"),
    _City("Ambléon", "01006", "01300"),
    _City("Domrémy-la-Pucelle", "88154", "88630"),
)
#: INSEE country codes (99xxx) used in the NIR of people born abroad.
COUNTRIES_ABROAD = (
    ("99350", "MA", "Casablanca"),
    ("99352", "DZ", "Alger"),
    ("99351", "TN", "Tunis"),
    ("99131", "BE", "Bruxelles"),
    ("99139", "PT", "Porto"),
    ("99127", "IT", "Turin"),
    ("99109", "DE", "Fribourg-en-Brisgau"),
)

# (key, snomed, snomed display, CIM-10, French text)
CONDITIONS = (
    ("hta", "59621000", "Essential hypertension", "I10", "Hypertension essentielle"),
    ("dt2", "44054006", "Diabetes mellitus type 2", "E11", "Diabète sucré de type 2"),
    ("asthma", "195967001", "Asthma", "J45.9", "Asthme, sans précision"),
    ("chol", "13644009", "Hypercholesterolemia", "E78.0", "Hypercholestérolémie essentielle"),
    ("dep", "35489007", "Depressive disorder", "F32.9", "Épisode dépressif, sans précision"),
    ("gon", "239873007", "Osteoarthritis of knee", "M17.9", "Gonarthrose, sans précision"),
    ("hypot", "40930008", "Hypothyroidism", "E03.9", "Hypothyroïdie, sans précision"),
    ("lomb", "279039007", "Low back pain", "M54.5", "Lombalgie basse"),
    ("fa", "49436004", "Atrial fibrillation", "I48", "Fibrillation et flutter auriculaires"),
    (
        "bpco",
        "13645005",
        "Chronic obstructive lung disease",
        "J44.9",
        "Maladie pulmonaire obstructive chronique, sans précision",
    ),
    ("migr", "37796009", "Migraine", "G43.9", "Migraine, sans précision"),
)
# (class code, class display, snomed type, snomed display, French text, hours min, hours max)
ENCOUNTER_KINDS = (
    ("AMB", "ambulatory", "11429006", "Consultation", "Consultation de médecine générale", 0, 1),
    ("AMB", "ambulatory", "11429006", "Consultation", "Consultation de spécialiste", 0, 1),
    (
        "VR",
        "virtual",
        "448337001",
        "Telemedicine consultation with patient",
        "Téléconsultation",
        0,
        1,
    ),
    ("EMER", "emergency", "50849002", "Emergency room admission", "Passage aux urgences", 2, 8),
    (
        "IMP",
        "inpatient encounter",
        "32485007",
        "Hospital admission",
        "Hospitalisation complète",
        24,
        240,
    ),
)
# (LOINC type, French display, TRE_A03 class code, class display, title)
DOCUMENT_KINDS = (
    (
        "11488-4",
        "CR ou fiche de consultation ou de visite",
        "10",
        "Compte rendu",
        "Compte rendu de consultation",
    ),
    ("11502-2", "CR d'examens biologiques", "10", "Compte rendu", "Résultats de biologie"),
    ("34133-9", "Synthèse d'épisode de soins", "11", "Synthèse", "Synthèse d'épisode de soins"),
    ("60591-5", "Synthèse du dossier médical", "11", "Synthèse", "Volet de synthèse médicale"),
    ("57833-6", "Prescription de produits de santé", "42", "Prescription", "Ordonnance"),
)


def make_nir(sex: int, birth: date, place_cog: str, order: int) -> str:
    """A 15-character NIR (sex, YY, MM, birthplace COG, order, key by python-stdnum).

    https://www.insee.fr/fr/metadonnees/definition/c1409 (structure; key per stdnum.fr.nir)
    """
    if sex not in (1, 2):
        raise ValueError(f"NIR sex digit must be 1 or 2, not {sex}")
    if not 1 <= order <= 999:
        raise ValueError(f"NIR order number must be in 1..999, not {order}")
    if len(place_cog) != 5:
        raise ValueError(f"birthplace code must have 5 characters, not {place_cog!r}")
    place = place_cog
    if place[:2] in ("2A", "2B") and birth.year < 1976:
        place = "20" + place[2:]  # Corsica was a single département 20 before 1976
    first13 = f"{sex}{birth.year % 100:02d}{birth.month:02d}{place}{order:03d}"
    value: str = stdnum_nir.validate(first13 + stdnum_nir.calc_check_digits(first13))
    return value


def _uuid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def _ascii(text: str) -> str:
    folded = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return "".join(c for c in folded.lower() if c.isalnum() or c in ".-")


def _tz(moment: datetime) -> str:
    # Europe/Paris, approximated: summer time from April to October.
    return "+02:00" if 4 <= moment.month <= 10 else "+01:00"


def _instant(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S") + _tz(moment)


def _meta() -> Resource:
    return {"security": [dict(TEST_DATA_LABEL)]}


def _concept(system: str, code: str, display: str, text: str | None = None) -> Resource:
    concept: Resource = {"coding": [{"system": system, "code": code, "display": display}]}
    if text:
        concept["text"] = text
    return concept


def _pick_city(rng: random.Random) -> tuple[str, str, str]:
    """(city name, COG code, postal code), per arrondissement for Paris, Lyon, Marseille."""
    city = rng.choice(CITIES)
    if city.arrondissements:
        arr = rng.randint(1, city.arrondissements)
        return city.name, str(city.arr_cog_base + arr), str(int(city.postal) + arr).zfill(5)
    return city.name, city.cog, city.postal


@dataclass(frozen=True)
class _Identity:
    gender: str
    family: str
    birth_given: tuple[str, ...]
    usual_family: str | None
    birth_date: date
    birth_city: str
    birth_cog: str
    birth_country: str
    nir: str


def _identity(rng: random.Random) -> _Identity:
    female = rng.random() < 0.52
    given_pool = FEMALE_GIVEN if female else MALE_GIVEN
    birth_given = tuple(rng.sample(given_pool, rng.choice((1, 1, 2, 2, 3))))
    family = rng.choice(FAMILY_NAMES)
    usual_family = rng.choice(FAMILY_NAMES) if female and rng.random() < 0.3 else None
    birth = REFERENCE_DAY - timedelta(days=rng.randint(365 * 2, 365 * 95))
    if rng.random() < 0.08:
        cog, country, city = rng.choice(COUNTRIES_ABROAD)
    else:
        city, cog, _ = _pick_city(rng)
        country = "FR"
    nir = make_nir(2 if female else 1, birth, cog, rng.randint(1, 999))
    return _Identity(
        gender="female" if female else "male",
        family=family,
        birth_given=birth_given,
        usual_family=usual_family if usual_family != family else None,
        birth_date=birth,
        birth_city=city,
        birth_cog=cog,
        birth_country=country,
        nir=nir,
    )


def _patient(rng: random.Random, index: int) -> Resource:
    who = _identity(rng)
    birth_place: Resource = {"city": who.birth_city, "country": who.birth_country}
    # the COG of the birthplace: a commune, or 99 + the INSEE country code for a birth abroad
    birth_place["extension"] = [
        {
            "url": INSEE_CODE,
            "valueCoding": {
                "system": COMMUNE_CS if who.birth_country == "FR" else COUNTRY_CS,
                "code": who.birth_cog,
                "display": who.birth_city,
            },
        }
    ]
    checked = (REFERENCE_DAY - timedelta(days=rng.randint(1, 900))).isoformat()
    reliability = [
        {
            "url": "identityStatus",
            "valueCoding": {
                "system": IDENTITY_STATUS_CS,
                "code": "QUAL",
                "display": "Identité qualifiée",
            },
        },
        {
            "url": "methodCollection",
            "valueCoding": {
                "system": METHOD_COLLECTION_CS,
                "code": "INSI",
                "display": "Téléservice INSi",
            },
        },
        {"url": "dateInterrogationINSi", "valueDate": checked},
        {
            "url": "validationMode",
            "valueCoding": {
                "system": VALIDATION_MODE_CS,
                "code": "CN",
                "display": "Carte nationale d'identité",
            },
        },
        {"url": "validationDate", "valueDate": checked},
    ]
    names: list[Resource] = [
        {
            "extension": [{"url": BIRTH_LIST_GIVEN_NAME, "valueString": " ".join(who.birth_given)}],
            "use": "official",
            "family": who.family,
            "given": [who.birth_given[0]],
        }
    ]
    if who.usual_family:
        names.append({"use": "usual", "family": who.usual_family, "given": [who.birth_given[0]]})
    city, _, postal = _pick_city(rng)
    line = f"{rng.randint(1, 180)} {rng.choice(STREETS)}"
    mobile = f"0{rng.choice((6, 7))} " + " ".join(f"{rng.randint(0, 99):02d}" for _ in range(4))
    telecom: list[Resource] = [{"system": "phone", "value": mobile, "use": "mobile"}]
    if rng.random() < 0.6:
        email = f"{_ascii(who.birth_given[0])}.{_ascii(who.usual_family or who.family)}"
        telecom.append(
            {"system": "email", "value": f"{email}{rng.randint(1, 99)}@example.org", "use": "home"}
        )
    return {
        "resourceType": "Patient",
        "meta": _meta(),
        "extension": [
            {"url": IDENTITY_RELIABILITY, "extension": reliability},
            {"url": BIRTH_PLACE, "valueAddress": birth_place},
        ],
        "identifier": [
            {
                "use": "official",
                "type": _concept(FR_CORE_V2_0203, "INS-NIR-TEST", "NIR de test"),
                "system": INS_NIR_TEST_SYSTEM,
                "value": who.nir,
            },
            {
                "use": "usual",
                "type": _concept(V2_0203, "PI", "Patient internal identifier"),
                "system": IPP_SYSTEM,
                "value": f"IPP-{index:08d}",
            },
        ],
        "active": True,
        "name": names,
        "telecom": telecom,
        "gender": who.gender,
        "birthDate": who.birth_date.isoformat(),
        "address": [
            {
                "use": "home",
                "type": "both",
                "text": f"{line}, {postal} {city}, France",
                "line": [line],
                "city": city,
                "postalCode": postal,
                "country": "FR",
            }
        ],
    }


def _encounter(rng: random.Random, patient_ref: str, start: datetime, nda: str) -> Resource:
    cls, cls_display, code, display, text, hmin, hmax = rng.choice(ENCOUNTER_KINDS)
    minutes = rng.randint(hmin * 60, hmax * 60) if hmax > 1 else rng.randint(15, 45)
    end = start + timedelta(minutes=minutes)
    return {
        "resourceType": "Encounter",
        "meta": _meta(),
        "identifier": [{"system": NDA_SYSTEM, "value": nda}],
        "status": "finished",
        "class": {"system": ACT_CODE, "code": cls, "display": cls_display},
        "type": [_concept(SNOMED, code, display, text)],
        "subject": {"reference": patient_ref},
        "period": {"start": _instant(start), "end": _instant(end)},
    }


def _quantity(value: float, unit: str, decimals: int) -> Resource:
    number: float | int = round(value, decimals) if decimals else round(value)
    return {"value": number, "unit": unit, "system": UCUM, "code": unit}


def _observations(
    rng: random.Random, gender: str, age: int, conditions: set[str]
) -> list[tuple[str, str, str, str, Resource]]:
    """(category, LOINC, display, French text, value part) for one patient's measurements."""
    height = rng.gauss(163 if gender == "female" else 176, 7) if age >= 16 else 90 + age * 5
    bmi = max(15.0, rng.gauss(27.5 if "dt2" in conditions else 24.5, 3.5))
    weight = bmi * (height / 100) ** 2
    systolic = rng.gauss(145 if "hta" in conditions else 122, 10)
    glucose = rng.gauss(1.45 if "dt2" in conditions else 0.92, 0.12)
    hba1c = rng.gauss(7.4 if "dt2" in conditions else 5.4, 0.4)
    vs, lab = "vital-signs", "laboratory"
    out: list[tuple[str, str, str, str, Resource]] = [
        (vs, "29463-7", "Body weight", "Poids", {"valueQuantity": _quantity(weight, "kg", 1)}),
        (vs, "8302-2", "Body height", "Taille", {"valueQuantity": _quantity(height, "cm", 0)}),
        (
            vs,
            "39156-5",
            "Body mass index (BMI) [Ratio]",
            "IMC",
            {"valueQuantity": _quantity(weight / (height / 100) ** 2, "kg/m2", 1)},
        ),
        (
            vs,
            "8867-4",
            "Heart rate",
            "Fréquence cardiaque",
            {"valueQuantity": _quantity(rng.gauss(74, 9), "/min", 0)},
        ),
        (
            vs,
            "85354-9",
            "Blood pressure panel with all children optional",
            "Pression artérielle",
            {
                "component": [
                    {
                        "code": _concept(LOINC, "8480-6", "Systolic blood pressure"),
                        "valueQuantity": _quantity(systolic, "mm[Hg]", 0),
                    },
                    {
                        "code": _concept(LOINC, "8462-4", "Diastolic blood pressure"),
                        "valueQuantity": _quantity(systolic * rng.uniform(0.58, 0.68), "mm[Hg]", 0),
                    },
                ]
            },
        ),
        (
            vs,
            "8310-5",
            "Body temperature",
            "Température",
            {"valueQuantity": _quantity(rng.gauss(36.9, 0.35), "Cel", 1)},
        ),
        (
            vs,
            "9279-1",
            "Respiratory rate",
            "Fréquence respiratoire",
            {"valueQuantity": _quantity(rng.gauss(16, 2), "/min", 0)},
        ),
        (
            vs,
            "59408-5",
            "Oxygen saturation in Arterial blood by Pulse oximetry",
            "Saturation en oxygène",
            {"valueQuantity": _quantity(min(100, rng.gauss(97, 1.5)), "%", 0)},
        ),
        (
            lab,
            "2339-0",
            "Glucose [Mass/volume] in Blood",
            "Glycémie",
            {"valueQuantity": _quantity(glucose, "g/L", 2)},
        ),
        (
            lab,
            "4548-4",
            "Hemoglobin A1c/Hemoglobin.total in Blood",
            "HbA1c",
            {"valueQuantity": _quantity(hba1c, "%", 1)},
        ),
    ]
    extras = [
        (
            lab,
            "2160-0",
            "Creatinine [Mass/volume] in Serum or Plasma",
            "Créatininémie",
            {"valueQuantity": _quantity(rng.gauss(9.5, 1.8), "mg/L", 1)},
        ),
        (
            lab,
            "13457-7",
            "Cholesterol in LDL [Mass/volume] in Serum or Plasma by calculation",
            "LDL-cholestérol",
            {
                "valueQuantity": _quantity(
                    rng.gauss(1.75 if "chol" in conditions else 1.15, 0.2), "g/L", 2
                )
            },
        ),
    ]
    return out + rng.sample(extras, rng.randint(0, 2))


def _observation(
    category: str,
    code: str,
    display: str,
    text: str,
    value: Resource,
    subject: Resource,
    encounter_ref: str | None,
    when: datetime,
) -> Resource:
    obs: Resource = {
        "resourceType": "Observation",
        "meta": _meta(),
        "status": "final",
        "category": [
            _concept(
                OBS_CATEGORY, category, "Vital Signs" if category == "vital-signs" else "Laboratory"
            )
        ],
        "code": _concept(LOINC, code, display, text),
        "subject": subject,
    }
    if encounter_ref:
        obs["encounter"] = {"reference": encounter_ref}
    obs["effectiveDateTime"] = _instant(when)
    obs.update(value)
    return obs


def _condition(
    rng: random.Random,
    spec: tuple[str, str, str, str, str],
    patient_ref: str,
    encounter_ref: str,
    recorded: datetime,
    birth: date,
) -> Resource:
    _, sct, sct_display, icd, text = spec
    onset = recorded.date() - timedelta(days=rng.randint(0, max(1, (recorded.date() - birth).days)))
    category = rng.choice(("problem-list-item", "encounter-diagnosis"))
    return {
        "resourceType": "Condition",
        "meta": _meta(),
        "clinicalStatus": _concept(
            "http://terminology.hl7.org/CodeSystem/condition-clinical", "active", "Active"
        ),
        "verificationStatus": _concept(
            "http://terminology.hl7.org/CodeSystem/condition-ver-status", "confirmed", "Confirmed"
        ),
        "category": [
            _concept(
                "http://terminology.hl7.org/CodeSystem/condition-category",
                category,
                "Problem List Item" if category == "problem-list-item" else "Encounter Diagnosis",
            )
        ],
        "code": {
            "coding": [
                {"system": SNOMED, "code": sct, "display": sct_display},
                {"system": ICD10, "code": icd, "display": text},
            ],
            "text": text,
        },
        "subject": {"reference": patient_ref},
        "encounter": {"reference": encounter_ref},
        "onsetDateTime": onset.isoformat(),
        "recordedDate": _instant(recorded),
    }


def _pdf(lines: list[str]) -> bytes:
    """A minimal one-page PDF 1.4 showing ``lines`` in Helvetica (WinAnsi)."""

    def esc(s: str) -> str:
        return s.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")

    text = " T* ".join(f"({esc(s)}) Tj" for s in lines)
    stream = f"BT /F1 11 Tf 14 TL 56 780 Td {text} ET".encode("cp1252", "replace")
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] "
        b"/Resources << /Font << /F1 4 0 R >> >> /Contents 5 0 R >>",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>",
        b"<< /Length %d >>\nstream\n%s\nendstream" % (len(stream), stream),
    ]
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n%s\nendobj\n" % (number, body)
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1,
        xref,
    )
    return bytes(out)


def _document(
    rng: random.Random,
    patient: Resource,
    patient_ref: str,
    encounter: Resource,
    encounter_ref: str,
) -> Resource:
    code, display, cls, cls_display, title = rng.choice(DOCUMENT_KINDS)
    end = encounter["period"]["end"]
    written = datetime.fromisoformat(end).replace(tzinfo=None) + timedelta(
        minutes=rng.randint(5, 600)
    )
    author = f"Dr {rng.choice(FEMALE_GIVEN + MALE_GIVEN)} {rng.choice(FAMILY_NAMES)}"
    name = patient["name"][0]
    pdf = _pdf(
        [
            title,
            f"Patient : {name['given'][0]} {name['family'].upper()}",
            f"Né(e) le {patient['birthDate']}",
            f"Rédigé par {author} le {written:%d/%m/%Y}",
            "Document de TEST - données synthétiques, ne concerne aucune personne réelle.",
        ]
    )
    return {
        "resourceType": "DocumentReference",
        "meta": _meta(),
        "masterIdentifier": {"system": "urn:ietf:rfc:3986", "value": f"urn:uuid:{_uuid(rng)}"},
        "status": "current",
        "docStatus": "final",
        "type": _concept(LOINC, code, display),
        "category": [_concept(CLASS_DOCUMENT_CS, cls, cls_display)],
        "subject": {"reference": patient_ref},
        "date": _instant(written),
        "author": [{"display": author}],
        "description": title,
        "securityLabel": [
            _concept("http://terminology.hl7.org/CodeSystem/v3-Confidentiality", "N", "normal")
        ],
        "content": [
            {
                "attachment": {
                    "contentType": "application/pdf",
                    "language": "fr-FR",
                    "data": base64.b64encode(pdf).decode("ascii"),
                    "size": len(pdf),
                    "hash": base64.b64encode(hashlib.sha1(pdf).digest()).decode("ascii"),
                    "title": f"{title}.pdf",
                    "creation": _instant(written),
                }
            }
        ],
        "context": {
            "encounter": [{"reference": encounter_ref}],
            "period": dict(encounter["period"]),
            "practiceSetting": _concept(
                PRACTICE_SETTING_CS,
                "AMBULATOIRE" if encounter["class"]["code"] in ("AMB", "VR") else "ETABLISSEMENT",
                "Ambulatoire"
                if encounter["class"]["code"] in ("AMB", "VR")
                else "Etablissement de santé",
            ),
        },
    }


def _entry(full_url: str, resource: Resource, bundle_type: str) -> Resource:
    entry: Resource = {"fullUrl": full_url, "resource": resource}
    if bundle_type == "transaction":
        entry["request"] = {"method": "POST", "url": resource["resourceType"]}
    return entry


def patient_bundle(rng: random.Random, index: int, bundle_type: str = "transaction") -> Resource:
    """One synthetic patient and ~20 linked resources as an R4 transaction (or collection) Bundle.

    https://hl7.org/fhir/R4/bundle.html#transaction
    """
    if bundle_type not in BUNDLE_TYPES:
        raise ValueError(f"bundle_type must be one of {BUNDLE_TYPES}, not {bundle_type!r}")
    patient = _patient(rng, index)
    patient_url = f"urn:uuid:{_uuid(rng)}"
    birth = date.fromisoformat(patient["birthDate"])
    entries = [_entry(patient_url, patient, bundle_type)]
    if bundle_type == "transaction":
        ins = patient["identifier"][0]
        entries[0]["request"]["ifNoneExist"] = f"identifier={ins['system']}|{ins['value']}"

    starts = sorted(
        datetime.combine(REFERENCE_DAY, datetime.min.time())
        - timedelta(days=rng.randint(1, 3 * 365))
        + timedelta(hours=8, minutes=rng.randint(0, 9 * 60))
        for _ in range(rng.randint(2, 3))
    )
    encounters: list[tuple[str, Resource]] = []
    for n, start in enumerate(starts, start=1):
        url = f"urn:uuid:{_uuid(rng)}"
        encounter = _encounter(rng, patient_url, start, f"NDA-{index:08d}-{n}")
        encounters.append((url, encounter))
        entries.append(_entry(url, encounter, bundle_type))

    conditions = rng.sample(CONDITIONS, rng.randint(2, 3))
    keys = {c[0] for c in conditions}
    age = (REFERENCE_DAY - birth).days // 365
    for measure in _observations(rng, patient["gender"], age, keys):
        enc_url, encounter = rng.choice(encounters)
        when = datetime.fromisoformat(encounter["period"]["start"]).replace(tzinfo=None)
        obs = _observation(
            *measure,
            subject={"reference": patient_url},
            encounter_ref=enc_url,
            when=when + timedelta(minutes=rng.randint(0, 15)),
        )
        entries.append(_entry(f"urn:uuid:{_uuid(rng)}", obs, bundle_type))

    for spec in conditions:
        enc_url, encounter = rng.choice(encounters)
        recorded = datetime.fromisoformat(encounter["period"]["start"]).replace(tzinfo=None)
        condition = _condition(rng, spec, patient_url, enc_url, recorded, birth)
        entries.append(_entry(f"urn:uuid:{_uuid(rng)}", condition, bundle_type))

    for _ in range(rng.randint(2, 3)):
        enc_url, encounter = rng.choice(encounters)
        doc = _document(rng, patient, patient_url, encounter, enc_url)
        entries.append(_entry(f"urn:uuid:{_uuid(rng)}", doc, bundle_type))

    return {"resourceType": "Bundle", "meta": _meta(), "type": bundle_type, "entry": entries}


def bundle_rng(seed: int, index: int) -> random.Random:
    """The generator of bundle ``index`` for ``seed``, independent of the other bundles.

    https://docs.python.org/3/library/random.html#random.seed
    """
    return random.Random(f"maison-demo/{seed}/{index}")


def demo_bundles(
    count: int, seed: int = 0, start: int = 0, bundle_type: str = "transaction"
) -> Iterator[Resource]:
    """Bundles ``start`` .. ``start + count - 1`` of the demo data set for ``seed``.

    https://hl7.org/fhir/R4/bundle.html#transaction
    """
    for index in range(start, start + count):
        yield patient_bundle(bundle_rng(seed, index), index, bundle_type)


def individual_resources(
    rng: random.Random, n: int, resource_type: str = "Patient", start: int = 0
) -> list[Resource]:
    """``n`` standalone resources (no ``urn:uuid`` references) to POST one by one.

    Observations point at their patient by a logical reference (``Reference.identifier`` with the
    INS-NIR test matricule), which a server does not resolve.
    https://hl7.org/fhir/R4/http.html#create
    """
    if resource_type not in ("Patient", "Observation"):
        raise ValueError(f"resource_type must be Patient or Observation, not {resource_type!r}")
    out: list[Resource] = []
    for index in range(start, start + n):
        if resource_type == "Patient":
            out.append(_patient(rng, index))
            continue
        who = _identity(rng)
        age = (REFERENCE_DAY - who.birth_date).days // 365
        measure = rng.choice(_observations(rng, who.gender, age, set()))
        subject = {
            "type": "Patient",
            "identifier": {"system": INS_NIR_TEST_SYSTEM, "value": who.nir},
        }
        when = datetime.combine(REFERENCE_DAY, datetime.min.time()) - timedelta(
            minutes=rng.randint(0, 3 * 365 * 24 * 60)
        )
        out.append(_observation(*measure, subject=subject, encounter_ref=None, when=when))
    return out


def bundle_references(bundle: Resource) -> list[str]:
    """Every ``Reference.reference`` string found in the resources of ``bundle``.

    https://hl7.org/fhir/R4/references.html#Reference
    """
    found: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            ref = node.get("reference")
            if isinstance(ref, str):
                found.append(ref)
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    for entry in bundle.get("entry", []):
        walk(entry.get("resource"))
    return found
