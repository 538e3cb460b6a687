"""INS strict traits (traits stricts) of a Patient, in the INSi alphabet.

The strict traits returned by INSi with the matricule are: nom de naissance, liste des prénoms
de naissance (space-separated), premier prénom de naissance (taken from that list), date de
naissance, sexe (M/F) and the COG (code officiel géographique INSEE) of the birth place.
FR Core carries them in ``fr-core-patient-ins``: ``name`` with use ``official`` (``family`` =
birth name, one ``given`` = first birth first name, extension
``fr-core-patient-birth-list-given-name`` = the list), ``birthDate``, ``gender`` and the
``patient-birthPlace`` extension whose ``valueAddress`` carries the
``fr-core-address-insee-code`` extension.

Decisions (sources, and how sure):

* alphabet: INSi accepts ``^[A-Z\\-' ]+$`` for the birth name and ``^[A-Z\\-']+$`` per first
  name (third-party INSi clients, see domain-spec §1.5; medium-high confidence).
  :func:`normalise_name` removes diacritics, upper-cases, maps Œ→OE, Æ→AE, ß→SS (German
  upper-case convention) and Ø/Ł/Đ→O/L/D (no Unicode decomposition), maps typographic
  apostrophes and dashes to ``'`` and ``-``, collapses spaces; any other character (digits,
  dots, commas…) is refused. Double hyphens (``--``, French double family names) are kept.
* first birth first name: FR Core says it is extracted from the list and that a compound
  first name may be written "Anne-sophie" or "Anne Sophie", so ``given`` must be a prefix
  (one or more names) of the list, hyphens and spaces being equivalent for this check.
* birth date: FHIR ``date`` allows ``YYYY`` and ``YYYY-MM``; INSi works with full dates
  (``YYYY-MM-DD``). FR Core says exceptional INSi dates are converted "selon les règles du
  RNIV", which we could not read: partial dates are accepted with a warning, ``00`` day or
  month (not FHIR) is refused with a message pointing at the RNIV conversion. Low-medium
  confidence on the RNIV rule itself (the état-civil practice, IGREC 2004, is 31 December).
* sex: FHIR ``male``/``female`` → M/F; ``unknown``/``other`` leave the trait unset and are
  reported, because INSi only knows M and F (an INS identity always has one).
* birth place COG: 5 characters: 2 digits (01-95, and 20: Corsica before 1976) + 3 digits,
  2A/2B + 3 digits, 97x/98x + 2 digits (overseas), 99 + 3-digit INSEE country code. Anything
  else is refused. Medium-high confidence.

https://hl7.fr/ig/fhir/core/StructureDefinition-fr-core-patient-ins.html
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from maison.fhir.errors import Category, FhirError, Issue
from maison.services.ins.matricule import ins_identifiers

BIRTH_LIST_GIVEN_NAME_URL = (
    "https://hl7.fr/ig/fhir/core/StructureDefinition/fr-core-patient-birth-list-given-name"
)
BIRTH_PLACE_URL = "http://hl7.org/fhir/StructureDefinition/patient-birthPlace"
INSEE_CODE_URL = "https://hl7.fr/ig/fhir/core/StructureDefinition/fr-core-address-insee-code"
PATIENT_INS_PROFILE = "https://hl7.fr/ig/fhir/core/StructureDefinition/fr-core-patient-ins"

#: Names of the strict traits, as returned by :func:`strict_traits_changed`.
STRICT_TRAITS = (
    "birthName",
    "birthGivenNames",
    "firstBirthGivenName",
    "birthDate",
    "sex",
    "birthPlace",
)
#: Where each strict trait lives in a FR Core Patient (for messages).
TRAIT_PATHS = {
    "birthName": "Patient.name.where(use='official').family",
    "birthGivenNames": (
        f"Patient.name.where(use='official').extension('{BIRTH_LIST_GIVEN_NAME_URL}').valueString"
    ),
    "firstBirthGivenName": "Patient.name.where(use='official').given",
    "birthDate": "Patient.birthDate",
    "sex": "Patient.gender",
    "birthPlace": (
        f"Patient.extension('{BIRTH_PLACE_URL}').valueAddress.extension('{INSEE_CODE_URL}')"
        ".valueCoding.code"
    ),
}
_FIELD_OF_TRAIT = {
    "birthName": "birth_name",
    "birthGivenNames": "given_names",
    "firstBirthGivenName": "first_given",
    "birthDate": "birth_date",
    "sex": "sex",
    "birthPlace": "birth_place",
}


@dataclass(frozen=True)
class Traits:
    """The strict traits of one identity, normalised to the INSi alphabet (issues not compared)."""

    birth_name: str | None = None
    given_names: tuple[str, ...] = ()
    first_given: str | None = None
    birth_date: str | None = None
    sex: str | None = None  # "M" | "F"
    birth_place: str | None = None  # COG, 5 characters
    issues: tuple[Issue, ...] = field(default=(), compare=False)

    @property
    def complete(self) -> bool:
        """All strict traits present, with a full birth date."""
        return bool(
            self.birth_name
            and self.given_names
            and self.first_given
            and self.birth_date
            and len(self.birth_date) == 10
            and self.sex
            and self.birth_place
        )


_LETTER_MAP = {
    "Œ": "OE",
    "œ": "OE",
    "Æ": "AE",
    "æ": "AE",
    "ß": "SS",
    "ẞ": "SS",
    "Ø": "O",
    "ø": "O",
    "Ł": "L",
    "ł": "L",
    "Đ": "D",
    "đ": "D",
}
_APOSTROPHES = "\u2019\u2018\u02bc\u00b4\u0060\u2032"
_DASHES = "\u2010\u2011\u2012\u2013\u2014\u2212"
_INSI_NAME = re.compile(r"^[A-Z' -]+$")


def normalise_name(value: object, expression: str = "") -> tuple[str, list[str]]:
    """A name in the INSi alphabet, with notes on what changed (422 if impossible): https://esante.gouv.fr/produits-services/referentiel-ins."""
    where = f"{expression}: " if expression else ""
    if not isinstance(value, str):
        raise _unprocessable(
            expression, f"{where}a name is a string, not {type(value).__name__}", "value"
        )
    notes: list[str] = []
    text = value
    if any(c in _APOSTROPHES for c in text):
        text = "".join("'" if c in _APOSTROPHES else c for c in text)
        notes.append("typographic apostrophes replaced with '")
    if any(c in _DASHES for c in text):
        text = "".join("-" if c in _DASHES else c for c in text)
        notes.append("dashes replaced with hyphens")
    mapped = sorted({c for c in text if c in _LETTER_MAP})
    if mapped:
        text = "".join(_LETTER_MAP.get(c, c) for c in text)
        notes.append(
            "letters spelled out: " + ", ".join(f"{c}→{_LETTER_MAP[c].upper()}" for c in mapped)
        )
    decomposed = unicodedata.normalize("NFKD", text)
    if any(unicodedata.combining(c) for c in decomposed):
        notes.append("diacritics removed")
    text = "".join(c for c in decomposed if not unicodedata.combining(c))
    upper = text.upper()
    if upper != text:
        notes.append("upper-cased")
    text = upper
    spaced = re.sub(r"\s+", " ", text)
    if spaced.strip() != text:
        notes.append("spaces trimmed and collapsed")
    text = spaced.strip()
    if not text:
        raise _unprocessable(expression, f"{where}the name is empty", "required")
    if not _INSI_NAME.fullmatch(text):
        bad = sorted({c for c in text if not re.match(r"[A-Z' -]", c)})
        shown = ", ".join(repr(c) for c in bad)
        raise _unprocessable(
            expression,
            f"{where}{value!r} contains characters the INSi alphabet does not allow: {shown} "
            "(allowed: letters A-Z, with or without accents, space, hyphen, apostrophe)",
            "value",
        )
    return text, notes


def _unprocessable(expression: str, message: str, code: str) -> FhirError:
    expr = (expression,) if expression else ()
    return FhirError(Category.UNPROCESSABLE, message, [Issue("error", code, message, expr)])


_FHIR_DATE = re.compile(r"^(\d{4})(?:-(\d{2})(?:-(\d{2}))?)?$", re.ASCII)
_COG = re.compile(r"^(?:(?:0[1-9]|[1-8]\d|9[0-5])\d{3}|2[AB]\d{3}|9[789]\d{3})$", re.ASCII)


def check_birth_date(
    value: object, today: date, expression: str = "Patient.birthDate"
) -> list[Issue]:
    """Issues of a birth date as an INS strict trait: https://hl7.org/fhir/R4/datatypes.html#date."""
    where = f"{expression}: "
    if not isinstance(value, str):
        return [Issue("error", "value", f"{where}a birth date is a string", (expression,))]
    m = _FHIR_DATE.fullmatch(value)
    if not m:
        return [
            Issue(
                "error",
                "value",
                f"{where}{value!r} is not a date (YYYY-MM-DD, YYYY-MM or YYYY)",
                (expression,),
            )
        ]
    year, month, day = m.group(1), m.group(2), m.group(3)
    if "00" in (month, day):
        return [
            Issue(
                "error",
                "value",
                f"{where}{value!r}: FHIR has no day or month 00; store the date given by the "
                "RNIV conversion of exceptional INSi dates, or a partial date (YYYY or YYYY-MM)",
                (expression,),
            )
        ]
    if month is not None and not 1 <= int(month) <= 12:
        return [Issue("error", "value", f"{where}{value!r}: no month {month}", (expression,))]
    if day is not None:
        try:
            born = date(int(year), int(month), int(day))
        except ValueError:
            return [
                Issue("error", "value", f"{where}{value!r} is not a calendar date", (expression,))
            ]
        if born > today:
            return [
                Issue(
                    "error",
                    "value",
                    f"{where}{value} is in the future (today is {today.isoformat()})",
                    (expression,),
                )
            ]
        return []
    earliest = f"{year}-{month or '01'}-01"
    if earliest > today.isoformat():
        return [
            Issue(
                "error",
                "value",
                f"{where}{value} is in the future (today is {today.isoformat()})",
                (expression,),
            )
        ]
    return [
        Issue(
            "warning",
            "incomplete",
            f"{where}{value} is a partial date; INSi retrieval and verification use a full "
            "date (YYYY-MM-DD)",
            (expression,),
        )
    ]


def check_cog(value: object, expression: str = "") -> list[Issue]:
    """Issues of a birth-place COG (commune, or 99 + country): https://www.insee.fr/fr/information/2560452."""
    where = f"{expression}: " if expression else ""
    expr = (expression,) if expression else ()
    if isinstance(value, str) and _COG.fullmatch(value):
        return []
    return [
        Issue(
            "error",
            "value",
            f"{where}{value!r} is not a COG: expected 5 characters, département + commune "
            "(01001, 2A004, 97209) or 99 + INSEE country code for a birth abroad (99350)",
            expr,
        )
    ]


def _ext(element: Mapping[str, Any], url: str) -> list[tuple[int, Mapping[str, Any]]]:
    exts = element.get("extension")
    if not isinstance(exts, list):
        return []
    return [(i, e) for i, e in enumerate(exts) if isinstance(e, Mapping) and e.get("url") == url]


def carries_ins(patient: Mapping[str, Any]) -> bool:
    """True when the Patient carries an INS identifier or claims fr-core-patient-ins: https://hl7.fr/ig/fhir/core/StructureDefinition-fr-core-patient-ins.html."""
    meta = patient.get("meta")
    profiles = meta.get("profile") if isinstance(meta, Mapping) else None
    claims = isinstance(profiles, list) and any(
        isinstance(p, str) and p.split("|")[0] == PATIENT_INS_PROFILE for p in profiles
    )
    return claims or bool(ins_identifiers(patient))


def _tokens(text: str) -> list[str]:
    return text.replace("-", " ").split()


def _names(
    patient: Mapping[str, Any], issues: list[Issue]
) -> tuple[str | None, tuple[str, ...], str | None]:
    names = patient.get("name")
    official = [
        (i, n)
        for i, n in enumerate(names if isinstance(names, list) else [])
        if isinstance(n, Mapping) and n.get("use") == "official"
    ]
    if not official:
        issues.append(
            Issue(
                "error",
                "required",
                "Patient.name: no name with use 'official' (the birth name, nom de naissance)",
                ("Patient.name",),
            )
        )
        return None, (), None
    index, name = official[0]
    base = f"Patient.name[{index}]"
    if len(official) > 1:
        issues.append(
            Issue(
                "error",
                "business-rule",
                f"Patient.name: {len(official)} names with use 'official'; an identity has one "
                "birth name",
                tuple(f"Patient.name[{i}]" for i, _ in official),
            )
        )
    birth_name = _normalised(name.get("family"), f"{base}.family", "birth name", issues)
    givens = name.get("given")
    first_given: str | None = None
    if not isinstance(givens, list) or not givens:
        issues.append(
            Issue(
                "error",
                "required",
                f"{base}.given: missing; it holds the first birth first name",
                (f"{base}.given",),
            )
        )
    else:
        if len(givens) > 1:
            issues.append(
                Issue(
                    "error",
                    "business-rule",
                    f"{base}.given: {len(givens)} values; FR Core INS keeps exactly one (the "
                    "first birth first name) and puts all birth first names in extension "
                    f"{BIRTH_LIST_GIVEN_NAME_URL}",
                    (f"{base}.given",),
                )
            )
        first_given = _normalised(givens[0], f"{base}.given[0]", "first name", issues)
    lists = _ext(name, BIRTH_LIST_GIVEN_NAME_URL)
    given_names: tuple[str, ...] = ()
    if not lists:
        issues.append(
            Issue(
                "error",
                "required",
                f"{base}: missing extension {BIRTH_LIST_GIVEN_NAME_URL} (the list of birth "
                "first names, space-separated, as INSi returns it)",
                (f"{base}.extension",),
            )
        )
    else:
        if len(lists) > 1:
            issues.append(
                Issue(
                    "error",
                    "business-rule",
                    f"{base}: {len(lists)} birth-list-given-name extensions; expected one",
                    (f"{base}.extension",),
                )
            )
        ext_index, ext = lists[0]
        expr = f"{base}.extension[{ext_index}].valueString"
        raw = ext.get("valueString")
        if not isinstance(raw, str) or not raw.strip():
            issues.append(
                Issue(
                    "error",
                    "required",
                    f"{expr}: the list of birth first names is empty",
                    (expr,),
                )
            )
        else:
            listed = _normalised(raw, expr, "list of birth first names", issues)
            given_names = tuple(listed.split(" ")) if listed else ()
    if first_given and given_names:
        head, full = _tokens(first_given), _tokens(" ".join(given_names))
        if full[: len(head)] != head:
            issues.append(
                Issue(
                    "error",
                    "business-rule",
                    f"{base}.given[0]: first birth first name {first_given!r} is not the first of "
                    f"the birth first names {' '.join(given_names)!r}",
                    (f"{base}.given[0]",),
                )
            )
    return birth_name, given_names, first_given


def _normalised(value: object, expression: str, label: str, issues: list[Issue]) -> str | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        issues.append(
            Issue("error", "required", f"{expression}: the {label} is missing", (expression,))
        )
        return None
    try:
        text, _ = normalise_name(value, expression)
    except FhirError as err:
        issues.extend(err.issues)
        return re.sub(r"\s+", " ", value).strip().upper() if isinstance(value, str) else None
    return text


def _sex(patient: Mapping[str, Any], issues: list[Issue]) -> str | None:
    gender = patient.get("gender")
    if gender == "male":
        return "M"
    if gender == "female":
        return "F"
    if gender is None:
        message = "Patient.gender: missing; the sex (M/F) is a strict trait of an INS identity"
        issues.append(Issue("error", "required", message, ("Patient.gender",)))
    else:
        message = (
            f"Patient.gender: {gender!r} cannot carry an INS: INSi knows the sex as M or F "
            "(male/female)"
        )
        issues.append(Issue("error", "business-rule", message, ("Patient.gender",)))
    return None


def _birth_place(patient: Mapping[str, Any], issues: list[Issue]) -> str | None:
    places = _ext(patient, BIRTH_PLACE_URL)
    if not places:
        issues.append(
            Issue(
                "error",
                "required",
                f"Patient.extension: missing {BIRTH_PLACE_URL} with the COG of the birth place "
                f"(valueAddress.extension {INSEE_CODE_URL})",
                ("Patient.extension",),
            )
        )
        return None
    index, place = places[0]
    base = f"Patient.extension[{index}]"
    if len(places) > 1:
        issues.append(
            Issue(
                "error",
                "business-rule",
                f"Patient.extension: {len(places)} birth places; expected one",
                tuple(f"Patient.extension[{i}]" for i, _ in places),
            )
        )
    address = place.get("valueAddress")
    codes = _ext(address, INSEE_CODE_URL) if isinstance(address, Mapping) else []
    if not codes:
        issues.append(
            Issue(
                "error",
                "required",
                f"{base}.valueAddress: missing extension {INSEE_CODE_URL} (valueCoding.code = "
                "COG of the birth commune, or 99 + country code)",
                (f"{base}.valueAddress",),
            )
        )
        return None
    code_index, code_ext = codes[0]
    expr = f"{base}.valueAddress.extension[{code_index}].valueCoding.code"
    coding = code_ext.get("valueCoding")
    code = coding.get("code") if isinstance(coding, Mapping) else None
    if code is None:
        issues.append(Issue("error", "required", f"{expr}: the COG is missing", (expr,)))
        return None
    found = check_cog(code, expr)
    issues.extend(found)
    return code if isinstance(code, str) else None


def traits_from_patient(patient: Mapping[str, Any], today: date) -> Traits:
    """The strict traits of a FR Core Patient, with issues: https://hl7.fr/ig/fhir/core/StructureDefinition-fr-core-patient-ins.html."""
    issues: list[Issue] = []
    birth_name, given_names, first_given = _names(patient, issues)
    birth_date = patient.get("birthDate")
    if birth_date is None:
        issues.append(
            Issue(
                "error",
                "required",
                "Patient.birthDate: missing; the birth date is a strict trait",
                ("Patient.birthDate",),
            )
        )
    else:
        issues.extend(check_birth_date(birth_date, today))
    sex = _sex(patient, issues)
    birth_place = _birth_place(patient, issues)
    return Traits(
        birth_name=birth_name,
        given_names=given_names,
        first_given=first_given,
        birth_date=birth_date if isinstance(birth_date, str) else None,
        sex=sex,
        birth_place=birth_place,
        issues=tuple(issues),
    )


def traits_from_insi(
    birth_name: str,
    given_names: str,
    sex: str,
    birth_date: str,
    birth_place: str | None,
) -> Traits:
    """Traits of an INSi answer (TIQ element): https://esante.gouv.fr/produits-services/referentiel-ins."""
    name, _ = normalise_name(birth_name, "NomNaissance")
    listed, _ = normalise_name(given_names, "ListePrenom")
    names = tuple(listed.split(" "))
    if sex not in ("M", "F"):
        raise _unprocessable("Sexe", f"Sexe: INSi returns M or F, not {sex!r}", "value")
    issues = list(check_birth_date(birth_date, date.max, "DateNaissance"))
    if birth_place is not None:
        issues.extend(check_cog(birth_place, "LieuNaissance"))
    errors = [i for i in issues if i.severity == "error"]
    if errors:
        raise FhirError(Category.UNPROCESSABLE, errors[0].diagnostics, errors)
    return Traits(
        birth_name=name,
        given_names=names,
        first_given=names[0],
        birth_date=birth_date,
        sex=sex,
        birth_place=birth_place,
        issues=tuple(issues),
    )


def strict_traits_changed(old: Traits, new: Traits) -> list[str]:
    """Names of the strict traits that differ after INSi normalisation: https://esante.gouv.fr/produits-services/referentiel-ins."""
    return [
        trait
        for trait in STRICT_TRAITS
        if getattr(old, _FIELD_OF_TRAIT[trait]) != getattr(new, _FIELD_OF_TRAIT[trait])
    ]
