"""Matricule INS (NIR or NIA): structure, key, and the INS identifiers of a Patient.

The matricule INS is the person's own NIR (or, for people born abroad whose registration is
pending, the NIA), 13 characters plus a 2-digit key: ``97 - (n mod 97)`` with ``2A``/``2B``
read as ``19``/``18`` (python-stdnum ``stdnum.fr.nir``). Only the assigning-authority OID
tells a NIR from a NIA: "l'OID ... permet de différencier un matricule NIR d'un matricule de
type NIA" (esante-bretagne.fr, la gestion de l'INS), and a NIA "est constitué comme un NIR"
(net-entreprises, utilisation d'un NIR d'attente). Both therefore get the same shape checks.

Decisions (sources, and how sure):

* first character: 1, 2 (sex of a registered person), 3, 4, 7, 8 (people born abroad whose
  registration is pending / provisional numbers). INSEE decree 82-103 art. 4 only says "sexe
  (1 chiffre)"; the set {1,2,3,4,7,8} is the one used consistently by public validators
  derived from the INSEE NIR schema and fr.wikipedia (e.g. ``[1-478]`` patterns). Medium
  confidence. The CNAM validator (assurance-maladie-digital/nir-validation) accepts 1/2 only
  for a certified NIR and 7/8 for the old NNP (13 digits, another structure, gone since
  2022). A definitive INS-NIR starting with 3/4/7/8 is therefore only *warned* about: it
  may be a NIA recorded under the NIR OID.
* month: 01-12, or 20-42 / 50-99 (INSEE codes for a civil-status record without, or with an
  incomplete, month). 00, 13-19 and 43-49 are refused. Medium confidence (same sources).
* place (characters 6-10): ``2A``/``2B`` only at characters 6-7; ``97x``/``98x``: overseas,
  3-digit département then 2-digit commune; ``99`` + INSEE country code: born abroad; other
  two digits: département (including ``20``: Corsica before 1976, and 91-96: Algeria,
  Morocco, Tunisia before independence). ``00`` is refused. High confidence.
* order number (characters 11-13): 001-999, ``000`` refused. Medium-high confidence.
* key (characters 14-15): always 01-97 by construction; any other value is a wrong key.

Any single-character substitution of a valid matricule is refused: a substitution inside the
13-character body changes its numeric reading (with 2A=19, 2B=18) by ``c * 10**k`` with
``0 < |c| < 97`` and ``k <= 12``; 97 is prime and divides neither, so the key no longer
matches; a substitution in the key makes it differ from the (unchanged) expected key; any
other character is refused by the shape checks. ``tests/services/ins/test_matricule.py``
checks the property with hypothesis.

https://hl7.fr/ig/fhir/core/StructureDefinition-fr-core-patient-ins.html
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from stdnum.fr import nir as stdnum_nir

from maison.fhir.errors import Category, FhirError, Issue


class Kind(StrEnum):
    """The four INS identifier kinds, named by their FR Core type code."""

    NIR = "INS-NIR"
    NIA = "INS-NIA"
    NIR_TEST = "INS-NIR-TEST"
    NIR_DEMO = "INS-NIR-DEMO"


#: FHIR system (assigning-authority OID) of each kind (FR Core FRCorePatientINSProfile.fsh).
SYSTEMS: dict[Kind, str] = {
    Kind.NIR: "urn:oid:1.2.250.1.213.1.4.8",
    Kind.NIA: "urn:oid:1.2.250.1.213.1.4.9",
    Kind.NIR_TEST: "urn:oid:1.2.250.1.213.1.4.10",
    Kind.NIR_DEMO: "urn:oid:1.2.250.1.213.1.4.11",
}
KIND_OF_SYSTEM: dict[str, Kind] = {system: kind for kind, system in SYSTEMS.items()}

#: Identifier.use values FR Core allows per kind (NIR: VS official|old; NIA: temp; test/demo:
#: official). ``old`` marks a deactivated INS (identity merge).
USES: dict[Kind, tuple[str, ...]] = {
    Kind.NIR: ("official", "old"),
    Kind.NIA: ("temp",),
    # the test and demo OIDs stand for a NIR: a previous matricule (INSHISTO) is kept as old
    Kind.NIR_TEST: ("official", "old"),
    Kind.NIR_DEMO: ("official", "old"),
}
#: Uses of an identifier that is in force (not deactivated).
ACTIVE_USES = frozenset({"official", "temp"})

#: FR Core identifier-type CodeSystem carrying INS-NIR, INS-NIA, INS-NIR-TEST, INS-NIR-DEMO.
FR_CORE_V2_0203 = "https://hl7.fr/ig/fhir/core/CodeSystem/fr-core-cs-v2-0203"
#: HL7 v2 table 0203; ``NH`` types the NSS (billing NIR), which is not an INS.
V2_0203 = "http://terminology.hl7.org/CodeSystem/v2-0203"
NSS_TYPE_CODE = "NH"

LENGTH = 15
_KIND_CODES = frozenset(k.value for k in Kind)
_SEX_DIGITS = "123478"
_PROVISIONAL_SEX_DIGITS = "3478"
_MALE_SEX_DIGITS = "137"


@dataclass(frozen=True)
class Matricule:
    """A structurally valid 15-character matricule INS with a correct key."""

    value: str

    @property
    def first13(self) -> str:
        """The 13 characters the key is computed on."""
        return self.value[:13]

    @property
    def sex_digit(self) -> str:
        """Character 1: 1/3/7 male, 2/4/8 female."""
        return self.value[0]

    @property
    def sex(self) -> str:
        """``M`` or ``F`` as coded by the first character."""
        return "M" if self.value[0] in _MALE_SEX_DIGITS else "F"

    @property
    def provisional(self) -> bool:
        """First character 3, 4, 7 or 8: a number of a person whose registration is pending."""
        return self.value[0] in _PROVISIONAL_SEX_DIGITS

    @property
    def year(self) -> str:
        """Characters 2-3: the last two digits of the birth year."""
        return self.value[1:3]

    @property
    def month(self) -> str:
        """Characters 4-5: the birth month, or an INSEE code for an unknown month."""
        return self.value[3:5]

    @property
    def month_known(self) -> bool:
        """True when characters 4-5 are a real month (01-12)."""
        return 1 <= int(self.month) <= 12

    @property
    def place(self) -> str:
        """Characters 6-10: département + commune, or 99 + country code."""
        return self.value[5:10]

    @property
    def born_abroad(self) -> bool:
        """Characters 6-7 are 99: the person was born abroad."""
        return self.value[5:7] == "99"

    @property
    def department(self) -> str:
        """Département of birth: 3 characters overseas (97x, 98x), else 2 (2A/2B for Corsica)."""
        if self.value[5:7] in ("97", "98"):
            return self.value[5:8]
        return self.value[5:7]

    @property
    def order(self) -> str:
        """Characters 11-13: order number among people born at the same place and period."""
        return self.value[10:13]

    @property
    def key(self) -> str:
        """Characters 14-15: the control key."""
        return self.value[13:]


def compute_key(first13: str) -> str:
    """The 2-digit key of 13 characters (2A=19, 2B=18): https://xml.insee.fr/schema/nir.html."""
    if len(first13) != 13 or not _body_chars_ok(first13):
        raise ValueError(f"not the 13 characters of a NIR: {first13!r}")
    return str(stdnum_nir.calc_check_digits(first13))


def _body_chars_ok(body: str) -> bool:
    return (
        body[:5].isascii()
        and body[:5].isdigit()
        and body[7:13].isascii()
        and body[7:13].isdigit()
        and (body[5:7] in ("2A", "2B") or (body[5:7].isascii() and body[5:7].isdigit()))
    )


def _err(code: str, expression: str, message: str) -> Issue:
    return Issue("error", code, message, (expression,) if expression else ())


def _warn(code: str, expression: str, message: str) -> Issue:
    return Issue("warning", code, message, (expression,) if expression else ())


_SEPARATORS = re.compile(r"[\s.\-]")


def _shape_issues(value: str, expression: str) -> list[Issue]:
    where = f"{expression}: " if expression else ""
    issues: list[Issue] = []
    if value[0] not in _SEX_DIGITS:
        issues.append(
            _err(
                "value",
                expression,
                f"{where}character 1 (sex) of matricule INS {value} is {value[0]!r}; expected 1 "
                "or 2 (3, 4, 7 or 8 for a person born abroad whose registration is pending)",
            )
        )
    month = value[3:5]
    if month.isascii() and month.isdigit():
        m = int(month)
        if not (1 <= m <= 12 or 20 <= m <= 42 or m >= 50):
            issues.append(
                _err(
                    "value",
                    expression,
                    f"{where}characters 4-5 (birth month) of matricule INS {value} are {month!r}; "
                    "expected 01-12, or 20-42 / 50-99 (INSEE codes for an unknown month)",
                )
            )
    dept = value[5:7]
    letters_ok = dept in ("2A", "2B")
    if not letters_ok and not (dept.isascii() and dept.isdigit()):
        issues.append(
            _err(
                "value",
                expression,
                f"{where}characters 6-7 (département of birth) of matricule INS {value} are "
                f"{dept!r}; expected 2 digits, or 2A / 2B for Corsica",
            )
        )
    elif dept == "00":
        issues.append(
            _err(
                "value",
                expression,
                f"{where}characters 6-7 (département of birth) of matricule INS {value} are '00'; "
                "there is no département 00 (99 = born abroad)",
            )
        )
    for start, end, label in ((0, 5, "characters 1-5"), (7, 13, "characters 8-13")):
        part = value[start:end]
        bad = sorted({c for c in part if not (c.isascii() and c.isdigit())})
        if bad:
            hint = ""
            if set(bad) & {"A", "B"}:
                hint = " (A/B are only allowed as 2A/2B at characters 6-7)"
            issues.append(
                _err(
                    "value",
                    expression,
                    f"{where}{label} of matricule INS {value} must be digits; found "
                    f"{', '.join(repr(c) for c in bad)}{hint}",
                )
            )
    if value[10:13] == "000":
        issues.append(
            _err(
                "value",
                expression,
                f"{where}characters 11-13 (order number) of matricule INS {value} are '000'; "
                "order numbers run from 001 to 999",
            )
        )
    key = value[13:]
    if not (key.isascii() and key.isdigit()):
        issues.append(
            _err(
                "value",
                expression,
                f"{where}characters 14-15 (key) of matricule INS {value} must be 2 digits, "
                f"not {key!r}",
            )
        )
    elif _body_chars_ok(value[:13]):
        expected = compute_key(value[:13])
        if key != expected:
            note = "" if 1 <= int(key) <= 97 else " (a key is always between 01 and 97)"
            issues.append(
                _err(
                    "value",
                    expression,
                    f"{where}the key of matricule INS {value} is {key}, expected {expected}{note}",
                )
            )
    return issues


def check(value: object, system: str | None = None, expression: str = "") -> list[Issue]:
    """Issues of one matricule INS value: https://hl7.fr/ig/fhir/core/StructureDefinition-fr-core-patient-ins.html."""
    where = f"{expression}: " if expression else ""
    if not isinstance(value, str):
        return [
            _err(
                "value",
                expression,
                f"{where}a matricule INS is a string of 15 characters, not {type(value).__name__}",
            )
        ]
    compact = _SEPARATORS.sub("", value).upper()
    if compact != value:
        hint = ""
        if len(compact) == LENGTH and not _shape_issues(compact, ""):
            hint = f"; send {compact!r}"
        return [
            _err(
                "value",
                expression,
                f"{where}a stored matricule INS is exactly 15 upper-case characters without "
                f"spaces or separators; got {value!r}{hint}",
            )
        ]
    if len(value) != LENGTH:
        hint = ""
        if len(value) == 13 and _body_chars_ok(value):
            full = value + compute_key(value)
            if not _shape_issues(full, ""):
                hint = f"; with its key it would be {full}"
        return [
            _err(
                "value",
                expression,
                f"{where}a matricule INS has 15 characters (13 + a 2-digit key); got "
                f"{len(value)} in {value!r}{hint}",
            )
        ]
    issues = _shape_issues(value, expression)
    kind = KIND_OF_SYSTEM.get(system or "")
    if kind is Kind.NIR and not issues and value[0] in _PROVISIONAL_SEX_DIGITS:
        issues.append(
            _warn(
                "value",
                expression,
                f"{where}matricule {value} starts with {value[0]}, which denotes a provisional "
                "number (person born abroad, registration pending), under the definitive INS-NIR "
                f"system {SYSTEMS[Kind.NIR]}; if INSi returned it with OID 1.2.250.1.213.1.4.9 it "
                "is a NIA (system urn:oid:1.2.250.1.213.1.4.9, type INS-NIA, use temp)",
            )
        )
    return issues


def parse(value: object, system: str | None = None, expression: str = "") -> Matricule:
    """Parse a matricule INS or raise a 422 FhirError: https://xml.insee.fr/schema/nir.html."""
    issues = check(value, system, expression)
    errors = [i for i in issues if i.severity == "error"]
    if errors:
        raise FhirError(Category.UNPROCESSABLE, errors[0].diagnostics, errors)
    assert isinstance(value, str)
    return Matricule(value)


def _type_codes(identifier: Mapping[str, Any]) -> list[tuple[str | None, str | None]]:
    typ = identifier.get("type")
    if not isinstance(typ, Mapping):
        return []
    codings = typ.get("coding")
    if not isinstance(codings, list):
        return []
    out: list[tuple[str | None, str | None]] = []
    for coding in codings:
        if isinstance(coding, Mapping):
            system, code = coding.get("system"), coding.get("code")
            out.append(
                (
                    system if isinstance(system, str) else None,
                    code if isinstance(code, str) else None,
                )
            )
    return out


def _type_kind(identifier: Mapping[str, Any]) -> Kind | None:
    for system, code in _type_codes(identifier):
        if system == FR_CORE_V2_0203 and code is not None and code in _KIND_CODES:
            return Kind(code)
    return None


def is_nss(identifier: Mapping[str, Any]) -> bool:
    """True for the NSS (billing NIR, type v2-0203#NH): https://hl7.fr/ig/fhir/core/StructureDefinition-fr-core-patient.html."""
    return (V2_0203, NSS_TYPE_CODE) in _type_codes(identifier)


def identifier_kind(identifier: Mapping[str, Any]) -> Kind | None:
    """The INS kind of an identifier (type first, then system; NSS excluded): https://hl7.fr/ig/fhir/core/StructureDefinition-fr-core-patient-ins.html."""
    if is_nss(identifier):
        return None
    by_type = _type_kind(identifier)
    if by_type is not None:
        return by_type
    system = identifier.get("system")
    return KIND_OF_SYSTEM.get(system) if isinstance(system, str) else None


def ins_identifiers(patient: Mapping[str, Any]) -> list[tuple[int, dict[str, Any], Kind]]:
    """The INS identifiers of a Patient as (index, identifier, kind): https://hl7.fr/ig/fhir/core/StructureDefinition-fr-core-patient-ins.html."""
    identifiers = patient.get("identifier")
    if not isinstance(identifiers, list):
        return []
    out: list[tuple[int, dict[str, Any], Kind]] = []
    for index, identifier in enumerate(identifiers):
        if isinstance(identifier, dict):
            kind = identifier_kind(identifier)
            if kind is not None:
                out.append((index, identifier, kind))
    return out


def active_ins(patient: Mapping[str, Any]) -> list[tuple[int, dict[str, Any], Kind]]:
    """The INS identifiers in force (use official or temp): https://hl7.fr/ig/fhir/core/StructureDefinition-fr-core-patient-ins.html."""
    return [t for t in ins_identifiers(patient) if t[1].get("use") in ACTIVE_USES]


def _identifier_issues(index: int, identifier: Mapping[str, Any], kind: Kind) -> list[Issue]:
    base = f"Patient.identifier[{index}]"
    issues: list[Issue] = []
    system = identifier.get("system")
    expected_system = SYSTEMS[kind]
    by_type = _type_kind(identifier)
    if system != expected_system:
        by_system = KIND_OF_SYSTEM.get(system) if isinstance(system, str) else None
        if by_system is not None:
            issues.append(
                _err(
                    "value",
                    f"{base}.system",
                    f"{base}: type {kind.value} does not match system {system} (the OID of "
                    f"{by_system.value}); an {kind.value} uses system {expected_system}. The OID "
                    "returned by INSi with the matricule tells a NIR from a NIA",
                )
            )
        else:
            issues.append(
                _err(
                    "value",
                    f"{base}.system",
                    f"{base}: an {kind.value} identifier has system {expected_system}, "
                    f"not {system!r}",
                )
            )
    if by_type is None:
        if kind is Kind.NIR:
            issues.append(
                _warn(
                    "required",
                    f"{base}.type",
                    f"{base}: identifier with system {expected_system} and no type: taken as the "
                    f"INS-NIR; add type {FR_CORE_V2_0203}#INS-NIR, or {V2_0203}#NH if it is the "
                    "NSS (billing NIR), which is not an INS",
                )
            )
        else:
            issues.append(
                _warn(
                    "required",
                    f"{base}.type",
                    f"{base}: add type {FR_CORE_V2_0203}#{kind.value} (FR Core requires it)",
                )
            )
    use = identifier.get("use")
    allowed = USES[kind]
    if use is None:
        issues.append(
            _err(
                "required",
                f"{base}.use",
                f"{base}: an {kind.value} identifier needs use {' or '.join(allowed)}",
            )
        )
    elif use not in allowed:
        hint = ""
        if kind is Kind.NIR and use == "temp":
            hint = (
                "; 'temp' denotes a NIA: if INSi returned OID 1.2.250.1.213.1.4.9, use system "
                "urn:oid:1.2.250.1.213.1.4.9 and type INS-NIA"
            )
        elif kind is Kind.NIA and use in ("official", "old"):
            hint = (
                f"; a NIA is temporary (use temp); a definitive NIR uses system "
                f"{SYSTEMS[Kind.NIR]} and type INS-NIR"
            )
        issues.append(
            _err(
                "value",
                f"{base}.use",
                f"{base}: use {use!r} is not allowed for an {kind.value}; expected "
                f"{' or '.join(allowed)}{hint}",
            )
        )
    if "value" not in identifier:
        issues.append(
            _err("required", f"{base}.value", f"{base}: an {kind.value} identifier needs a value")
        )
    else:
        check_system = system if isinstance(system, str) else expected_system
        issues.extend(check(identifier["value"], check_system, f"{base}.value"))
    return issues


def _coherence_issues(index: int, matricule: Matricule, patient: Mapping[str, Any]) -> list[Issue]:
    """Warnings when the matricule's sex / birth year-month differ from the Patient's traits.

    Only warnings: a NIR keeps the values of the civil-status record it was built from, and
    legitimate differences exist (corrected civil status, RNIV conversion of exceptional
    dates, unknown months coded 20-42/50-99).
    """
    expr = f"Patient.identifier[{index}].value"
    issues: list[Issue] = []
    gender = patient.get("gender")
    if gender in ("male", "female") and ("M" if gender == "male" else "F") != matricule.sex:
        issues.append(
            _warn(
                "business-rule",
                expr,
                f"{expr}: matricule {matricule.value} codes sex {matricule.sex} (character 1 = "
                f"{matricule.sex_digit}) but Patient.gender is {gender}",
            )
        )
    birth = patient.get("birthDate")
    if isinstance(birth, str) and len(birth) >= 7 and birth[:4].isdigit():
        year, month = birth[2:4], birth[5:7]
        if year != matricule.year or (matricule.month_known and month != matricule.month):
            issues.append(
                _warn(
                    "business-rule",
                    expr,
                    f"{expr}: matricule {matricule.value} codes birth year/month "
                    f"{matricule.year}/{matricule.month} but Patient.birthDate is {birth}",
                )
            )
    return issues


def check_patient_identifiers(patient: Mapping[str, Any]) -> list[Issue]:
    """Issues of a Patient's INS identifiers, for every Patient write: https://hl7.fr/ig/fhir/core/StructureDefinition-fr-core-patient-ins.html."""
    issues: list[Issue] = []
    found = ins_identifiers(patient)
    for index, identifier, kind in found:
        own = _identifier_issues(index, identifier, kind)
        issues.extend(own)
        value = identifier.get("value")
        if not issues_are_errors(own) and isinstance(value, str):
            issues.extend(_coherence_issues(index, Matricule(value), patient))
    active: dict[tuple[str, str], list[int]] = {}
    for index, identifier, kind in found:
        value = identifier.get("value")
        if identifier.get("use") in ACTIVE_USES and isinstance(value, str):
            active.setdefault((SYSTEMS[kind], value), []).append(index)
    production = {k: v for k, v in active.items() if k[0] in (SYSTEMS[Kind.NIR], SYSTEMS[Kind.NIA])}
    if len(production) > 1:
        where = ", ".join(f"Patient.identifier[{i[0]}]" for i in production.values())
        issues.append(
            Issue(
                "error",
                "business-rule",
                f"{where}: an identity has one matricule INS in force; keep one with use "
                "official/temp and mark the others use old",
                tuple(f"Patient.identifier[{i[0]}]" for i in production.values()),
            )
        )
    return issues


def active_ins_values(patient: Mapping[str, Any]) -> frozenset[tuple[str, str]]:
    """(system, value) of the INS identifiers in force: https://hl7.fr/ig/fhir/core/StructureDefinition-fr-core-patient-ins.html."""
    out: set[tuple[str, str]] = set()
    for _, identifier, kind in active_ins(patient):
        value = identifier.get("value")
        if isinstance(value, str):
            out.add((SYSTEMS[kind], value))
    return frozenset(out)


def issues_are_errors(issues: Sequence[Issue]) -> bool:
    """True when any issue is an error or fatal: https://hl7.org/fhir/R4/valueset-issue-severity.html."""
    return any(i.severity in ("error", "fatal") for i in issues)
