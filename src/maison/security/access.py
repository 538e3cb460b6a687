"""The access rules of the DMP as one pure engine: who may open a patient's record (the
*basis*: médecin traitant, équipe de soins with the patient's initial consent, the patient's
consent for one consultation, bris de glace, centre de régulation), then which documents of it
(the masks and the habilitation matrix), every decision with a rule id and a reason.

Pure: the facts of a record (:class:`RecordFacts`) are read by the services layer from the
FHIR resources that hold them (``services/dmp/relations.py``); the guarded store
(``security/guard.py``) asks this module and turns the answers into SQL criteria, 403s and
404s, and the audit trail.

Order of the basis rules, first match decides (arrêté du 26 octobre 2023; Conseil d'État,
15 octobre 2025; CSP L.1111-15 to L.1111-17):

1. the DMP's state: never opened, closed or merged → deny;
2. a professional the patient blocked → deny (even with his consent, even in an emergency);
3. the centre de régulation (SAMU) mode → allow (the authorisation check is skipped);
4. the patient's opposition to consultation → deny, unless a bris de glace the patient did not
   oppose is running;
5. the médecin traitant DMP → allow (and he sees documents masked to professionals);
6. a member of an active équipe de soins whose access the patient consented to → allow;
7. the patient's consent to this professional, for this consultation (its period) → allow;
8. a running bris de glace, where the patient did not oppose it → allow (flagged);
9. otherwise deny, saying what would open access.

Then for each document: ``MASQUE_PS`` hides it from every professional but its author and the
médecin traitant; ``INVISIBLE_PATIENT`` from the patient and his representatives;
``INVISIBLE_REPRESENTANTS_LEGAUX`` from the representatives; and a professional reads only the
types the habilitation matrix allows his profession.

https://www.legifrance.gouv.fr/jorf/id/JORFTEXT000048256185,
https://interop.esante.gouv.fr/ig/fhir/pdsm4dmp/ (TD0.2, TD3.3)
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final, Literal

from maison.security.matrix import Decision, Matrix, decide
from maison.security.professional import ActingProfessional

IDNPS: Final = "urn:oid:1.2.250.1.71.4.2.1"
MASQUE_PS: Final = "MASQUE_PS"
INVISIBLE_PATIENT: Final = "INVISIBLE_PATIENT"
INVISIBLE_REPRESENTANTS_LEGAUX: Final = "INVISIBLE_REPRESENTANTS_LEGAUX"
#: The resource types whose access the matrix and the masks decide one by one.
DOCUMENT_TYPES: Final = frozenset({"DocumentReference"})

GrantKind = Literal["care-team", "consent", "emergency", "block"]
ViewerKind = Literal["professional", "patient", "representative", "system", "user"]


@dataclass(frozen=True, slots=True)
class Grant:
    """One recorded basis (or blocking) of access to a record: a care team the patient
    consented to, his consent to one professional, a bris de glace, or a blocking.

    https://hl7.org/fhir/R4/consent.html, https://hl7.org/fhir/R4/careteam.html
    """

    kind: GrantKind
    source: str  # "Consent/12", "CareTeam/3"
    idnps: frozenset[str] = frozenset()  # professionals named by IDNPS
    references: frozenset[str] = frozenset()  # "Practitioner/1", "PractitionerRole/2"
    structures: frozenset[str] = frozenset()  # FINESS / SIRET / RASS of whole structures
    start: datetime | None = None
    end: datetime | None = None
    reason: str | None = None  # the emergency's justification
    consent: str | None = None  # for a care team: the Consent recording the patient's consent

    def names(self, who: ActingProfessional | None, fhir_user: str | None) -> bool:
        """Whether this grant names the professional (by IDNPS, reference or structure)."""
        if who is not None:
            if who.national_id in self.idnps:
                return True
            if self.structures and self.structures.intersection(who.structure.values()):
                return True
        return fhir_user is not None and fhir_user in self.references

    def running(self, now: datetime) -> bool:
        """Whether ``now`` is within the grant's period (open ends run forever)."""
        return (self.start is None or self.start <= now) and (self.end is None or now < self.end)


@dataclass(frozen=True, slots=True)
class RecordFacts:
    """What the access rules need to know about one patient's record.

    https://interop.esante.gouv.fr/ig/fhir/pdsm4dmp/ (TD0.2)
    """

    patient: str  # "Patient/[id]"
    state_refusal: str | None = None  # never opened, closed, merged: why nobody may read it
    consultation_opposed: str | None = None  # since when (the patient's opposition)
    emergency_opposed: str | None = None  # since when (opposition to the bris de glace)
    medecin_traitant: Mapping[str, Any] | None = None  # a Reference (identifier = IDNPS)
    grants: tuple[Grant, ...] = ()
    blocks: tuple[Grant, ...] = ()
    #: the record's documents masked to professionals: (id, authors' IDNPS, authors' refs)
    masked: tuple[tuple[str, frozenset[str], frozenset[str]], ...] = ()
    #: whether ``masked`` lists all of them (a record with very many lists only the first)
    masked_complete: bool = True

    def masked_authored(self, viewer: Viewer) -> list[str]:
        """The ids of the record's ``MASQUE_PS`` documents the viewer authored."""
        who = viewer.professional
        return [
            doc
            for doc, idnps, refs in self.masked
            if (who is not None and who.national_id in idnps)
            or (viewer.fhir_user is not None and viewer.fhir_user in refs)
        ]


@dataclass(frozen=True, slots=True)
class Viewer:
    """Who reads, as the rules see him."""

    kind: ViewerKind
    professional: ActingProfessional | None = None
    fhir_user: str | None = None
    patient: str | None = None  # "Patient/[id]" for a patient or representative token
    regulation: bool = False  # centre de régulation mode granted for this request


@dataclass(frozen=True, slots=True)
class Basis:
    """Whether a viewer may open a record, on which rule, with the reason a person reads.

    https://www.legifrance.gouv.fr/jorf/id/JORFTEXT000048256185
    """

    allowed: bool
    rule: str
    reason: str
    source: str | None = None  # the Consent / CareTeam it rests on
    medecin_traitant: bool = False
    emergency: bool = False


@dataclass(frozen=True, slots=True)
class Verdict:
    """The decision on one resource: allowed, or denied with a rule and a reason; ``hidden``
    when its very existence must not be revealed (a masked document: 404, not 403)."""

    allowed: bool
    rule: str
    reason: str
    source: str | None = None
    cell: str | None = None  # the matrix cell's rule id
    hidden: bool = False
    emergency: bool = False


def _day(value: str | None) -> str:
    return (value or "?")[:10]


def _is_doctor(reference: Mapping[str, Any] | None, viewer: Viewer) -> bool:
    if not isinstance(reference, Mapping):
        return False
    ident = reference.get("identifier")
    who = viewer.professional
    if (
        who is not None
        and isinstance(ident, Mapping)
        and ident.get("system") == IDNPS
        and ident.get("value") == who.national_id
    ):
        return True
    ref = reference.get("reference")
    return viewer.fhir_user is not None and isinstance(ref, str) and ref == viewer.fhir_user


def basis(facts: RecordFacts, viewer: Viewer, now: datetime) -> Basis:
    """Whether ``viewer`` may open the record of ``facts.patient`` now, and why (see the module
    docstring for the order): https://www.legifrance.gouv.fr/jorf/id/JORFTEXT000048256185."""
    if viewer.kind == "system":
        return Basis(True, "dmp-access:system", "a backend service, trusted by its scopes")
    if viewer.kind in ("patient", "representative"):
        if viewer.patient == facts.patient:
            return Basis(True, f"dmp-access:{viewer.kind}", "the patient's own record")
        return Basis(
            False, "dmp-access:other-patient", f"{facts.patient} is not the record of this token"
        )
    who = viewer.professional
    if viewer.kind != "professional" or who is None:
        return Basis(
            False,
            "dmp-access:no-professional-context",
            "the token carries no professional context (Pro Santé Connect): only a "
            "professional taking care of the patient may read his record",
        )
    if facts.state_refusal is not None:
        return Basis(False, "dmp-access:state", facts.state_refusal)
    for block in facts.blocks:
        if block.names(who, viewer.fhir_user):
            return Basis(
                False,
                "dmp-access:blocked",
                "the patient blocked your access to his DMP: it is refused even with his "
                "consent or in an emergency",
                block.source,
            )
    if viewer.regulation:
        return Basis(
            True,
            "dmp-access:regulation",
            "centre de régulation (SAMU) mode: the authorisation check is skipped",
        )
    emergency = _emergency(facts, viewer, now)
    if facts.consultation_opposed is not None:
        if emergency is not None and facts.emergency_opposed is None:
            return _emergency_basis(emergency)
        return Basis(
            False,
            "dmp-access:opposition",
            f"the patient opposed the consultation of his DMP on "
            f"{_day(facts.consultation_opposed)}"
            + (
                ""
                if facts.emergency_opposed is not None
                else "; only a bris de glace may pass it in an emergency"
            ),
        )
    if _is_doctor(facts.medecin_traitant, viewer):
        return Basis(
            True,
            "dmp-access:medecin-traitant",
            "you are the patient's médecin traitant DMP",
            medecin_traitant=True,
        )
    for grant in facts.grants:
        if grant.kind != "care-team" or not grant.names(who, viewer.fhir_user):
            continue
        if not grant.running(now):
            continue
        if grant.consent is None:
            continue
        return Basis(
            True,
            "dmp-access:care-team",
            f"you are a member of the patient's équipe de soins ({grant.source}), to which "
            f"he consented ({grant.consent})",
            grant.source,
        )
    for grant in facts.grants:
        if grant.kind == "consent" and grant.names(who, viewer.fhir_user) and grant.running(now):
            until = f" until {grant.end.isoformat(timespec='minutes')}" if grant.end else ""
            return Basis(
                True,
                "dmp-access:consent",
                f"the patient consented to your access for this consultation{until}",
                grant.source,
            )
    if emergency is not None and facts.emergency_opposed is None:
        return _emergency_basis(emergency)
    return _no_basis(facts, viewer, now)


def _emergency(facts: RecordFacts, viewer: Viewer, now: datetime) -> Grant | None:
    for grant in facts.grants:
        if (
            grant.kind == "emergency"
            and grant.names(viewer.professional, viewer.fhir_user)
            and grant.running(now)
        ):
            return grant
    return None


def _emergency_basis(grant: Grant) -> Basis:
    until = grant.end.isoformat(timespec="minutes") if grant.end else "?"
    return Basis(
        True,
        "dmp-access:bris-de-glace",
        f"bris de glace until {until}: {grant.reason or '(no reason)'}",
        grant.source,
        emergency=True,
    )


def _no_basis(facts: RecordFacts, viewer: Viewer, now: datetime) -> Basis:
    """The refusal when no rule lets the professional in, saying what would."""
    who, user = viewer.professional, viewer.fhir_user
    mine = [g for g in facts.grants if g.names(who, user)]
    for grant in mine:
        if grant.kind == "care-team" and grant.consent is None and grant.running(now):
            return Basis(
                False,
                "dmp-access:care-team-without-consent",
                f"you are a member of the équipe de soins {grant.source}, but the patient has "
                "not given his initial consent to its access (Conseil d'État, 15 October 2025): "
                "record it with $dmp-care-team",
                grant.source,
            )
    ended = [g for g in mine if g.end is not None and g.end <= now]
    if ended:
        last = max(ended, key=lambda g: g.end or now)
        what = {
            "emergency": "your bris de glace window",
            "consent": "the patient's consent to your access",
            "care-team": "your membership of the équipe de soins",
        }.get(last.kind, "your access")
        assert last.end is not None
        return Basis(
            False,
            f"dmp-access:expired-{last.kind}",
            f"{what} ended at {last.end.isoformat(timespec='minutes')} ({last.source})",
            last.source,
        )
    if any(g.kind == "emergency" for g in mine) and facts.emergency_opposed is not None:
        return Basis(
            False,
            "dmp-access:emergency-opposed",
            f"the patient opposed access in an emergency on {_day(facts.emergency_opposed)}",
        )
    return Basis(
        False,
        "dmp-access:no-relationship",
        "you are neither the patient's médecin traitant DMP nor a member of an équipe de soins "
        "he consented to, and he has not consented to your access for this consultation: "
        "record his consent ($dmp-consent) or, in an emergency, break the glass "
        "($bris-de-glace)",
    )


# --- documents -----------------------------------------------------------------------------------
def labels(resource: Mapping[str, Any]) -> frozenset[str]:
    """The codes of a document's ``securityLabel`` (JDV_J08 visibility)."""
    out: set[str] = set()
    for concept in resource.get("securityLabel") or []:
        if isinstance(concept, Mapping):
            for coding in concept.get("coding") or []:
                if isinstance(coding, Mapping) and isinstance(coding.get("code"), str):
                    out.add(coding["code"])
    return frozenset(out)


def author_ids(resource: Mapping[str, Any]) -> tuple[frozenset[str], frozenset[str]]:
    """(IDNPS values, references) of a document's authors, contained ones included
    (https://interop.esante.gouv.fr/ig/fhir/pdsm/, PDSm_ComprehensiveDocumentReference)."""
    contained = {
        f"#{c.get('id')}": c
        for c in resource.get("contained") or []
        if isinstance(c, Mapping) and isinstance(c.get("id"), str)
    }
    idnps: set[str] = set()
    refs: set[str] = set()

    def take(res: Mapping[str, Any]) -> None:
        for ident in res.get("identifier") or []:
            if isinstance(ident, Mapping) and ident.get("system") == IDNPS:
                value = ident.get("value")
                if isinstance(value, str):
                    idnps.add(value)
        practitioner = res.get("practitioner")
        if isinstance(practitioner, Mapping):
            follow(practitioner)

    def follow(reference: Mapping[str, Any]) -> None:
        """A Reference: its contained target, or its reference kept; its own identifier."""
        ref = reference.get("reference")
        if isinstance(ref, str) and ref in contained:
            take(contained[ref])
        elif isinstance(ref, str):
            refs.add(ref)
        take(reference)

    for author in resource.get("author") or []:
        if isinstance(author, Mapping):
            follow(author)
    return frozenset(idnps), frozenset(refs)


def is_author(resource: Mapping[str, Any], viewer: Viewer) -> bool:
    """Whether the viewer authored the document (by IDNPS or by his ``fhirUser``)."""
    idnps, refs = author_ids(resource)
    who = viewer.professional
    if who is not None and who.national_id in idnps:
        return True
    return viewer.fhir_user is not None and viewer.fhir_user in refs


def _first_coding(value: Any) -> Mapping[str, Any] | None:
    concepts = value if isinstance(value, list) else [value]
    for concept in concepts:
        if isinstance(concept, Mapping):
            for coding in concept.get("coding") or []:
                if isinstance(coding, Mapping):
                    return coding
    return None


def _codes(coding: Mapping[str, Any] | None) -> tuple[Any, Any]:
    return (coding.get("system"), coding.get("code")) if coding is not None else (None, None)


def document_verdict(
    resource: Mapping[str, Any],
    viewer: Viewer,
    granted: Basis,
    matrix: Matrix,
    cells: dict[tuple[Any, ...], Decision] | None = None,
) -> Verdict:
    """Whether ``viewer``, with the record opened on ``granted``, may read this document:
    masks, then the habilitation matrix; ``cells`` keeps the matrix's decisions by
    (type, class) for the documents of one request, which share a few of them
    (https://www.legifrance.gouv.fr/jorf/id/JORFTEXT000048256185)."""
    if not granted.allowed:
        return Verdict(False, granted.rule, granted.reason, granted.source)
    marks = labels(resource)
    if viewer.kind in ("patient", "representative"):
        if INVISIBLE_PATIENT in marks:
            return Verdict(
                False,
                "dmp-mask:INVISIBLE_PATIENT",
                "the document is not yet visible to the patient (INVISIBLE_PATIENT)",
                hidden=True,
            )
        if viewer.kind == "representative" and INVISIBLE_REPRESENTANTS_LEGAUX in marks:
            return Verdict(
                False,
                "dmp-mask:INVISIBLE_REPRESENTANTS_LEGAUX",
                "the document is hidden from the legal representatives",
                hidden=True,
            )
        return Verdict(True, granted.rule, granted.reason, granted.source)
    if viewer.kind != "professional":
        return Verdict(True, granted.rule, granted.reason, granted.source)
    if MASQUE_PS in marks and not granted.medecin_traitant and not is_author(resource, viewer):
        return Verdict(
            False,
            "dmp-mask:MASQUE_PS",
            "the document is masked to professionals (MASQUE_PS): only its author and the "
            "médecin traitant DMP see it",
            hidden=True,
        )
    doc_type = _first_coding(resource.get("type"))
    doc_class = _first_coding(resource.get("category"))
    key = (*_codes(doc_type), *_codes(doc_class))
    cell = cells.get(key) if cells is not None else None
    if cell is None:
        cell = _decided(matrix, viewer.professional, doc_type, doc_class, key)
        if cells is not None:
            cells[key] = cell
    if not cell.allowed:
        return Verdict(False, cell.rule_id, cell.reason, cell=cell.rule_id)
    return Verdict(
        True,
        granted.rule,
        f"{granted.reason}; {cell.reason}",
        granted.source,
        cell.rule_id,
        emergency=granted.emergency,
    )


@dataclass(frozen=True)
class DocumentFilter:
    """What a document search adds for one viewer, as plain values the guard turns into
    criteria. A document passes when its class is in ``classes`` or its type in
    ``types_allowed``, its type is not in ``types_denied``, and it carries none of
    ``exclude_labels`` unless it is one of ``except_ids``; ``None`` adds no class/type test;
    ``nothing`` means no document can be visible."""

    nothing: bool = False
    #: allowed J57 classes, (canonical system, code): the system is compared, as decide() does
    classes: tuple[tuple[str, str], ...] | None = None
    types_allowed: tuple[tuple[str, str], ...] = ()  # J66 types a type cell allows
    types_denied: tuple[tuple[str, str], ...] = ()  # J66 types a type cell denies
    exclude_labels: tuple[str, ...] = ()  # securityLabel codes hidden ...
    except_ids: tuple[str, ...] = ()  # ... unless the document is one of these
    reason: str = ""
    rules: tuple[str, ...] = field(default=())


def document_filter(
    viewer: Viewer, granted: Basis, matrix: Matrix, masked_authored: Iterable[str] = ()
) -> DocumentFilter:
    """The search-time form of :func:`document_verdict` for one record: the classes and types
    the matrix allows the viewer's profession, and the masks that hide documents
    (``masked_authored``: the ids of the record's ``MASQUE_PS`` documents the viewer authored).
    Type cells are read at their own levels (a narrower class cell overriding a type cell is
    applied at read time only, by :func:`document_verdict`).
    https://www.legifrance.gouv.fr/jorf/id/JORFTEXT000048256185"""
    if not granted.allowed:
        return DocumentFilter(nothing=True, reason=granted.reason, rules=(granted.rule,))
    if viewer.kind in ("patient", "representative"):
        hidden: tuple[str, ...] = (INVISIBLE_PATIENT,)
        if viewer.kind == "representative":
            hidden += (INVISIBLE_REPRESENTANTS_LEGAUX,)
        return DocumentFilter(exclude_labels=hidden, rules=(granted.rule,))
    if viewer.kind != "professional":
        return DocumentFilter(rules=(granted.rule,))
    who = viewer.professional
    classes, allowed, denied = _readable(matrix, who)
    if not classes and not allowed:
        return DocumentFilter(
            nothing=True,
            reason="the habilitation matrix allows your profession no DMP document",
            rules=("habilitation-matrix:default-deny",),
        )
    masked: tuple[str, ...] = () if granted.medecin_traitant else (MASQUE_PS,)
    return DocumentFilter(
        classes=classes,
        types_allowed=allowed,
        types_denied=denied,
        exclude_labels=masked,
        except_ids=tuple(sorted(masked_authored)) if masked else (),
        rules=(granted.rule,),
    )


def _profile(matrix: Matrix, who: ActingProfessional | None) -> tuple[Any, ...]:
    """What a matrix decision reads of the matrix and the professional: the matrix's version,
    his profession, savoir-faire and rôle."""
    return (
        matrix.version,
        getattr(who, "profession", None),
        getattr(who, "savoir_faire_type", None),
        getattr(who, "savoir_faire", None),
        getattr(who, "role", None),
    )


#: (matrix version, profession, savoir-faire, rôle, type, class) -> the matrix's decision
_decision_cache: dict[tuple[Any, ...], Decision] = {}


def _decided(
    matrix: Matrix,
    who: ActingProfessional | None,
    doc_type: Mapping[str, Any] | None,
    doc_class: Mapping[str, Any] | None,
    codes: tuple[Any, ...],
) -> Decision:
    """:func:`decide`, kept per matrix version and professional profile: a decision reads
    only those, and a search decides on the same few types and classes over and over."""
    key = (*_profile(matrix, who), *codes)
    found = _decision_cache.get(key)
    if found is None:
        found = decide(matrix, who, doc_type, doc_class)
        if len(_decision_cache) >= 50_000:
            _decision_cache.clear()
        _decision_cache[key] = found
    return found


_Readable = tuple[
    tuple[tuple[str, str], ...], tuple[tuple[str, str], ...], tuple[tuple[str, str], ...]
]
#: (matrix version, profession, savoir-faire, role) -> what :func:`_readable` found
_readable_cache: dict[tuple[Any, ...], _Readable] = {}


def _readable(matrix: Matrix, who: ActingProfessional | None) -> _Readable:
    """(classes allowed, types allowed, types denied) for the professional's profession
    (with his savoir-faire and rôle), kept per matrix version: it reads every cell of his
    profession, the same for each of his searches."""
    key = _profile(matrix, who)
    found = _readable_cache.get(key)
    if found is None:
        found = _read_cells(matrix, who)
        if len(_readable_cache) >= 1024:
            _readable_cache.clear()
        _readable_cache[key] = found
    return found


def _read_cells(matrix: Matrix, who: ActingProfessional | None) -> _Readable:
    profession = getattr(who, "profession", None)
    mine = [c for c in matrix.cells if c.profession == profession]
    classes = sorted(
        {
            (c.system, c.code)
            for c in mine
            if c.is_class
            and decide(matrix, who, None, {"system": c.system, "code": c.code}).allowed
        }
    )
    allowed: set[tuple[str, str]] = set()
    denied: set[tuple[str, str]] = set()
    for c in mine:
        if c.is_class:
            continue
        verdict = decide(matrix, who, {"system": c.system, "code": c.code}, None)
        (allowed if verdict.allowed else denied).add((c.system, c.code))
    return tuple(classes), tuple(sorted(allowed)), tuple(sorted(denied))


__all__ = [
    "DOCUMENT_TYPES",
    "INVISIBLE_PATIENT",
    "INVISIBLE_REPRESENTANTS_LEGAUX",
    "MASQUE_PS",
    "Basis",
    "DocumentFilter",
    "Grant",
    "RecordFacts",
    "Verdict",
    "Viewer",
    "author_ids",
    "basis",
    "document_filter",
    "document_verdict",
    "is_author",
    "labels",
]
