"""The DMP access rules applied to one request's store unit: which patient a resource or a
search is about, whether the caller may open that record (:func:`access.basis`), which
documents of it he may read (:func:`access.document_verdict`), the same as SQL criteria for
searches, and the trace of every decision for the audit trail.

The guarded store (``security/guard.py``) calls it on every read, search and write, so no
endpoint can forget it: https://www.legifrance.gouv.fr/jorf/id/JORFTEXT000048256185
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, Final

from maison.fhir.definitions import Definitions
from maison.fhir.errors import Category, FhirError, Issue
from maison.fhir.search import Criterion, ReferenceValue, SearchQuery, TokenValue
from maison.security.access import (
    DOCUMENT_TYPES,
    MASQUE_PS,
    Basis,
    RecordFacts,
    Verdict,
    Viewer,
    ViewerKind,
    basis,
    document_filter,
    document_verdict,
)
from maison.security.matrix import LOINC, Decision, Matrix
from maison.security.principal import Principal
from maison.store.interface import Stored, StoreTx

#: Reference search parameters that name the patient a resource is about.
PATIENT_PARAMS: Final = frozenset({"patient", "subject", "beneficiary"})
#: Elements that hold the patient of a resource, in the order they are looked at.
PATIENT_ELEMENTS: Final = ("subject", "patient", "beneficiary", "individual")
#: Types outside the rules though in the Patient compartment: the identity itself.
OPEN_TYPES: Final = frozenset({"Patient"})

#: The code systems of the machine-readable reasons of a refusal (OperationOutcome details).
RULE_SYSTEM: Final = "https://maison.example.org/fhir/CodeSystem/access-rule"
REFERENCE_SYSTEM: Final = "https://maison.example.org/fhir/CodeSystem/access-basis-record"


def refusal(
    message: str,
    rule: str,
    cell: str | None = None,
    source: str | None = None,
    hidden: bool = False,
) -> FhirError:
    """A 403 (404 when the resource's existence must stay hidden) whose OperationOutcome names
    the rule, the matrix cell and the record (consent, team) it rests on, as codes."""
    details = [(RULE_SYSTEM, rule)]
    if cell and cell != rule:
        details.append((RULE_SYSTEM, cell))
    if source:
        details.append((REFERENCE_SYSTEM, source))
    if hidden:
        return FhirError(Category.NOT_FOUND, message)
    return FhirError(
        Category.FORBIDDEN, message, [Issue("error", "forbidden", message, (), tuple(details))]
    )


#: (raw store unit, patient id) -> the facts of that patient's record, None when unknown.
FactsLoader = Callable[[StoreTx, str], RecordFacts | None]


@dataclass(frozen=True, slots=True)
class Access:
    """One decision of the rules on one resource (or one search), for the audit trail."""

    action: str  # read | vread | search | create | update | delete | history
    resource: str | None  # "Type/id"
    patient: str | None  # "Patient/id"
    allowed: bool
    rule: str
    reason: str
    source: str | None = None
    cell: str | None = None
    emergency: bool = False


def _token(value: str | tuple[str, str]) -> TokenValue:
    """A code alone (any system), or a (canonical system, code) pair: LOINC is stored under
    several names (http://loinc.org, the NOS TRE_A04 URL, its OID), so its codes are matched
    alone (a LOINC code's shape names no other system); other systems are compared."""
    if isinstance(value, str):
        return TokenValue(None, value, True)
    system, code = value
    if system == LOINC:
        return TokenValue(None, code, True)
    return TokenValue(system, code, False)


def viewer_of(principal: Principal, regulation: bool = False) -> Viewer:
    """How the rules see a caller: a patient (or his representative), a professional, a
    backend service (``system/`` scopes), or another user (https://hl7.org/fhir/smart-app-launch/)."""
    compartment = principal.compartment()
    if compartment is not None:
        kind: ViewerKind = "representative" if principal.claims.get("representative") else "patient"
        return Viewer(kind, fhir_user=principal.fhir_user, patient=f"Patient/{compartment[1]}")
    professional = principal.professional
    if professional is not None:
        return Viewer("professional", professional, principal.fhir_user, regulation=regulation)
    if any(s.context == "system" for s in principal.scopes):
        return Viewer("system", fhir_user=principal.fhir_user)
    return Viewer("user", fhir_user=principal.fhir_user)


def patient_reference(value: Any) -> str | None:
    """``Patient/[id]`` from a Reference (relative or absolute), None otherwise."""
    ref = value.get("reference") if isinstance(value, Mapping) else None
    if not isinstance(ref, str):
        return None
    head, _, rid = ref.rstrip("/").rpartition("/")
    if rid and (head == "Patient" or head.endswith("/Patient")) and "?" not in ref:
        return f"Patient/{rid}"
    return None


@dataclass
class RecordGuard:
    """The rules for one request: the viewer, the active matrix, how to read a record's facts,
    the clock, and what was decided (``trace``)."""

    viewer: Viewer
    matrix: Matrix
    load_facts: FactsLoader
    clock: Callable[[], datetime]
    defs: Definitions
    #: (raw unit, IDNPS) -> why the Annuaire no longer lets him act, None when it does
    standing: Callable[[StoreTx, str], str | None] | None = None
    trace: list[Access] = field(default_factory=list)
    _standing: str | None = None
    _standing_checked: bool = False
    _facts: dict[str, RecordFacts | None] = field(default_factory=dict)
    _basis: dict[str, Basis] = field(default_factory=dict)
    _now: datetime | None = None
    _cells: dict[tuple[Any, ...], Decision] = field(default_factory=dict)

    # --- what is guarded ------------------------------------------------------------------
    def guarded(self, rtype: str) -> bool:
        """Whether resources of ``rtype`` belong to a patient's record (the Patient
        compartment, https://hl7.org/fhir/R4/compartmentdefinition-patient.html), Binary
        (a document's content) included, the Patient itself excepted."""
        if rtype in OPEN_TYPES:
            return False
        return rtype == "Binary" or bool(self.defs.compartments.get("Patient", {}).get(rtype))

    @property
    def now(self) -> datetime:
        if self._now is None:
            self._now = self.clock()
        return self._now

    def patient_of(self, tx: StoreTx, stored: Stored) -> str | None:
        """The ``Patient/[id]`` a stored resource is about (a Binary: its document's)."""
        resource = stored.resource or {}
        if stored.type == "Patient":
            return f"Patient/{stored.id}"
        if stored.type == "Binary":
            document = self.document_of(tx, stored)
            return self.patient_of(tx, document) if document is not None else None
        for name in PATIENT_ELEMENTS:
            found = patient_reference(resource.get(name))
            if found is not None:
                return found
        return None

    def document_of(self, tx: StoreTx, binary: Stored) -> Stored | None:
        """The resource a Binary's ``securityContext`` names (its DocumentReference)."""
        context = (binary.resource or {}).get("securityContext")
        ref = context.get("reference") if isinstance(context, Mapping) else None
        if not isinstance(ref, str) or "/" not in ref:
            return None
        head, _, rid = ref.rstrip("/").rpartition("/")
        found = tx.read(head.rsplit("/", 1)[-1], rid)
        return found if found is not None and not found.deleted else None

    def basis_for(self, tx: StoreTx, patient: str) -> Basis:
        """Whether the viewer may open this record now (cached for the request)."""
        if patient in self._basis:
            return self._basis[patient]
        who = self.viewer.professional
        if who is not None and self.standing is not None and not self._standing_checked:
            self._standing = self.standing(tx, who.national_id)
            self._standing_checked = True
        if self._standing is not None:
            refused = Basis(False, "dmp-access:inactive-professional", self._standing)
            self._basis[patient] = refused
            return refused
        pid = patient.rpartition("/")[2]
        if patient not in self._facts:
            self._facts[patient] = self.load_facts(tx, pid)
        facts = self._facts[patient]
        if facts is None:
            granted = basis(RecordFacts(patient), self.viewer, self.now)
            if self.viewer.kind == "professional" and granted.allowed:
                granted = Basis(False, "dmp-access:unknown-patient", f"{patient} is not known")
        else:
            granted = basis(facts, self.viewer, self.now)
        self._basis[patient] = granted
        return granted

    # --- one resource ---------------------------------------------------------------------
    def verdict(self, tx: StoreTx, stored: Stored) -> Verdict | None:
        """The decision on a stored resource; None when no rule applies to it."""
        return self._decide(tx, stored)[0]

    def _decide(self, tx: StoreTx, stored: Stored) -> tuple[Verdict | None, str | None]:
        """(the decision, None when no rule applies; the ``Patient/[id]`` the resource is
        about, None for a backend service's access or a resource of no record)."""
        if self.viewer.kind == "system":
            return None, None
        if stored.resource is None or stored.deleted or not self.guarded(stored.type):
            return None, self.patient_of(tx, stored)
        if stored.type == "Binary":
            document = self.document_of(tx, stored)
            if document is None:
                return Verdict(
                    False,
                    "dmp-access:binary-without-document",
                    "this content belongs to no document the platform knows: it is read "
                    "through its DocumentReference",
                ), None
            decided, patient = self._decide(tx, document)
            return decided or Verdict(True, "dmp-access:document", ""), patient
        patient = self.patient_of(tx, stored)
        if patient is None:
            return None, None
        granted = self.basis_for(tx, patient)
        if stored.type in DOCUMENT_TYPES:
            decided = document_verdict(
                stored.resource, self.viewer, granted, self.matrix, self._cells
            )
            return decided, patient
        return Verdict(
            granted.allowed,
            granted.rule,
            granted.reason,
            granted.source,
            None,
            False,
            granted.emergency,
        ), patient

    def check(self, tx: StoreTx, stored: Stored | None, action: str) -> Stored | None:
        """Let a read through or refuse it (403; 404 for a masked document), traced."""
        if stored is None:
            return None
        decided, patient = self._decide(tx, stored)
        resource = f"{stored.type}/{stored.id}"
        if decided is None:
            self.note(action, resource, patient)
            return stored
        self._trace(action, resource, patient, decided)
        if decided.allowed:
            return stored
        if decided.hidden:
            raise refusal(f"{resource} is not known", decided.rule, hidden=True)
        raise refusal(
            f"{resource}: {decided.reason} [{decided.rule}]",
            decided.rule,
            decided.cell,
            decided.source,
        )

    def outside(self, tx: StoreTx, stored: Stored, action: str, reason: str) -> None:
        """Trace a refusal that no rule had to decide: the resource lies outside the one record
        a patient's token may see (another patient's document): on that record's trail."""
        resource = f"{stored.type}/{stored.id}"
        self.trace.append(
            Access(action, resource, self.patient_of(tx, stored), False, "compartment", reason)
        )

    def keep(self, tx: StoreTx, found: Iterable[Stored], action: str) -> list[Stored]:
        """The resources the viewer may see among ``found`` (search matches, includes), the
        others dropped silently; each kept one traced."""
        kept: list[Stored] = []
        for stored in found:
            decided, patient = self._decide(tx, stored)
            if decided is not None and not decided.allowed:
                continue
            resource = f"{stored.type}/{stored.id}"
            if decided is None:
                self.note(action, resource, patient)
            else:
                self._trace(action, resource, patient, decided)
            kept.append(stored)
        return kept

    def check_write(self, tx: StoreTx, res_type: str, current: Stored | None, action: str) -> None:
        """A change of a guarded resource needs the right to read its current version (a
        feed, a create, needs none: authorisations are for consultation only)."""
        if current is None or current.deleted or current.resource is None:
            return
        self.check(tx, current, f"{action}-check")

    def wrote(self, action: str, stored: Stored) -> None:
        """Trace a write (a create, an update, a deletion) on the record it touched."""
        patient = None
        if self.viewer.kind != "system" or stored.type == "Patient":
            patient = self.patient_of_written(stored)
        self.note(action, f"{stored.type}/{stored.id}", patient)

    def patient_of_written(self, stored: Stored) -> str | None:
        """The patient of a written resource, read from its own elements."""
        if stored.type == "Patient":
            return f"Patient/{stored.id}"
        for name in PATIENT_ELEMENTS:
            found = patient_reference((stored.resource or {}).get(name))
            if found is not None:
                return found
        return None

    def note(self, action: str, resource: str | None, patient: str | None) -> None:
        """Trace an access no rule had to decide (the identity, a write, a service's access):
        the token's scopes allowed it."""
        what = {
            "system": "a backend service, allowed by its scopes",
            "professional": "allowed by the professional's scopes",
        }.get(self.viewer.kind, "allowed by the token's scopes")
        if resource is not None and resource.startswith("Patient/") and action == "read":
            what = f"the patient's identity: {what}"
        self.trace.append(Access(action, resource, patient, True, "scope", what))

    def _trace(self, action: str, resource: str, patient: str | None, v: Verdict) -> None:
        self.trace.append(
            Access(
                action,
                resource,
                patient,
                v.allowed,
                v.rule,
                v.reason,
                v.source,
                v.cell,
                v.emergency,
            )
        )

    # --- searches -------------------------------------------------------------------------
    def narrow(self, tx: StoreTx, query: SearchQuery) -> SearchQuery | None:
        """A search as the viewer may run it: refused when it would reach a record he may not
        open, narrowed in SQL to the documents he may read; None when nothing can match."""
        if self.viewer.kind == "system":
            return query
        for c in query.criteria:
            if c.type == "has" and any(self.guarded(t) for t, _ in c.chain):
                raise FhirError(
                    Category.FORBIDDEN,
                    "_has on a patient's record is not allowed: search the record itself",
                )
        if query.types:  # a system-level search: records are searched one at a time
            guarded = [t for t in query.types if self.guarded(t)]
            if guarded and query.explicit_types:
                reason = (
                    f"a search across types reaches no patient's record ({', '.join(guarded)}): "
                    "search one record's resources by their type, naming the patient"
                )
                self.trace.append(
                    Access("search", None, None, False, "dmp-access:no-patient", reason)
                )
                raise refusal(reason, "dmp-access:no-patient")
            if guarded:
                return replace(query, types=tuple(t for t in query.types if not self.guarded(t)))
            return query
        rtype = query.resource_type
        if not self.guarded(rtype):
            return query
        if rtype == "Binary":
            raise FhirError(
                Category.FORBIDDEN,
                "documents are found through their DocumentReference, not by searching Binary",
            )
        if self.viewer.kind in ("patient", "representative"):
            patients: set[str] | None = {self.viewer.patient} if self.viewer.patient else set()
        else:
            patients = self._query_patients(tx, query)
        if patients is None and any(
            c.code in ("_id", "identifier") and c.modifier is None and not c.chain
            for c in query.criteria
        ):
            return query  # by business identifier (PDSm conditional update): per resource
        if patients is None:
            reason = (
                f"a search of {rtype} names one patient (patient=Patient/[id] or "
                "patient.identifier=<system>|<INS>): the rules decide record by record"
            )
            self.trace.append(Access("search", rtype, None, False, "dmp-access:no-patient", reason))
            raise refusal(reason, "dmp-access:no-patient")
        patients = {p for p in patients if not p.startswith("?")}  # names no known patient
        if not patients:
            return None
        if len(patients) > 1:
            reason = f"a search of {rtype} names one patient at a time"
            self.trace.append(
                Access("search", rtype, None, False, "dmp-access:many-patients", reason)
            )
            raise refusal(reason, "dmp-access:many-patients")
        patient = next(iter(patients))
        granted = self.basis_for(tx, patient)
        if not granted.allowed:
            self.trace.append(
                Access(
                    "search", rtype, patient, False, granted.rule, granted.reason, granted.source
                )
            )
            raise refusal(
                f"{patient}: {granted.reason} [{granted.rule}]",
                granted.rule,
                source=granted.source,
            )
        if rtype not in DOCUMENT_TYPES:
            return query
        authored: list[str] = []
        facts = self._facts.get(patient)
        if (
            facts is not None
            and self.viewer.kind == "professional"
            and not granted.medecin_traitant
        ):
            authored = facts.masked_authored(self.viewer)
        wanted = document_filter(self.viewer, granted, self.matrix, authored)
        if wanted.nothing:
            self.trace.append(
                Access("search", rtype, patient, False, wanted.rules[0], wanted.reason)
            )
            return None
        return replace(query, criteria=[*query.criteria, *self._criteria(rtype, wanted, facts)])

    def _criteria(self, rtype: str, wanted: Any, facts: RecordFacts | None) -> list[Criterion]:
        params = self.defs.search_params(rtype)

        def token(
            code: str, values: Iterable[str | tuple[str, str]], modifier: str | None = None
        ) -> Criterion:
            return Criterion(code, "token", modifier, tuple(map(_token, values)), params.get(code))

        out: list[Criterion] = []
        if wanted.classes is not None:
            # (system, code) pairs, compared exactly: a class coding without a system is no
            # class the matrix knows (``decide`` denies it), so it must not match either
            classes = Criterion(
                "category",
                "token",
                None,
                tuple(TokenValue(system, code, False) for system, code in wanted.classes),
                params.get("category"),
            )
            either = [(rtype, classes)] if wanted.classes else []
            if wanted.types_allowed:
                either.append((rtype, token("type", wanted.types_allowed)))
            if len(either) == 1:
                out.append(either[0][1])
            else:
                out.append(Criterion("guard:matrix", "any", None, (), None, chain=tuple(either)))
        if wanted.types_denied:
            out.append(token("type", wanted.types_denied, "not"))
        if (
            wanted.exclude_labels == (MASQUE_PS,)
            and facts is not None
            and facts.masked_complete
            and self.viewer.kind == "professional"
        ):
            # the record's facts list its masked documents (read in this unit, or cached
            # while no document was written): the mask is a list of ids, often empty, not a
            # probe of every document's labels; ``keep`` still checks each one found
            hide = sorted({doc for doc, _, _ in facts.masked} - set(wanted.except_ids))
            if hide:
                out.append(token("_id", hide, "not"))
        elif wanted.exclude_labels:
            hidden = token("security-label", wanted.exclude_labels, "not")
            if wanted.except_ids:
                mine = token("_id", wanted.except_ids)
                out.append(
                    Criterion(
                        "guard:mask", "any", None, (), None, chain=((rtype, hidden), (rtype, mine))
                    )
                )
            else:
                out.append(hidden)
        return out

    def _query_patients(self, tx: StoreTx, query: SearchQuery) -> set[str] | None:
        """The patients a search is restricted to by its criteria (intersected), None when no
        criterion names one."""
        found: set[str] | None = None
        for c in query.criteria:
            ids: set[str] | None = None
            if c.code.startswith("compartment:Patient"):
                ids = set()
                for _, inner in c.chain:
                    ids |= self._reference_ids(inner.values)
            elif c.code in PATIENT_PARAMS and c.modifier in (None, "Patient"):
                if c.chain:
                    ids = set()
                    for target, inner in c.chain:
                        if target == "Patient":
                            ids |= self._resolve(tx, inner)
                        else:
                            ids = None
                            break
                else:
                    ids = self._reference_ids(c.values)
            if ids is not None:
                found = ids if found is None else found & ids
        return found

    @staticmethod
    def _reference_ids(values: Iterable[Any]) -> set[str]:
        out: set[str] = set()
        for v in values:
            if not isinstance(v, ReferenceValue):
                continue
            if v.type in (None, "Patient") and v.id:
                out.add(f"Patient/{v.id}")
            elif v.url:
                head, _, rid = v.url.rstrip("/").rpartition("/")
                if head.endswith("/Patient") and rid:
                    out.add(f"Patient/{rid}")
                else:
                    out.add(f"?{v.url}")  # names no patient we know: matches nothing
            else:
                out.add(f"?{v.type}/{v.id}")
        return out

    @staticmethod
    def _resolve(tx: StoreTx, inner: Criterion) -> set[str]:
        page = tx.search(SearchQuery("Patient", [inner], count=2, total="none"))
        return {f"Patient/{s.id}" for s in page.entries}


__all__ = [
    "PATIENT_PARAMS",
    "Access",
    "FactsLoader",
    "RecordGuard",
    "patient_reference",
    "viewer_of",
]
