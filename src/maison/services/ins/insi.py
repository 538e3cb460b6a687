"""Our INSi-compatible téléservice: ``Patient/$ins-search`` and ``Patient/$ins-verify``.

Pure logic, no I/O: the identity base is reached through injected lookups (``by_traits``,
``by_matricule``) returning records with the attributes of :class:`IdentityRecord`. Parameter
names follow the INSi vocabulary (TIQ, INSACTIF, INSHISTO, CodeCR, LibelleCR; domain-spec §1.5)
so a vendor maps one service onto the other; the OperationDefinitions are in
``maison/data/operations``.

Decisions (sources, and how sure):

* search: ``by_traits(NomNaissance, DateNaissance, Sexe)`` then the candidates whose birth
  first names contain ``Prenom`` (a whole name: ``JEAN`` does not find ``JEAN-PIERRE``), then,
  when given, whose birthplace COG equals ``LieuNaissance``. One left: CR 00; none: 01; several:
  02, without any identity, and a libellé that says to retry with other first names then the
  COG, as the real service does (esante-bretagne; high confidence on the codes, the libellés
  are ours, modelled on the real ones).
* one first name per call: the real service takes one ``Prenom`` and clients loop over the
  first names (third-party INSi clients; medium-high confidence). Several ``Prenom`` values,
  or one holding a space or a comma, are refused with that rule spelled out.
* normalisation: traits are put in the INSi alphabet (:func:`traits.normalise_name`: upper
  case, no diacritics…), ``m``/``f`` → ``M``/``F``, ``2a004`` → ``2A004``, separators removed
  from a matricule, ``00`` day/month (INSi's unknown) → a FHIR partial date; each change is a
  warning returned with the answer, never a silent rewrite.
* verification (the real operation was not seen, ❓): the identity is looked up by matricule
  (an INSHISTO one finds the identity, is reported, and the active INS is returned); the
  traits sent are compared after normalisation: ``Prenom`` must be one of the birth first
  names, ``ListePrenom`` the whole list; ``LieuNaissance`` and ``OID`` only when sent. The
  default OID is derived from the matricule (first digit 3, 4, 7, 8: NIA, else NIR); a NIA sent
  with the NIR OID (or the reverse) is refused rather than guessed.
* evidence: any CR 00 (search, or verify whatever its verdict) is a record that the service
  returned *these* traits for *this* matricule; :func:`reliability.check_status` then compares
  them with the Patient written, so a Patient still carrying mismatching traits gets no RECUP.

https://esante.gouv.fr/produits-services/referentiel-ins
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any, Final, Protocol

from maison.fhir.errors import Category, FhirError, Issue, operation_outcome
from maison.services.ins import matricule as ins_matricule
from maison.services.ins.reference import (
    BIRTH_PLACE,
    INS_TYPES,
    OID_NIA,
    OID_NIR,
    ReferenceIdentity,
    to_patient,
)
from maison.services.ins.reliability import RECUP, InsiEvidence
from maison.services.ins.traits import (
    check_birth_date,
    check_cog,
    normalise_name,
    traits_from_insi,
)

#: Canonical base of our own conformance artefacts (as the IPP/NDA systems of the demo data).
CANONICAL_BASE: Final = "https://maison.example.org/fhir"
SEARCH_URL: Final = f"{CANONICAL_BASE}/OperationDefinition/ins-search"
VERIFY_URL: Final = f"{CANONICAL_BASE}/OperationDefinition/ins-verify"
#: The OperationDefinition files, by operation code.
OPERATION_DEFINITIONS: Final[dict[str, Path]] = {
    "ins-search": Path(__file__).resolve().parents[2] / "data/operations/Patient-ins-search.json",
    "ins-verify": Path(__file__).resolve().parents[2] / "data/operations/Patient-ins-verify.json",
}

CR_FOUND: Final = "00"
CR_NONE: Final = "01"
CR_SEVERAL: Final = "02"
LIBELLE_FOUND: Final = "OK"
LIBELLE_NONE: Final = "Aucune identité trouvée"
LIBELLE_SEVERAL: Final = "Plusieurs identités trouvées"

MATCH: Final = "match"
MISMATCH: Final = "mismatch"

_SEARCH: Final = "Patient/$ins-search"
_VERIFY: Final = "Patient/$ins-verify"


class IdentityRecord(Protocol):
    """One identity of the reference base as the store returns it (maison.store.identity_base)."""

    @property
    def matricule(self) -> str: ...  # 15 characters
    @property
    def oid(self) -> str: ...  # assigning authority, bare or urn:oid:
    @property
    def birth_name(self) -> str: ...
    @property
    def given_names(self) -> tuple[str, ...]: ...
    @property
    def sex(self) -> str: ...  # M | F
    @property
    def birth_date(self) -> str: ...  # YYYY-MM-DD, or partial YYYY-MM / YYYY
    @property
    def birth_place(self) -> str: ...  # COG, or ""
    @property
    def history(self) -> tuple[str, ...]: ...  # INSHISTO matricules


#: ``by_traits(birth_name, birth_date, sex)``: the identities with these three traits.
ByTraits = Callable[[str, str, str], Sequence[IdentityRecord]]
#: ``by_matricule(matricule)``: the identity whose active or historical matricule it is.
ByMatricule = Callable[[str], IdentityRecord | None]


@dataclass(frozen=True)
class SearchRequest:
    """A parsed ``$ins-search`` request: traits in the INSi alphabet, notes on what changed."""

    birth_name: str
    given_name: str
    sex: str
    birth_date: str
    birth_place: str | None = None
    issues: tuple[Issue, ...] = field(default=(), compare=False)


@dataclass(frozen=True)
class VerifyRequest:
    """A parsed ``$ins-verify`` request: matricule, OID and the traits to check."""

    matricule: str
    oid: str  # bare OID
    oid_given: bool  # False: derived from the matricule, not compared
    birth_name: str
    given_names: tuple[str, ...]  # ListePrenom, or the one Prenom
    given_as_list: bool  # True: ListePrenom (whole list compared); False: Prenom (one of them)
    sex: str
    birth_date: str
    birth_place: str | None = None
    issues: tuple[Issue, ...] = field(default=(), compare=False)


@dataclass(frozen=True)
class Difference:
    """One trait whose sent value differs from the reference identity (TIQ vocabulary)."""

    trait: str
    sent: str
    reference: str


@dataclass(frozen=True)
class InsiResponse:
    """The answer of the téléservice: CR code and libellé, the identity when CR 00."""

    cr: str
    libelle: str
    identity: IdentityRecord | None = None
    verdict: str | None = None  # verify only: match | mismatch
    differences: tuple[Difference, ...] = ()
    historical: str | None = None  # verify: the INSHISTO matricule the client sent
    issues: tuple[Issue, ...] = ()


# --------------------------------------------------------------------------------------------
# Request parsing
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Spec:
    type: str  # FHIR type of the value
    required: bool
    about: str  # what the parameter is, for messages


_TRAIT_SPECS: Final[dict[str, _Spec]] = {
    "NomNaissance": _Spec("string", True, "the birth name (nom de naissance)"),
    "Prenom": _Spec("string", True, "one birth first name (prénom de naissance)"),
    "Sexe": _Spec("code", True, "the sex, M or F"),
    "DateNaissance": _Spec("date", True, "the birth date, YYYY-MM-DD"),
    "LieuNaissance": _Spec("code", False, "the COG INSEE code of the birthplace"),
}
_VERIFY_SPECS: Final[dict[str, _Spec]] = {
    "INS": _Spec("string", False, "the matricule INS, 15 characters (13 + key)"),
    "NumIdentifiant": _Spec("string", False, "the 13 first characters of the matricule INS"),
    "Cle": _Spec("string", False, "the 2-digit key of the matricule INS"),
    "OID": _Spec("oid", False, "the OID of the authority that assigned the matricule INS"),
    "NomNaissance": _TRAIT_SPECS["NomNaissance"],
    "Prenom": _Spec("string", False, "one birth first name (prénom de naissance)"),
    "ListePrenom": _Spec("string", False, "all birth first names, separated by spaces"),
    "Sexe": _TRAIT_SPECS["Sexe"],
    "DateNaissance": _TRAIT_SPECS["DateNaissance"],
    "LieuNaissance": _TRAIT_SPECS["LieuNaissance"],
}
#: The input parameters each operation reads (kept equal to the OperationDefinitions by a test).
INPUT_PARAMETERS: Final = {"ins-search": _TRAIT_SPECS, "ins-verify": _VERIFY_SPECS}
#: value[x] keys whose value is a JSON string, accepted for any parameter.
_STRING_VALUES: Final = frozenset(
    {"valueString", "valueCode", "valueDate", "valueOid", "valueId", "valueUri"}
)
_MATRICULE_SEPARATORS: Final = re.compile(r"[\s.\-]")
_DATE_INPUT: Final = re.compile(r"(\d{4})(?:-(\d{2})(?:-(\d{2}))?)?", re.ASCII)
_FRENCH_DATE: Final = re.compile(r"(\d{2})/(\d{2})/(\d{4})", re.ASCII)
_ALPHABET: Final = "INSi alphabet: A-Z, space, hyphen, apostrophe"


class _Problems:
    """Issues gathered while parsing, so one answer lists every problem."""

    def __init__(self) -> None:
        self.issues: list[Issue] = []
        self.structural = False
        self.broken: set[str] = set()  # parameters sent in a wrong shape (already reported)

    def invalid(self, where: str, message: str, code: str = "structure") -> None:
        self.structural = True
        self.issues.append(Issue("error", code, message, (where,) if where else ()))

    def unprocessable(self, where: str, message: str, code: str = "value") -> None:
        self.issues.append(Issue("error", code, message, (where,) if where else ()))

    def warn(self, where: str, message: str) -> None:
        self.issues.append(Issue("warning", "informational", message, (where,)))

    def inform(self, where: str, message: str) -> None:
        self.issues.append(Issue("information", "informational", message, (where,)))

    def raise_if_errors(self, operation: str) -> None:
        errors = [i for i in self.issues if i.severity in ("error", "fatal")]
        if not errors:
            return
        category = Category.INVALID if self.structural else Category.UNPROCESSABLE
        if len(errors) == 1:
            message = errors[0].diagnostics
        else:
            shown = " | ".join(i.diagnostics for i in errors)
            message = f"{operation}: {len(errors)} problems: {shown}"
        raise FhirError(category, message, list(self.issues))


def _value_key(spec: _Spec) -> str:
    return "value" + spec.type[0].upper() + spec.type[1:]


def _collect(
    source: object, specs: Mapping[str, _Spec], operation: str, problems: _Problems
) -> dict[str, list[str]]:
    """The string values of each known parameter, from a Parameters body or a GET query."""
    pairs: list[tuple[str, str]] = []
    known = ", ".join(specs)
    if isinstance(source, Mapping):
        kind = source.get("resourceType")
        if kind != "Parameters":
            problems.invalid(
                "",
                f"{operation}: the request body is a Parameters resource, not {kind!r}",
            )
            return {}
        entries = source.get("parameter", [])
        if not isinstance(entries, list):
            problems.invalid("Parameters.parameter", "Parameters.parameter must be a list")
            return {}
        for index, entry in enumerate(entries):
            where = f"Parameters.parameter[{index}]"
            if not isinstance(entry, Mapping):
                problems.invalid(where, f"{where} is not a JSON object")
                continue
            name = entry.get("name")
            if not isinstance(name, str) or not name:
                problems.invalid(where, f"{where} has no name")
                continue
            spec = specs.get(name)
            if spec is None:
                problems.invalid(
                    name, f"{name}: unknown parameter of {operation} (expected: {known})"
                )
                continue
            expected = _value_key(spec)
            problems.broken.add(name)  # until its value is read
            if "part" in entry or "resource" in entry:
                problems.invalid(name, f"{name}: takes a {expected}, not parts or a resource")
                continue
            keys = [k for k in entry if isinstance(k, str) and k.startswith("value")]
            if len(keys) != 1:
                got = "no value" if not keys else f"{len(keys)} values ({', '.join(keys)})"
                problems.invalid(name, f"{name}: {got}; send one {expected} ({spec.about})")
                continue
            value = entry[keys[0]]
            if keys[0] not in _STRING_VALUES or not isinstance(value, str):
                problems.invalid(name, f"{name}: expected {expected} ({spec.about}), got {keys[0]}")
                continue
            problems.broken.discard(name)
            pairs.append((name, value))
    elif isinstance(source, str | bytes) or not isinstance(source, Sequence):
        problems.invalid(
            "", f"{operation}: expected a Parameters resource or query parameters (name, value)"
        )
        return {}
    else:
        for index, pair in enumerate(source):
            if not (
                isinstance(pair, tuple | list)
                and len(pair) == 2
                and isinstance(pair[0], str)
                and isinstance(pair[1], str)
            ):
                problems.invalid("", f"{operation}: query parameter {index} is not (name, value)")
                continue
            name, value = pair
            if name.startswith("_"):
                continue  # _format, _pretty…: for the HTTP layer
            if name not in specs:
                problems.invalid(
                    name, f"{name}: unknown parameter of {operation} (expected: {known})"
                )
                continue
            pairs.append((name, value))
    values: dict[str, list[str]] = {}
    for name, value in pairs:
        values.setdefault(name, []).append(value)
    return values


def _one(
    values: Mapping[str, list[str]],
    name: str,
    spec: _Spec,
    problems: _Problems,
    several: str = "",
) -> str | None:
    found = values.get(name, [])
    if not found:
        if spec.required and name not in problems.broken:
            problems.invalid(name, f"{name} is missing: {spec.about} (1..1)", "required")
        return None
    if len(found) > 1:
        shown = ", ".join(repr(v) for v in found)
        problems.invalid(
            name, f"{name} given {len(found)} times ({shown}); at most once{several}", "structure"
        )
        return None
    value = found[0]
    if not value.strip():
        problems.unprocessable(name, f"{name} is empty: expected {spec.about}", "required")
        return None
    return value


def _one_first_name_rule(operation: str) -> str:
    rule = (
        ": INSi takes ONE birth first name per call; call "
        f"{_SEARCH} once per birth first name, the first one first, and stop at the first CR 00 "
        "(on CR 02, try the next first name, then add LieuNaissance); write a composed first name "
        "with a hyphen (JEAN-PIERRE)"
    )
    if operation == _VERIFY:
        rule += "; to check all first names, send them space-separated in ListePrenom"
    return rule


def _name(raw: str, param: str, problems: _Problems) -> str | None:
    try:
        text, notes = normalise_name(raw, param)
    except FhirError as err:
        problems.issues.extend(err.issues)
        return None
    if not any("A" <= c <= "Z" for c in text):
        problems.unprocessable(param, f"{param}: {raw!r} holds no letter")
        return None
    if notes:
        problems.warn(
            param, f"{param}: {raw!r} normalised to {text!r} ({_ALPHABET}; {', '.join(notes)})"
        )
    return text


def _first_name(raw: str, operation: str, problems: _Problems) -> str | None:
    if any(c in raw for c in ",;/+"):
        problems.unprocessable(
            "Prenom", f"Prenom: {raw!r} holds several first names{_one_first_name_rule(operation)}"
        )
        return None
    text = _name(raw, "Prenom", problems)
    if text is not None and " " in text:
        problems.unprocessable(
            "Prenom",
            f"Prenom: {raw!r} holds several first names (or a composed one written with a "
            f"space){_one_first_name_rule(operation)}",
        )
        return None
    return text


def _sex(raw: str, problems: _Problems) -> str | None:
    value = raw.strip().upper()
    if value in ("M", "F"):
        if value != raw:
            problems.warn("Sexe", f"Sexe: {raw!r} normalised to {value!r}")
        return value
    hint = {"male": "; FHIR gender male is M", "female": "; FHIR gender female is F"}.get(
        raw.strip().lower(), ""
    )
    problems.unprocessable(
        "Sexe",
        f"Sexe: {raw!r} is not M or F: INSi knows the sex as M (masculin) or F (féminin) only; "
        f"an identity of unknown or other sex has no INS{hint}",
    )
    return None


def _birth_date(raw: str, today: date | None, problems: _Problems) -> str | None:
    value = raw.strip()
    match = _DATE_INPUT.fullmatch(value)
    if match is None:
        hint = ""
        french = _FRENCH_DATE.fullmatch(value)
        if french:
            hint = f"; did you mean {french[3]}-{french[2]}-{french[1]}?"
        problems.unprocessable(
            "DateNaissance",
            f"DateNaissance: {raw!r} is not a date: expected YYYY-MM-DD (YYYY-MM or YYYY when the "
            f"day or month is unknown){hint}",
        )
        return None
    year, month, day = match.groups()
    if month == "00" and day not in (None, "00"):
        problems.unprocessable(
            "DateNaissance",
            f"DateNaissance: {raw!r} has a day but month 00 (unknown month); send {year}",
        )
        return None
    if month in (None, "00"):
        text = year
    elif day in (None, "00"):
        text = f"{year}-{month}"
    else:
        text = f"{year}-{month}-{day}"
    errors = [
        i
        for i in check_birth_date(text, today or date.max, "DateNaissance")
        if i.severity == "error"
    ]
    if errors:
        problems.issues.extend(errors)
        return None
    if "00" in (month, day):
        problems.warn(
            "DateNaissance",
            f"DateNaissance: {raw!r} read as {text!r}: 00 marks an unknown day or month in INSi; "
            "FHIR writes a partial date",
        )
    elif text != raw:
        problems.warn("DateNaissance", f"DateNaissance: {raw!r} normalised to {text!r}")
    if len(text) < 10:
        problems.inform(
            "DateNaissance",
            f"DateNaissance: {text} is a partial date (day or month unknown): only identities "
            "recorded with this same partial date are found",
        )
    return text


def _cog(raw: str, problems: _Problems) -> str | None:
    value = raw.strip().upper()
    if check_cog(value):
        problems.issues.extend(check_cog(raw, "LieuNaissance"))
        return None
    if value != raw:
        problems.warn("LieuNaissance", f"LieuNaissance: {raw!r} normalised to {value!r}")
    return value


def _birth_name(values: Mapping[str, list[str]], problems: _Problems) -> str | None:
    raw = _one(values, "NomNaissance", _TRAIT_SPECS["NomNaissance"], problems)
    return _name(raw, "NomNaissance", problems) if raw is not None else None


def _other_traits(
    values: Mapping[str, list[str]], today: date | None, problems: _Problems
) -> tuple[str | None, str | None, str | None]:
    """Sexe, DateNaissance, LieuNaissance."""
    raw_sex = _one(values, "Sexe", _TRAIT_SPECS["Sexe"], problems)
    sex = _sex(raw_sex, problems) if raw_sex is not None else None
    raw_date = _one(values, "DateNaissance", _TRAIT_SPECS["DateNaissance"], problems)
    born = _birth_date(raw_date, today, problems) if raw_date is not None else None
    raw_place = _one(values, "LieuNaissance", _TRAIT_SPECS["LieuNaissance"], problems)
    place = _cog(raw_place, problems) if raw_place is not None else None
    return sex, born, place


def search_request(
    source: Mapping[str, Any] | Sequence[tuple[str, str]], today: date | None = None
) -> SearchRequest:
    """Parse ``$ins-search`` (Parameters or GET pairs; 400/422): https://hl7.org/fhir/R4/operations.html#request."""
    problems = _Problems()
    values = _collect(source, _TRAIT_SPECS, _SEARCH, problems)
    name = _birth_name(values, problems)
    raw_first = _one(
        values, "Prenom", _TRAIT_SPECS["Prenom"], problems, _one_first_name_rule(_SEARCH)
    )
    first = _first_name(raw_first, _SEARCH, problems) if raw_first is not None else None
    sex, born, place = _other_traits(values, today, problems)
    problems.raise_if_errors(_SEARCH)
    assert name is not None and first is not None and sex is not None and born is not None
    return SearchRequest(name, first, sex, born, place, tuple(problems.issues))


def _verify_matricule(values: Mapping[str, list[str]], problems: _Problems) -> str | None:
    has_ins = "INS" in values
    has_split = "NumIdentifiant" in values or "Cle" in values
    if has_ins and has_split:
        problems.invalid(
            "INS",
            "INS: send the matricule either in INS (15 characters) or in NumIdentifiant + Cle, "
            "not both",
        )
        return None
    if not has_ins and not has_split:
        if problems.broken & {"INS", "NumIdentifiant", "Cle"}:
            return None
        problems.invalid(
            "INS",
            "INS is missing: the matricule INS to verify, 15 characters (13 + the 2-digit key), "
            "or NumIdentifiant (13) + Cle (2)",
            "required",
        )
        return None
    if has_ins:
        raw_ins = _one(values, "INS", _VERIFY_SPECS["INS"], problems)
        if raw_ins is None:
            return None
        compact = _compact(raw_ins, "INS", problems)
        errors = [i for i in ins_matricule.check(compact, None, "INS") if i.severity == "error"]
        if errors:
            problems.issues.extend(errors)
            return None
        return compact
    raw_body = _one(values, "NumIdentifiant", _VERIFY_SPECS["NumIdentifiant"], problems)
    raw_key = _one(values, "Cle", _VERIFY_SPECS["Cle"], problems)
    for param in ("NumIdentifiant", "Cle"):
        if param not in values and param not in problems.broken:
            problems.invalid(
                param,
                f"{param} is missing: NumIdentifiant (13 characters) and Cle (2 digits) go "
                "together",
                "required",
            )
    if raw_body is None or raw_key is None:
        return None
    body = _compact(raw_body, "NumIdentifiant", problems)
    key = _compact(raw_key, "Cle", problems)
    if len(body) != 13:
        problems.unprocessable(
            "NumIdentifiant",
            f"NumIdentifiant: {raw_body!r} has {len(body)} characters; expected the 13 first "
            "characters of the matricule INS",
        )
        return None
    if len(key) != 2 or not (key.isascii() and key.isdigit()):
        problems.unprocessable("Cle", f"Cle: {raw_key!r} is not a 2-digit key")
        return None
    try:
        expected: str | None = ins_matricule.compute_key(body)
    except ValueError:
        expected = None
    if (
        expected is not None
        and key != expected
        and not ins_matricule.issues_are_errors(ins_matricule.check(body + expected))
    ):
        problems.unprocessable(
            "Cle", f"Cle: {key} is not the key of NumIdentifiant {body}; expected {expected}"
        )
        return None
    errors = [
        i for i in ins_matricule.check(body + key, None, "NumIdentifiant") if i.severity == "error"
    ]
    if errors:
        problems.issues.extend(errors)
        return None
    return body + key


def _compact(raw: str, param: str, problems: _Problems) -> str:
    compact = _MATRICULE_SEPARATORS.sub("", raw).upper()
    if compact != raw:
        problems.warn(
            param,
            f"{param}: {raw!r} normalised to {compact!r} (a matricule INS is written without "
            "spaces or separators)",
        )
    return compact


def _verify_oid(raw: str | None, matricule: str | None, problems: _Problems) -> str | None:
    """The bare OID sent (checked against the matricule), or None when not sent or wrong."""
    if raw is None:
        return None
    oid = raw.strip().removeprefix("urn:oid:")
    if oid not in INS_TYPES:
        listed = ", ".join(f"{o} ({code})" for o, (code, _) in INS_TYPES.items())
        problems.unprocessable(
            "OID", f"OID: {raw!r} is not an authority assigning matricules INS: {listed}"
        )
        return None
    if matricule is None:
        return oid
    first = matricule[0]
    provisional = ins_matricule.Matricule(matricule).provisional
    if oid == OID_NIR and provisional:
        problems.unprocessable(
            "OID",
            f"OID: matricule {matricule} starts with {first}: it is a NIA (numéro d'identification "
            "d'attente, the provisional number of a person born abroad whose registration is "
            f"pending, first digit 3, 4, 7 or 8), assigned under OID {OID_NIA} (INS-NIA), not "
            f"{OID_NIR} (INS-NIR); send OID {OID_NIA}, or omit OID",
        )
        return None
    if oid == OID_NIA and not provisional:
        problems.unprocessable(
            "OID",
            f"OID: matricule {matricule} starts with {first}: it is a NIR (definitive number, "
            f"first digit 1 or 2), assigned under OID {OID_NIR} (INS-NIR), not {OID_NIA} "
            f"(INS-NIA, whose numbers start with 3, 4, 7 or 8); send OID {OID_NIR}, or omit OID",
        )
        return None
    if oid != raw:
        problems.warn("OID", f"OID: {raw!r} read as {oid!r}")
    return oid


def verify_request(
    source: Mapping[str, Any] | Sequence[tuple[str, str]], today: date | None = None
) -> VerifyRequest:
    """Parse ``$ins-verify`` (Parameters or GET pairs; 400/422): https://hl7.org/fhir/R4/operations.html#request."""
    problems = _Problems()
    values = _collect(source, _VERIFY_SPECS, _VERIFY, problems)
    matricule = _verify_matricule(values, problems)
    raw_oid = _one(values, "OID", _VERIFY_SPECS["OID"], problems)
    oid = _verify_oid(raw_oid, matricule, problems)
    name = _birth_name(values, problems)
    given: tuple[str, ...] | None = None
    as_list = "ListePrenom" in values
    if "Prenom" in values and as_list:
        problems.invalid(
            "Prenom",
            "Prenom: send one birth first name in Prenom or the whole list in ListePrenom, "
            "not both",
        )
    elif as_list:
        raw_list = _one(values, "ListePrenom", _VERIFY_SPECS["ListePrenom"], problems)
        listed = _name(raw_list, "ListePrenom", problems) if raw_list is not None else None
        given = tuple(listed.split(" ")) if listed is not None else None
    elif "Prenom" in values:
        raw_first = _one(
            values, "Prenom", _VERIFY_SPECS["Prenom"], problems, _one_first_name_rule(_VERIFY)
        )
        first = _first_name(raw_first, _VERIFY, problems) if raw_first is not None else None
        given = (first,) if first is not None else None
    elif not problems.broken & {"Prenom", "ListePrenom"}:
        problems.invalid(
            "Prenom",
            "Prenom is missing: one birth first name (Prenom), or all of them space-separated "
            "(ListePrenom)",
            "required",
        )
    sex, born, place = _other_traits(values, today, problems)
    problems.raise_if_errors(_VERIFY)
    assert matricule is not None and name is not None and given is not None
    assert sex is not None and born is not None
    oid_given = oid is not None
    if oid is None:
        oid = OID_NIA if ins_matricule.Matricule(matricule).provisional else OID_NIR
    return VerifyRequest(
        matricule=matricule,
        oid=oid,
        oid_given=oid_given,
        birth_name=name,
        given_names=given,
        given_as_list=as_list,
        sex=sex,
        birth_date=born,
        birth_place=place,
        issues=tuple(problems.issues),
    )


# --------------------------------------------------------------------------------------------
# The téléservice
# --------------------------------------------------------------------------------------------


def _unique(records: Sequence[IdentityRecord]) -> list[IdentityRecord]:
    seen: set[str] = set()
    out: list[IdentityRecord] = []
    for record in records:
        if record.matricule not in seen:
            seen.add(record.matricule)
            out.append(record)
    return out


def search(request: SearchRequest, by_traits: ByTraits) -> InsiResponse:
    """Find the one identity with these traits: CR 00, 01 (none) or 02 (several): https://esante.gouv.fr/produits-services/referentiel-ins."""
    candidates = _unique(by_traits(request.birth_name, request.birth_date, request.sex))
    kept = [r for r in candidates if request.given_name in r.given_names]
    if request.birth_place is not None:
        kept = [r for r in kept if r.birth_place == request.birth_place]
    if len(kept) == 1:
        return InsiResponse(CR_FOUND, LIBELLE_FOUND, kept[0], issues=request.issues)
    if not kept:
        libelle = (
            f"{LIBELLE_NONE} : vérifiez les traits saisis ou relancez la recherche avec d'autres "
            "critères (un autre prénom de naissance)"
        )
        return InsiResponse(CR_NONE, libelle, issues=request.issues)
    if request.birth_place is None:
        advice = (
            "relancez la recherche en ajoutant d'autres prénoms de naissance (un prénom par "
            "appel), puis le lieu de naissance (code COG)"
        )
    else:
        advice = "relancez la recherche avec un autre prénom de naissance (un prénom par appel)"
    return InsiResponse(CR_SEVERAL, f"{LIBELLE_SEVERAL} : {advice}", issues=request.issues)


def bare_oid(oid: str) -> str:
    """An OID without its ``urn:oid:`` prefix: https://hl7.org/fhir/R4/datatypes.html#oid."""
    return oid.removeprefix("urn:oid:")


def history_oid(active_oid: str, old: str) -> str:
    """The OID of a historical matricule: a NIA (7/8) replaced by a NIR, else the active one's: https://esante.gouv.fr/produits-services/referentiel-ins."""
    active = bare_oid(active_oid)
    if active == OID_NIR and old[:1] in ("7", "8"):
        return OID_NIA
    return active


def verify(request: VerifyRequest, by_matricule: ByMatricule) -> InsiResponse:
    """Check a matricule INS and its traits against the reference identity: https://esante.gouv.fr/produits-services/referentiel-ins."""
    record = by_matricule(request.matricule)
    if record is None or (
        record.matricule != request.matricule and request.matricule not in record.history
    ):
        libelle = f"{LIBELLE_NONE} pour le matricule INS {request.matricule}"
        return InsiResponse(CR_NONE, libelle, issues=request.issues)
    historical = record.matricule != request.matricule
    differences: list[Difference] = []
    if request.oid_given:
        reference_oid = (
            history_oid(record.oid, request.matricule) if historical else bare_oid(record.oid)
        )
        if request.oid != reference_oid:
            differences.append(Difference("OID", request.oid, reference_oid))
    if request.birth_name != record.birth_name:
        differences.append(Difference("NomNaissance", request.birth_name, record.birth_name))
    listed = " ".join(record.given_names)
    if request.given_as_list:
        if request.given_names != tuple(record.given_names):
            differences.append(Difference("ListePrenom", " ".join(request.given_names), listed))
    elif request.given_names[0] not in record.given_names:
        differences.append(Difference("Prenom", request.given_names[0], listed))
    if request.sex != record.sex:
        differences.append(Difference("Sexe", request.sex, record.sex))
    if request.birth_date != record.birth_date:
        differences.append(Difference("DateNaissance", request.birth_date, record.birth_date))
    if request.birth_place is not None and request.birth_place != record.birth_place:
        differences.append(Difference("LieuNaissance", request.birth_place, record.birth_place))
    issues = list(request.issues)
    libelle = LIBELLE_FOUND
    if differences:
        traits = ", ".join(d.trait for d in differences)
        libelle += f" : les traits transmis diffèrent de l'identité de référence ({traits})"
    if historical:
        libelle += (
            f" ; le matricule transmis est un INS historique (INSHISTO), l'INS actif "
            f"{record.matricule} est renvoyé"
        )
        issues.append(
            Issue(
                "warning",
                "business-rule",
                f"INS: {request.matricule} is a historical matricule (INSHISTO) of this identity; "
                f"its active matricule INS is {record.matricule} (OID {bare_oid(record.oid)}): "
                "replace the stored one",
                ("INS",),
            )
        )
    return InsiResponse(
        CR_FOUND,
        libelle,
        record,
        verdict=MISMATCH if differences else MATCH,
        differences=tuple(differences),
        historical=request.matricule if historical else None,
        issues=tuple(issues),
    )


# --------------------------------------------------------------------------------------------
# Output
# --------------------------------------------------------------------------------------------


def reference_identity(record: IdentityRecord) -> ReferenceIdentity:
    """The record as a reference-base identity: https://esante.gouv.fr/produits-services/referentiel-ins."""
    return ReferenceIdentity(
        matricule=record.matricule,
        oid=bare_oid(record.oid),
        nom_naissance=record.birth_name,
        prenoms=tuple(record.given_names),
        sexe=record.sex,
        date_naissance=record.birth_date,
        lieu_naissance=record.birth_place,
        historique=tuple(record.history),
    )


def patient_of(record: IdentityRecord) -> dict[str, Any]:
    """The FR Core INS Patient (status RECUP, method INSI) of a returned identity: https://hl7.fr/ig/fhir/core/StructureDefinition-fr-core-patient-ins.html."""
    patient = to_patient(reference_identity(record), RECUP)
    if not record.birth_place:  # no empty COG: FHIR strings are never empty
        patient["extension"] = [e for e in patient["extension"] if e.get("url") != BIRTH_PLACE]
    return patient


def _ins_parts(matricule: str, oid: str) -> list[dict[str, Any]]:
    return [
        {"name": "NumIdentifiant", "valueString": matricule[:13]},
        {"name": "Cle", "valueString": matricule[13:]},
        {"name": "OID", "valueOid": f"urn:oid:{bare_oid(oid)}"},
    ]


def _individu(record: IdentityRecord) -> list[dict[str, Any]]:
    parts: list[dict[str, Any]] = [
        {"name": "INSACTIF", "part": _ins_parts(record.matricule, record.oid)}
    ]
    for old in record.history:
        parts.append({"name": "INSHISTO", "part": _ins_parts(old, history_oid(record.oid, old))})
    tiq: list[dict[str, Any]] = [
        {"name": "NomNaissance", "valueString": record.birth_name},
        {"name": "ListePrenom", "valueString": " ".join(record.given_names)},
        {"name": "Sexe", "valueCode": record.sex},
        {"name": "DateNaissance", "valueDate": record.birth_date},
    ]
    if record.birth_place:
        tiq.append({"name": "LieuNaissance", "valueCode": record.birth_place})
    parts.append({"name": "TIQ", "part": tiq})
    return parts


def to_parameters(response: InsiResponse) -> dict[str, Any]:
    """The operation's output Parameters (CodeCR, LibelleCR, INDIVIDU, patient, verdict, issues): https://hl7.org/fhir/R4/parameters.html."""
    parameters: list[dict[str, Any]] = [
        {"name": "CodeCR", "valueCode": response.cr},
        {"name": "LibelleCR", "valueString": response.libelle},
    ]
    record = response.identity
    if record is not None:
        parameters.append({"name": "INDIVIDU", "part": _individu(record)})
        parameters.append({"name": "patient", "resource": patient_of(record)})
    if response.verdict is not None:
        parameters.append({"name": "verdict", "valueCode": response.verdict})
        for difference in response.differences:
            part: list[dict[str, Any]] = [{"name": "trait", "valueCode": difference.trait}]
            if difference.sent:
                part.append({"name": "sent", "valueString": difference.sent})
            if difference.reference:
                part.append({"name": "reference", "valueString": difference.reference})
            parameters.append({"name": "difference", "part": part})
    if response.historical is not None:
        parameters.append({"name": "historical", "valueBoolean": True})
    if response.issues:
        parameters.append({"name": "issues", "resource": operation_outcome(list(response.issues))})
    return {"resourceType": "Parameters", "parameter": parameters}


def evidence(response: InsiResponse, today: date) -> InsiEvidence | None:
    """The record of a CR 00 that a later Patient write is checked against (None otherwise): https://hl7.fr/ig/fhir/core/StructureDefinition-fr-core-identity-reliability.html."""
    record = response.identity
    if response.cr != CR_FOUND or record is None:
        return None
    traits = traits_from_insi(
        record.birth_name,
        " ".join(record.given_names),
        record.sex,
        record.birth_date,
        record.birth_place or None,
    )
    return InsiEvidence(
        cr=CR_FOUND,
        date=today.isoformat(),
        system=f"urn:oid:{bare_oid(record.oid)}",
        matricule=record.matricule,
        traits=traits,
        method="INSI",
    )
