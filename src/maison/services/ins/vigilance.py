"""Identity-vigilance duplicate detection: potential duplicates and INS collisions among patients.

A cellule d'identitovigilance looks for *doublons* (one person, several records) and *collisions*
(one INS, several persons). This module scores a pair of identities on the traits (birth name,
used name, birth first names, birth date, sex, birth place, INS) after folding accents, case and
separators, and explains the score with reasons. Over a whole store it blocks records on several
keys (INS; phonetic birth or used name + birth year; phonetic name + day of the year; full date +
first first name; first letter of the name + first first name + year, or + day of the year) so
that the work grows almost linearly with the number of patients; each pair is scored once.

Pair kinds are the FR Core identity-status comment codes the cellule would set: ``COLP``
(collision potentielle), ``DPOT`` (doublon potentiel), ``HOMD`` (homonyme détecté).

https://esante.gouv.fr/produits-services/referentiel-ins (RNIV 1 "Principes d'identification",
§3.1.1 "Comment rechercher un enregistrement dans la base locale ?"; doublons, collisions)
https://hl7.fr/ig/fhir/core/CodeSystem-fr-core-cs-identity-status-comment.html
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import date
from typing import Any, Final

# --------------------------------------------------------------------------------------------
# Vocabulary
# --------------------------------------------------------------------------------------------

INS_SYSTEMS: Final = frozenset(
    f"urn:oid:1.2.250.1.213.1.4.{n}" for n in (8, 9, 10, 11)
)  # NIR, NIA, NIR test, NIR demo (FR Core fr-core-patient-ins identifier slices)
BIRTH_LIST_GIVEN_NAME: Final = (
    "https://hl7.fr/ig/fhir/core/StructureDefinition/fr-core-patient-birth-list-given-name"
)
BIRTH_PLACE: Final = "http://hl7.org/fhir/StructureDefinition/patient-birthPlace"
INSEE_CODE: Final = "https://hl7.fr/ig/fhir/core/StructureDefinition/fr-core-address-insee-code"

COLLISION: Final = "COLP"  # collision potentielle: one INS on several patients
DUPLICATE: Final = "DPOT"  # doublon potentiel
HOMONYM: Final = "HOMD"  # homonyme détecté (twins, homonyms with distinct INS)

SAME_INS: Final = "same INS on two patients (collision)"
INS_DIFFERS: Final = "different INS"
SAME_BIRTH_NAME: Final = "same birth name"
SAME_BIRTH_NAME_FOLDED: Final = "same birth name up to accents/case/hyphens"
USED_NAME: Final = "the used name of one is the birth name of the other"
COMPOUND_NAME: Final = "one birth name is part of the other (compound name)"
NAME_TYPO: Final = "birth names differ by one letter"
NAME_SOUNDS: Final = "birth names sound alike"
NAME_MISSING: Final = "birth name missing on one"
SAME_GIVEN: Final = "same first names"
SAME_GIVEN_FOLDED: Final = "same first names up to accents/case/hyphens"
GIVEN_SUBLIST: Final = "same first names, one list shorter"
SAME_FIRST_GIVEN: Final = "same first given name, other first names differ"
GIVEN_INVERTED: Final = "first names inverted"
GIVEN_COMPOSED: Final = "first given name is part of a composed first name"
GIVEN_TYPO: Final = "first given names differ by one letter"
GIVEN_SOUNDS: Final = "first given names sound alike"
GIVEN_SHARED: Final = "first names share a name"
GIVEN_MISSING: Final = "first names missing on one"
SAME_DATE: Final = "same birth date"
DATE_SWAPPED: Final = "birth dates: day and month swapped"
DATE_ONE_DAY: Final = "birth dates one day apart"
DATE_ONE_DIGIT: Final = "birth dates differ by one digit"
DATE_TRANSPOSED: Final = "birth dates: two adjacent digits transposed"
DATE_SAME_MONTH: Final = "same birth year and month"
DATE_PARTIAL: Final = "partial birth date compatible with the other"
DATE_MISSING: Final = "birth date missing on one"
DATES_UNRELATED: Final = "birth dates unrelated"
SEX_DIFFERS: Final = "different sex"
SEX_UNKNOWN: Final = "sex unknown on one"
PLACE_SAME: Final = "same birth place"
PLACE_SAME_DEPARTMENT: Final = "birth places in the same département"
PLACE_DIFFERS: Final = "different birth places"
PLACE_MISSING: Final = "birth place missing on one"
POSSIBLE_TWINS: Final = "possible twins: same birth name, date and place, other first names"
HOMONYMS: Final = "homonyms: same traits but different INS"

#: Default reporting threshold: one error on one trait stays above it, unrelated dates do not.
DEFAULT_THRESHOLD: Final = 0.8
_WEIGHT_FAMILY: Final = 0.4
_WEIGHT_GIVEN: Final = 0.3
_WEIGHT_DATE: Final = 0.3
_CAP_UNRELATED_DATES: Final = 0.5
_CAP_NO_NAME: Final = 0.3
_CAP_TWINS: Final = 0.45
#: Blocks larger than this are compared in a sliding window over their sorted members.
MAX_BLOCK: Final = 400
_WINDOW: Final = 40


@dataclass(frozen=True, slots=True)
class Candidate:
    """The traits of one stored patient, as the vigilance batch reads them.

    ``gender`` is the FHIR code (or M/F); ``birth_place`` a COG code; ``ins`` the matricule.
    https://hl7.fr/ig/fhir/core/StructureDefinition-fr-core-patient-ins.html
    """

    id: str
    family: str | None
    given_names: tuple[str, ...]
    birth_date: str | None
    gender: str | None
    birth_place: str | None
    ins: str | None
    used_family: str | None = None


@dataclass(frozen=True, slots=True)
class DuplicatePair:
    """Two patients that may be one person (or share one INS), with a 0-1 score and the reasons.

    https://hl7.fr/ig/fhir/core/CodeSystem-fr-core-cs-identity-status-comment.html
    """

    a: str
    b: str
    score: float
    reasons: tuple[str, ...]
    kind: str


# --------------------------------------------------------------------------------------------
# FHIR Patient -> Candidate
# --------------------------------------------------------------------------------------------


def candidate_from_patient(patient: dict[str, Any], id: str) -> Candidate:
    """The vigilance traits of an FHIR Patient (FR Core: official = birth name, usual = used).

    https://hl7.fr/ig/fhir/core/StructureDefinition-fr-core-patient-ins.html
    """
    names = [n for n in patient.get("name") or () if isinstance(n, dict)]

    def with_use(*uses: str | None) -> dict[str, Any] | None:
        return next((n for n in names if n.get("use") in uses), None)

    birth = with_use("official") or with_use("maiden") or with_use(None) or with_use("usual")
    used = with_use("usual")
    given: tuple[str, ...] = ()
    if birth is not None:
        listed = next(
            (
                e.get("valueString")
                for e in birth.get("extension") or ()
                if e.get("url") == BIRTH_LIST_GIVEN_NAME and isinstance(e.get("valueString"), str)
            ),
            None,
        )
        given = tuple(listed.split()) if listed else tuple(birth.get("given") or ())
    ins = None
    for ident in patient.get("identifier") or ():
        if ident.get("system") in INS_SYSTEMS and ident.get("use") != "old" and ident.get("value"):
            ins = str(ident["value"])
            break
    place = None
    for ext in patient.get("extension") or ():
        if ext.get("url") == BIRTH_PLACE:
            for sub in (ext.get("valueAddress") or {}).get("extension") or ():
                if sub.get("url") == INSEE_CODE:
                    place = (sub.get("valueCoding") or {}).get("code")
    used_family = used.get("family") if used is not None and used is not birth else None
    return Candidate(
        id=id,
        family=birth.get("family") if birth is not None else None,
        given_names=given,
        birth_date=patient.get("birthDate"),
        gender=patient.get("gender"),
        birth_place=place,
        ins=ins,
        used_family=used_family,
    )


# --------------------------------------------------------------------------------------------
# Normalization: folding and a small French phonetic key
# --------------------------------------------------------------------------------------------

_LIGATURES: Final = str.maketrans({"Œ": "OE", "Æ": "AE", "ß": "SS", "Ø": "O", "Đ": "D"})
_NOT_LETTERS: Final = re.compile(r"[^A-Z]+")


def fold(text: str) -> str:
    """Upper-case A-Z words: accents, ligatures and case folded, any separator one space.

    ``fold("Jean-Pierre") == fold("JEAN PIERRE") == "JEAN PIERRE"``.
    https://esante.gouv.fr/produits-services/referentiel-ins (INSi alphabet)
    """
    upper = text.upper().translate(_LIGATURES)
    stripped = "".join(
        c for c in unicodedata.normalize("NFKD", upper) if not unicodedata.combining(c)
    )
    return _NOT_LETTERS.sub(" ", stripped).strip()


_PHONETIC_RULES: Final = tuple(
    (re.compile(pattern), replacement)
    for pattern, replacement in (
        (r"SCH", "S"),
        (r"CH", "S"),
        (r"SH", "S"),
        (r"PH", "F"),
        (r"TH", "T"),
        (r"QU|CK|Q", "K"),
        (r"C(?=[EIY])", "S"),
        (r"C", "K"),
        (r"GU(?=[EIY])", "G"),
        (r"G(?=[EIY])", "J"),
        (r"W", "V"),
        (r"Y", "I"),
        (r"Z", "S"),
        (r"H", ""),
        (r"EAU|AU", "O"),
        (r"AI|EI", "E"),
        (r"[AE]N(?=[^AEIOU]|$)|[AE]M(?=[BP])", "AN"),
        (r"(?:[AE]I|U)N(?=[^AEIOU]|$)", "IN"),
        (r"BV", "V"),
        (r"(.)\1+", r"\1"),
        (r"(?<=.)[ESTDXZ]+$", ""),
    )
)


def phonetic(text: str) -> str:
    """A rough French phonetic key of a name (DUPONT ~ DUPOND, LEFEBVRE ~ LEFEVRE).

    https://fr.wikipedia.org/wiki/Soundex#Soundex_fran%C3%A7ais (simplified, our own rules)
    """
    key = fold(text).replace(" ", "")
    for pattern, replacement in _PHONETIC_RULES:
        key = pattern.sub(replacement, key)
    return key


def _one_edit(a: str, b: str) -> bool:
    """True when ``a`` and ``b`` differ by one substitution, insertion, deletion or swap."""
    la, lb = len(a), len(b)
    if la == lb:
        diffs = [i for i in range(la) if a[i] != b[i]]
        if len(diffs) == 1:
            return True
        return (
            len(diffs) == 2
            and diffs[1] == diffs[0] + 1
            and a[diffs[0]] == b[diffs[1]]
            and a[diffs[1]] == b[diffs[0]]
        )
    if abs(la - lb) != 1:
        return False
    if la > lb:
        a, b = b, a
    i = 0
    while i < len(a) and a[i] == b[i]:
        i += 1
    return a[i:] == b[i + 1 :]


class _Traits:
    """Folded, comparison-ready traits of one candidate (built once per record)."""

    __slots__ = (
        "date_key",
        "day",
        "fam",
        "fam_parts",
        "fam_ph",
        "fam_raw",
        "first_parts",
        "first_ph",
        "given_concat",
        "given_raw",
        "ins",
        "month",
        "ordinal",
        "place",
        "sex",
        "units",
        "used",
        "used_ph",
        "year",
    )

    def __init__(self) -> None:
        self.fam = self.fam_raw = self.fam_ph = self.used = self.used_ph = ""
        self.fam_parts: tuple[str, ...] = ()
        self.units: tuple[str, ...] = ()
        self.first_parts: tuple[str, ...] = ()
        self.given_raw = self.given_concat = self.first_ph = ""
        self.year = self.month = self.day = self.ordinal = 0
        self.date_key = ""
        self.sex = self.place = self.ins = ""


_Name = tuple[str, tuple[str, ...], str]  # (compact, parts, phonetic)
_Date = tuple[int, int, int, int, str]  # (year, month, day, ordinal, "YYYYMMDD" or "")
_MALE: Final = frozenset({"male", "m", "1", "homme", "masculin"})
_FEMALE: Final = frozenset({"female", "f", "2", "femme", "feminin", "féminin"})
_DATE_RE: Final = re.compile(r"(\d{4})(?:-(\d{2})(?:-(\d{2}))?)?")


class _Normalizer:
    """Builds :class:`_Traits`, caching the folding of names and dates (they repeat a lot)."""

    def __init__(self) -> None:
        self.names: dict[str, _Name] = {}
        self.dates: dict[str, _Date] = {}
        self.strings: dict[str, str] = {}

    def name(self, raw: str) -> _Name:
        found = self.names.get(raw)
        if found is None:
            folded = fold(raw)
            parts = tuple(folded.split())
            found = ("".join(parts), parts, phonetic(folded))
            self.names[raw] = found
        return found

    def date(self, raw: str) -> _Date:
        found = self.dates.get(raw)
        if found is None:
            found = (0, 0, 0, 0, "")
            match = _DATE_RE.match(raw.strip())
            if match is not None:
                y = int(match[1])
                m = int(match[2] or 0)
                d = int(match[3] or 0) if m else 0
                ordinal = 0
                try:
                    if m and d:
                        ordinal = date(y, m, d).toordinal()
                except ValueError:
                    d = 0
                found = (y, m, d, ordinal, f"{y:04d}{m:02d}{d:02d}" if ordinal else "")
            self.dates[raw] = found
        return found

    def intern(self, text: str) -> str:
        return self.strings.setdefault(text, text)

    def traits(self, candidate: Candidate) -> _Traits:
        t = _Traits()
        if candidate.family:
            t.fam, t.fam_parts, t.fam_ph = self.name(candidate.family)
            t.fam_raw = self.intern(candidate.family)
        if candidate.used_family:
            used, _, used_ph = self.name(candidate.used_family)
            if used != t.fam:
                t.used, t.used_ph = used, used_ph
        given = [g for g in candidate.given_names if g and fold(g)]
        if given:
            folded = [self.name(g) for g in given]
            t.units = tuple(f[0] for f in folded)
            t.first_parts = folded[0][1]
            t.first_ph = folded[0][2]
            t.given_concat = "".join(t.units)
            t.given_raw = " ".join(given)
        if candidate.birth_date:
            t.year, t.month, t.day, t.ordinal, t.date_key = self.date(candidate.birth_date)
        gender = (candidate.gender or "").strip().lower()
        t.sex = "M" if gender in _MALE else "F" if gender in _FEMALE else ""
        if candidate.birth_place:
            t.place = self.intern(candidate.birth_place.strip().upper())
        if candidate.ins:
            t.ins = candidate.ins.replace(" ", "").upper()
        return t


# --------------------------------------------------------------------------------------------
# Scoring
# --------------------------------------------------------------------------------------------


def _family(a: _Traits, b: _Traits) -> tuple[float, str]:
    if not a.fam or not b.fam:
        return 0.0, NAME_MISSING
    if a.fam == b.fam:
        return 1.0, SAME_BIRTH_NAME if a.fam_raw == b.fam_raw else SAME_BIRTH_NAME_FOLDED
    if (a.used and a.used == b.fam) or (b.used and b.used == a.fam):
        return 0.9, USED_NAME
    if len(a.fam_parts) != len(b.fam_parts) and (
        set(a.fam_parts) <= set(b.fam_parts) or set(b.fam_parts) <= set(a.fam_parts)
    ):
        return 0.85, COMPOUND_NAME
    if max(len(a.fam), len(b.fam)) >= 4 and _one_edit(a.fam, b.fam):
        return 0.8, NAME_TYPO
    if a.fam_ph == b.fam_ph:
        return 0.75, NAME_SOUNDS
    return 0.0, ""


def _given(a: _Traits, b: _Traits) -> tuple[float, str]:
    ua, ub = a.units, b.units
    if not ua or not ub:
        return 0.5, GIVEN_MISSING
    if a.given_concat == b.given_concat:
        return 1.0, SAME_GIVEN if a.given_raw == b.given_raw else SAME_GIVEN_FOLDED
    if ua[0] == ub[0]:
        short, long = (ua, ub) if len(ua) < len(ub) else (ub, ua)
        if long[: len(short)] == short:
            return 0.95, GIVEN_SUBLIST
        return 0.85, SAME_FIRST_GIVEN
    if ua[0] in ub or ub[0] in ua:
        return 0.85, GIVEN_INVERTED
    if (len(a.first_parts) > 1 and a.first_parts[0] == ub[0]) or (
        len(b.first_parts) > 1 and b.first_parts[0] == ua[0]
    ):
        return 0.75, GIVEN_COMPOSED
    if max(len(ua[0]), len(ub[0])) >= 4 and _one_edit(ua[0], ub[0]):
        return 0.8, GIVEN_TYPO
    if a.first_ph == b.first_ph:
        return 0.75, GIVEN_SOUNDS
    if set(ua) & set(ub):
        return 0.3, GIVEN_SHARED  # siblings and twins often share a later first name
    return 0.0, ""


def _date(a: _Traits, b: _Traits) -> tuple[float, str]:
    if not a.year or not b.year:
        return 0.5, DATE_MISSING
    if a.ordinal and b.ordinal:
        if a.ordinal == b.ordinal:
            return 1.0, SAME_DATE
        if a.year == b.year and a.month == b.day and a.day == b.month:
            return 0.85, DATE_SWAPPED
        if abs(a.ordinal - b.ordinal) == 1:
            return 0.8, DATE_ONE_DAY
        same = (a.year == b.year) + (a.month == b.month) + (a.day == b.day)
        if same == 2:
            sa, sb = a.date_key, b.date_key
            diffs = [i for i in range(8) if sa[i] != sb[i]]
            if len(diffs) == 1:
                return 0.8, DATE_ONE_DIGIT
            if (
                len(diffs) == 2
                and diffs[1] == diffs[0] + 1
                and sa[diffs[0]] == sb[diffs[1]]
                and sa[diffs[1]] == sb[diffs[0]]
            ):
                return 0.7, DATE_TRANSPOSED
        if a.year == b.year and a.month == b.month:
            return 0.4, DATE_SAME_MONTH
        return 0.0, DATES_UNRELATED
    if a.year == b.year and a.month == b.month and a.day == b.day:
        return 1.0, SAME_DATE  # the same partial date
    if a.year == b.year and (not a.month or not b.month or a.month == b.month):
        return 0.7, DATE_PARTIAL
    return 0.0, DATES_UNRELATED


def _compare(a: _Traits, b: _Traits, floor: float) -> tuple[float, list[str], str] | None:
    """Score, reasons and kind; ``None`` as soon as the score cannot reach ``floor``."""
    same_ins = bool(a.ins) and a.ins == b.ins
    d, d_why = _date(a, b)
    if not same_ins and d == 0.0 and floor > _CAP_UNRELATED_DATES:
        return None
    f, f_why = _family(a, b)
    if not same_ins and _WEIGHT_FAMILY * f + _WEIGHT_GIVEN + _WEIGHT_DATE * d < floor:
        return None
    g, g_why = _given(a, b)
    reasons = [why for why in (f_why, g_why, d_why) if why]
    score = _WEIGHT_FAMILY * f + _WEIGHT_GIVEN * g + _WEIGHT_DATE * d
    if a.sex and b.sex:
        if a.sex != b.sex:
            score *= 0.85
            reasons.append(SEX_DIFFERS)
    else:
        score *= 0.95
        reasons.append(SEX_UNKNOWN)
    place_differs = False
    if a.place and b.place:
        if a.place == b.place:
            reasons.append(PLACE_SAME)
        elif a.place[:2] == b.place[:2] and a.place[:2] != "99":
            score *= 0.9
            reasons.append(PLACE_SAME_DEPARTMENT)
        else:
            place_differs = True
            score *= 0.8
            reasons.append(PLACE_DIFFERS)
    else:
        score *= 0.95
        reasons.append(PLACE_MISSING)
    kind = DUPLICATE
    if a.ins and b.ins and not same_ins:
        score *= 0.5
        reasons.append(INS_DIFFERS)
        if f == 1.0 and g >= 0.95 and d == 1.0:
            reasons.append(HOMONYMS)
            kind = HOMONYM
    if d == 0.0:
        score = min(score, _CAP_UNRELATED_DATES)
    if f == 0.0 and g == 0.0:
        score = min(score, _CAP_NO_NAME)
    if f >= 0.9 and d == 1.0 and g_why in ("", GIVEN_SHARED) and not place_differs:
        score = min(score, _CAP_TWINS)
        reasons.append(POSSIBLE_TWINS)
        kind = HOMONYM
    if same_ins:
        score = 1.0
        reasons.insert(0, SAME_INS)
        kind = COLLISION
    return round(score, 4), reasons, kind


def score(a: Candidate, b: Candidate) -> tuple[float, list[str]]:
    """How much two patients look like one person (0-1), and why; symmetric.

    Same INS scores 1.0 (collision); unrelated birth dates cap the score at 0.5; twins at 0.45.
    https://esante.gouv.fr/produits-services/referentiel-ins (RNIV: doublons, collisions)
    """
    normalizer = _Normalizer()
    result = _compare(normalizer.traits(a), normalizer.traits(b), 0.0)
    assert result is not None  # floor 0 never stops early
    return result[0], result[1]


# --------------------------------------------------------------------------------------------
# Batch: blocking, then one scoring per pair
# --------------------------------------------------------------------------------------------

_HASH_MASK: Final = (1 << 38) - 1
_INDEX_BITS: Final = 25  # up to 33 million candidates
_INDEX_MASK: Final = (1 << _INDEX_BITS) - 1


def _keys_ins(t: _Traits) -> list[object]:
    return [t.ins] if t.ins else []


def _keys_name_year(t: _Traits) -> list[object]:
    keys: list[object] = []
    for ph in (t.fam_ph, t.used_ph):
        if ph:
            keys.append((ph, t.year))
            if t.month == 12 and t.day == 31:  # one day apart across New Year
                keys.append((ph, t.year + 1))
    return keys


def _keys_name_day(t: _Traits) -> list[object]:
    if not t.day:
        return []
    return [(ph, t.month, t.day) for ph in (t.fam_ph, t.used_ph) if ph]


def _keys_date_given(t: _Traits) -> list[object]:
    return [(t.year, t.month, t.day, t.units[0])] if t.year and t.units else []


def _keys_prefix_given_year(t: _Traits) -> list[object]:
    return [(t.fam[:1], t.units[0], t.year)] if t.fam and t.units and t.year else []


def _keys_prefix_given_day(t: _Traits) -> list[object]:
    return [(t.fam[:1], t.units[0], t.month, t.day)] if t.fam and t.units and t.day else []


#: Blocking schemes, collisions first: each catches what the others miss when one trait is off.
_SCHEMES: Final = (
    ("ins", _keys_ins),  # collisions (and duplicates carrying one INS)
    ("name+year", _keys_name_year),  # day/month typos, inverted first names, used name
    ("name+day", _keys_name_day),  # birth-year typos
    ("date+given", _keys_date_given),  # birth-name changes and typos beyond phonetics
    ("prefix+given+year", _keys_prefix_given_year),  # a name typo and a day/month typo
    ("prefix+given+day", _keys_prefix_given_day),  # a name typo and a year typo
)


def _pairs(members: list[int], traits: list[_Traits]) -> Iterator[tuple[int, int]]:
    if len(members) <= MAX_BLOCK:
        for x, i in enumerate(members):
            for j in members[x + 1 :]:
                yield i, j
        return
    ordered = sorted(members, key=lambda k: (traits[k].given_concat, traits[k].date_key))
    for x, i in enumerate(ordered):
        for j in ordered[x + 1 : x + 1 + _WINDOW]:
            yield (i, j) if i < j else (j, i)


def find_duplicates(
    candidates: Iterable[Candidate],
    threshold: float = DEFAULT_THRESHOLD,
    *,
    report_homonyms: bool = False,
    stats: dict[str, int] | None = None,
) -> Iterator[DuplicatePair]:
    """Potential duplicates (score >= ``threshold``) and every INS collision, each pair once.

    Sorted: collisions, then duplicates by decreasing score (then homonyms if asked for).
    https://esante.gouv.fr/produits-services/referentiel-ins (RNIV: doublons, collisions)
    """
    normalizer = _Normalizer()
    ids: list[str] = []
    traits: list[_Traits] = []
    for candidate in candidates:
        ids.append(candidate.id)
        traits.append(normalizer.traits(candidate))
    if len(traits) > _INDEX_MASK:
        raise ValueError(f"at most {_INDEX_MASK} candidates per batch")
    del normalizer  # the folding caches are no longer needed
    counters = {"candidates": len(traits), "blocks": 0, "oversized": 0, "comparisons": 0}
    found: dict[int, DuplicatePair] = {}
    # Records without a birth date join, by phonetic name + first first name, the records that
    # share those with one of them (the date-based blocks cannot hold them).
    undated = {
        (ph, t.units[0])
        for t in traits
        if not t.year and t.units
        for ph in (t.fam_ph, t.used_ph)
        if ph
    }

    def keys_name_given(t: _Traits) -> list[object]:
        if not undated or not t.units:
            return []
        return [key for ph in (t.fam_ph, t.used_ph) if ph and (key := (ph, t.units[0])) in undated]

    for name, keys_of in (*_SCHEMES, ("name+given", keys_name_given)):
        packed: list[int] = []
        for index, t in enumerate(traits):
            for key in keys_of(t):
                packed.append(((hash((name, key)) & _HASH_MASK) << _INDEX_BITS) | index)
        packed.sort()
        start = 0
        total = len(packed)
        while start < total:
            block_hash = packed[start] >> _INDEX_BITS
            end = start + 1
            while end < total and packed[end] >> _INDEX_BITS == block_hash:
                end += 1
            if end - start > 1:
                members = sorted({p & _INDEX_MASK for p in packed[start:end]})
                counters["blocks"] += 1
                counters["oversized"] += len(members) > MAX_BLOCK
                floor = 0.0 if name == "ins" else threshold
                if report_homonyms:
                    floor = min(floor, _CAP_UNRELATED_DATES + 0.01)
                for i, j in _pairs(members, traits):
                    pair_key = (i << _INDEX_BITS) | j
                    if pair_key in found:
                        continue
                    counters["comparisons"] += 1
                    result = _compare(traits[i], traits[j], floor)
                    if result is None:
                        continue
                    value, reasons, kind = result
                    if (
                        kind == COLLISION
                        or (kind == DUPLICATE and value >= threshold)
                        or (kind == HOMONYM and report_homonyms)
                    ):
                        found[pair_key] = DuplicatePair(ids[i], ids[j], value, tuple(reasons), kind)
            start = end
        del packed
    counters["pairs"] = len(found)
    if stats is not None:
        stats.update(counters)
    order = {COLLISION: 0, DUPLICATE: 1, HOMONYM: 2}
    yield from sorted(found.values(), key=lambda p: (order[p.kind], -p.score, p.a, p.b))


# --------------------------------------------------------------------------------------------
# Anomalies of single identities (the report of the cellule d'identitovigilance)
# --------------------------------------------------------------------------------------------


def anomalies(patients: Iterable[dict[str, Any]]) -> list[tuple[str, str]]:
    """Identities a cellule d'identitovigilance must look at, one (Patient id, reason) each:
    doubtful or fictitious identities, a matricule INS stored on an identity that is not
    qualified (it must not be emitted), merged records still active, and QUAL/RECUP statuses
    without the INSi interrogation date.

    https://esante.gouv.fr/produits-services/referentiel-ins (RNIV, EXI SI 07/09)
    """
    from maison.services.ins.matricule import active_ins_values
    from maison.services.ins.reliability import read_reliability

    out: list[tuple[str, str]] = []
    for patient in patients:
        pid = str(patient.get("id", "?"))
        rel = read_reliability(patient)
        status = rel.status or "none"
        if rel.doubtful:
            out.append((pid, f"identité douteuse (DOUT), status {status}: to be resolved"))
        if rel.fictitious:
            out.append((pid, f"identité fictive (FICT), status {status}"))
        if active_ins_values(patient) and status != "QUAL":
            out.append(
                (pid, f"matricule INS stored on a {status} identity: it must not be emitted")
            )
        if status in ("RECUP", "QUAL") and not rel.insi_date:
            out.append((pid, f"status {status} without the INSi interrogation date"))
        links = patient.get("link") or ()
        if patient.get("active", True) and any(
            isinstance(link, dict) and link.get("type") == "replaced-by" for link in links
        ):
            out.append((pid, "merged into another record (replaced-by) but still active"))
    return out
