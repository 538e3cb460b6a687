"""The composition root: the one place that picks the adapters the server runs with.

https://hl7.org/fhir/R4/http.html
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar
from urllib.parse import unquote

from maison.api import interactions as ix
from maison.api.access_operations import register_access
from maison.api.admin_operations import register_admin
from maison.api.audit_trace import CURRENT, RequestInfo, denial_event, events_of
from maison.api.dmp import DocumentSharing
from maison.api.dmp_operations import feeding_check, register_dmp
from maison.api.ins_operations import register_ins
from maison.api.interactions import (
    DeleteRule,
    SearchRule,
    UniqueClaim,
    UniqueClaims,
    WriteCheck,
    WriteRule,
)
from maison.api.merge_operations import register_merge
from maison.api.operations import Registry
from maison.api.settings import Settings
from maison.api.terminology_operations import register_terminology
from maison.audit.chain import AuditTrail
from maison.fhir.definitions import Definitions, default_definitions
from maison.fhir.errors import Category, FhirError, Issue, invalid
from maison.fhir.indexing import Indexer
from maison.fhir.validation import Validator
from maison.security.cache import CachingAuthenticator
from maison.security.guard import GuardedTx
from maison.security.issuer import LocalIssuer
from maison.security.jwks import RemoteJwks
from maison.security.matrix_store import ActiveMatrix
from maison.security.principal import Principal
from maison.security.record_guard import RecordGuard, refusal, viewer_of
from maison.security.tokens import JwtAuthenticator
from maison.services.dmp import lifecycle, provide, record
from maison.services.dmp.relations import FactsCache
from maison.services.ins import rules as ins_rules
from maison.services.ins.accounts import ins_identity
from maison.services.ins.reliability import InsiEvidence
from maison.services.ins.rules import INSI_ASSERT_SCOPE
from maison.store.blobs import open_blob_store
from maison.store.crypto import Keyring
from maison.store.identity_base import IdentityBase
from maison.store.interface import StoreTx
from maison.store.sql import SqlStore, StoreSettings
from maison.terminology.binding import ServiceBindings
from maison.terminology.search_codes import SearchCodes
from maison.terminology.service import expansion_cache, terminology_source
from maison.terminology.source import TerminologySource, canonical_system
from maison.terminology.sql_source import SqlTerminology

T = TypeVar("T")
#: The access mode of a SAMU's médecin régulateur (the DMP's "centre de régulation" mode).
REGULATION_MODE = "centre-de-regulation"
Runner = Callable[[Callable[[StoreTx], Any], bool], Any]


@dataclass
class Services:
    """Everything a request handler may use, built once per process."""

    settings: Settings
    defs: Definitions
    store: SqlStore
    validator: Validator
    authenticator: CachingAuthenticator
    issuer: LocalIssuer | None
    base_defs: Definitions | None = None  # the package definitions, before installed guides
    conformance_rev: str | None = None
    next_check: float = 0.0
    refresh_seconds: float = 1.0
    operations: Registry = field(default_factory=Registry)
    identity_base: IdentityBase | None = None
    #: the terminologies loaded with `maison terminology load` (NOS, LOINC, SNOMED CT)
    terminologies: SqlTerminology | None = None
    #: the DMP's document sharing (ITI-65/105/68), its content in the blob store
    dmp: DocumentSharing | None = None
    #: the habilitation matrix in force (None: the DMP access rules are off, scopes only)
    matrix: ActiveMatrix | None = None
    #: the tamper-evident trail every access is recorded in (None: not recorded)
    audit: AuditTrail | None = None
    #: structures (FINESS / SIRET / RASS) whose professionals may use the centre de
    #: régulation (SAMU) mode
    regulation_centres: frozenset[str] = frozenset()
    #: the facts of records and professionals' standing, kept while nothing they read changes
    facts_cache: FactsCache = field(init=False)

    def __post_init__(self) -> None:
        # PostgreSQL writers commit out of seq order across processes: entries kept 1 s at most
        max_age = 1.0 if self.store.dialect == "postgresql" else None
        self.facts_cache = FactsCache(lambda: self.defs, max_age=max_age)

    def terminology(self, defs: Definitions) -> TerminologySource:
        """The loaded terminologies, then the definitions' code systems, value sets and maps
        (https://hl7.org/fhir/R4/terminology-service.html)."""
        extra = [self.terminologies] if self.terminologies is not None else []
        return terminology_source(defs, extra)

    def search_terms(self) -> SearchCodes:
        """What token searches expand value sets and hierarchies with
        (https://hl7.org/fhir/R4/search.html#token)."""
        return SearchCodes(self.terminology(self.defs), expansion_cache())

    def validator_for(self, defs: Definitions) -> Validator:
        """A validator whose binding checks ask the terminology service."""
        bindings = ServiceBindings(self.terminology(defs), expansion_cache())
        return Validator(defs, terminology=bindings)

    def refresh_due(self) -> bool:
        """Whether the installed definitions should be looked at again (cheap, no I/O)."""
        return time.monotonic() >= self.next_check

    def refresh(self) -> None:
        """Reload installed conformance resources when another process (or this one) changed
        them: a guide installed while the server runs applies within ``refresh_seconds``."""
        self.next_check = time.monotonic() + self.refresh_seconds
        rev = self.store.conformance_rev()
        if rev == self.conformance_rev:
            return
        base = self.base_defs or self.defs
        defs = base.extended(self.store.conformance_resources())
        self.store.indexer = Indexer(defs).extract
        self.validator = self.validator_for(defs)
        self.defs = defs
        self.base_defs = base
        self.conformance_rev = rev

    def validate(self, resource: dict[str, Any]) -> list[Issue]:
        """Validate against the base definition and the declared, known profiles."""
        meta = resource.get("meta")
        profiles = meta.get("profile") if isinstance(meta, dict) else None
        if not isinstance(profiles, list):
            profiles = None
        return self.validator.validate(resource, profiles)

    def rules_for(
        self, principal: Principal, info: RequestInfo | None, write: bool = False
    ) -> RecordGuard | None:
        """The DMP access rules of one request (https://www.legifrance.gouv.fr/jorf/id/JORFTEXT000048256185)."""
        if self.matrix is None:
            return None
        regulation = False
        if info is not None and info.access_mode is not None:
            regulation = self._regulation_mode(principal, info.access_mode)
        facts, standing = self.facts_cache.for_request(record.RETENTION_YEARS, write)
        return RecordGuard(
            viewer_of(principal, regulation),
            self.matrix.current(),
            facts,
            self.store.clock,
            self.defs,
            standing=standing,
        )

    def _regulation_mode(self, principal: Principal, mode: str) -> bool:
        """Whether the centre de régulation mode a request asks for is granted: only to a
        professional acting for a structure declared as a centre de régulation."""
        if mode != REGULATION_MODE:
            raise invalid(
                f"X-Access-Mode {mode[:40]!r} is not known: the only mode is {REGULATION_MODE}"
            )
        who = principal.professional
        if who is None or not self.regulation_centres.intersection(who.structure.values()):
            raise refusal(
                "the centre de régulation mode is reserved to professionals acting for a "
                "structure declared as a centre de régulation (maison serve "
                "--regulation-centre, MAISON_REGULATION_CENTRES)",
                "dmp-access:regulation-not-declared",
            )
        return True

    def run(self, principal: Principal, write: bool, fn: Callable[[GuardedTx], T]) -> T:
        """Run ``fn`` on a store transaction seen through the caller's permissions and the DMP
        access rules; writes are group-committed and return only once durable, with the
        AuditEvents of what was done; reads are recorded before the answer leaves."""
        unit = AuditedUnit(self, principal, write, fn)
        try:
            result = self.store.write(unit) if write else self.store.read(unit)
        except FhirError as error:
            unit.failed(error)
            raise
        unit.done()
        return result

    def run_read(
        self, principal: Principal, fn: Callable[[GuardedTx], T]
    ) -> tuple[T, Future[list[int]] | None]:
        """:meth:`run` for a read whose caller renders its answer while the trail records
        the accesses: (the result, the recording to wait for before the answer leaves)."""
        unit = AuditedUnit(self, principal, False, fn)
        try:
            result = self.store.read(unit)
        except FhirError as error:
            unit.failed(error)
            raise
        return result, unit.done(wait=False)

    async def run_write(self, principal: Principal, fn: Callable[[GuardedTx], T]) -> T:
        """Queue ``fn`` for the group-commit writer and await it, without blocking a thread."""
        unit = AuditedUnit(self, principal, True, fn)
        fut = self.store.write_future(unit)
        try:
            result: T = await asyncio.wrap_future(fut)
        except FhirError as error:
            await asyncio.to_thread(unit.failed, error)
            raise
        return result

    def write_rules(self, principal: Principal | None) -> dict[str, WriteRule]:
        """The business rules on writes, for this caller (``None``: the operator's own
        imports, trusted to declare INSi interrogations)."""
        may_assert = principal is None or INSI_ASSERT_SCOPE in principal.other_scopes
        clock = self.store.clock
        base = self.identity_base
        client = principal.subject if principal is not None else None

        def evidence(matricule: str) -> list[InsiEvidence]:
            """This caller's own calls of the platform's INSi service that returned the
            matricule, newest first (another client's call proves nothing for this one)."""
            if base is None or client is None:
                return []
            found = []
            for call in base.calls_for(matricule):
                if call.client != client:
                    continue
                ev = ins_rules.evidence_from_call(
                    call.cr, call.matricule, call.oid, call.traits, call.at.date()
                )
                if ev is not None:
                    found.append(ev)
            return found

        def patient(new: dict[str, Any], old: dict[str, Any] | None) -> Any:
            return ins_rules.patient_write(new, old, may_assert, clock().date(), evidence)

        def document(new: dict[str, Any], old: dict[str, Any] | None) -> Any:
            return lifecycle.check_update(new, old)

        return {"Patient": patient, "DocumentReference": document, "Binary": lifecycle.check_binary}

    def unique_claims(self) -> dict[str, UniqueClaims]:
        """Identifiers one resource holds alone: a matricule INS belongs to one Patient
        (identity-vigilance: a collision is refused, https://esante.gouv.fr/produits-services/referentiel-ins)."""

        def patient(resource: dict[str, Any]) -> list[UniqueClaim]:
            return [
                UniqueClaim(
                    "identifier",
                    system,
                    value,
                    "The matricule INS",
                    "one INS belongs to one person. If both records are the same person, merge "
                    "them (Patient/$merge); otherwise correct the identifier and report the "
                    "collision to the identity-vigilance cell",
                )
                for system, value in ins_rules.ins_identifiers(resource)
            ] + [
                UniqueClaim(
                    "identifier",
                    system,
                    value,
                    "The IPP",
                    "an IPP names one patient in its structure. If both records are the same "
                    "person, merge them (Patient/$merge); otherwise correct the IPP",
                )
                for system, value in ins_rules.ipp_identifiers(resource)
            ]

        return {"Patient": patient}

    def search_rules(self, principal: Principal | None) -> dict[str, SearchRule]:
        """Rules of the services on searches: a professional's or a patient's Find Document
        References names the patient, and results come by service date
        (https://profiles.ihe.net/ITI/MHD/ITI-67.html)."""
        system = principal is None or any(s.context == "system" for s in principal.scopes)

        # the service date: PDSm's period-start once the guide is installed, else the date
        # the document was written (the core period parameter sorts open periods last)
        known = self.defs.search_params("DocumentReference")
        service_date = "period-start" if "period-start" in known else "date"

        def documents(params: list[tuple[str, str]]) -> list[tuple[str, str]]:
            return provide.find_documents_query(params, not system, service_date)

        return {"DocumentReference": documents}

    def delete_rules(self) -> dict[str, DeleteRule]:
        """What may not be deleted: a DMP document is never deleted physically through the API
        (https://interop.esante.gouv.fr/ig/fhir/pdsm4dmp/, TD3.3c)."""
        return {"DocumentReference": lifecycle.check_delete, "Binary": lifecycle.check_delete}

    def write_checks(self) -> dict[str, WriteCheck]:
        """Checks of writes against other resources: documents and messages name a patient by
        INS only if the identity is qualified (https://esante.gouv.fr/produits-services/referentiel-ins)."""
        check = ins_rules.check_ins_emission
        return {t: check for t in ("DocumentReference", "Composition", "Bundle", "List")}

    def context(self, base_url: str, principal: Principal | None) -> ix.Context:
        """The handler context of one request (``principal`` None: the operator's imports)."""
        return ix.Context(
            self.defs,
            self.validate,
            base_url.rstrip("/"),
            rules=self.write_rules(principal),
            unique=self.unique_claims(),
            checks=self.write_checks(),
            deletes=self.delete_rules(),
            searches=self.search_rules(principal),
            terms=self.search_terms(),
            ahead=self.store.index_ahead,
        )

    def runner(self, principal: Principal) -> Runner:
        """A runner for the bundle processor."""
        return lambda fn, write: self.run(principal, write, fn)

    def jwks(self) -> dict[str, Any] | None:
        """The local issuer's public keys (development mode only)."""
        return self.issuer.jwks() if self.issuer else None

    def openid_configuration(self, base_url: str) -> dict[str, Any] | None:
        """The local issuer's discovery document (development mode only)."""
        return self.issuer.openid_configuration(base_url) if self.issuer else None

    def oauth_uris(self, base_url: str) -> dict[str, str] | None:
        """The authorization server's endpoints for the CapabilityStatement's SMART
        ``oauth-uris`` extension; None when an external issuer is trusted (its own discovery
        says): https://hl7.org/fhir/smart-app-launch/conformance.html."""
        if self.issuer is None:
            return None
        config = self.smart_configuration(base_url.rstrip("/"))
        names = {
            "authorize": "authorization_endpoint",
            "token": "token_endpoint",
            "revoke": "revocation_endpoint",
            "introspect": "introspection_endpoint",
        }
        return {k: str(config[v]) for k, v in names.items() if config.get(v)}

    def smart_configuration(self, base_url: str) -> dict[str, Any]:
        """SMART App Launch discovery, the ``/auth`` OpenID metadata plus SMART capabilities: https://hl7.org/fhir/smart-app-launch/conformance.html."""
        if self.issuer is None:  # an external issuer: its own discovery says the rest
            return {
                "issuer": self.settings.issuer_url,
                "capabilities": ["permission-v1", "permission-v2"],
                "code_challenge_methods_supported": ["S256"],
            }
        oidc = self.issuer.openid_configuration(base_url)
        names = (
            "issuer", "jwks_uri", "authorization_endpoint", "token_endpoint",
            "introspection_endpoint", "revocation_endpoint", "grant_types_supported",
            "token_endpoint_auth_methods_supported",
            "token_endpoint_auth_signing_alg_values_supported", "scopes_supported",
            "response_types_supported", "code_challenge_methods_supported",
        )  # fmt: skip
        return {
            **{k: oidc[k] for k in names},
            "capabilities": list(SMART_CAPABILITIES),
        }


#: What the SMART authorization server does: https://hl7.org/fhir/smart-app-launch/conformance.html#capabilities.
SMART_CAPABILITIES = (
    "launch-ehr",
    "launch-standalone",
    "authorize-post",
    "client-public",
    "client-confidential-symmetric",
    "client-confidential-asymmetric",
    "context-ehr-patient",
    "context-ehr-encounter",
    "context-standalone-patient",
    "sso-openid-connect",
    "permission-offline",
    "permission-online",
    "permission-patient",
    "permission-user",
    "permission-v1",
    "permission-v2",
)


def identity_status(store: SqlStore, system: str, value: str) -> str | None:
    """The identity status (FR Core code; ``QUAL`` only when the INS may be emitted) of the
    Patient carrying an INS, None when none does (https://esante.gouv.fr/produits-services/referentiel-ins)."""
    holders = store.read(lambda tx: tx.holders("Patient", "identifier", system, value))
    for held in holders:
        if held.resource is not None and not held.deleted:
            identity = ins_identity(held.resource)
            return "QUAL" if identity.qualified else (identity.status or "PROV")
    return None


def subject_patient(store: SqlStore, subject: Mapping[str, Any]) -> dict[str, Any] | None:
    """The Patient a subject names: ``Patient/id``, ``Patient?identifier=system|value`` or a
    logical reference by identifier (https://hl7.org/fhir/R4/references.html)."""
    ref = subject.get("reference")
    ident = subject.get("identifier")
    if isinstance(ref, str) and ref.startswith("Patient/"):
        stored = store.read(lambda tx: tx.read("Patient", ref.split("/")[1]))
        return stored.resource if stored is not None and not stored.deleted else None
    if isinstance(ref, str) and ref.startswith("Patient?identifier="):
        system, _, value = unquote(ref.split("=", 1)[1]).partition("|")
        ident = {"system": system, "value": value}
    if isinstance(ident, Mapping) and isinstance(ident.get("value"), str):
        return {"resourceType": "Patient", "identifier": [dict(ident)]}
    return None


class AuditedUnit(Generic[T]):
    """One store unit of a request: ``fn`` on the guarded store, its accesses recorded in the
    trail — inside the unit for a write (they commit or roll back with it), right after it
    for a read, and the denials and reads of a failed unit after its failure
    (https://profiles.ihe.net/ITI/BALP/)."""

    def __init__(
        self, services: Services, principal: Principal, write: bool, fn: Callable[[GuardedTx], T]
    ) -> None:
        self.s = services
        self.principal = principal
        self.write = write
        self.fn = fn
        self.info = CURRENT.get()  # read in the request's context, before any thread hop
        self.rules: RecordGuard | None = None
        self.pending: list[dict[str, Any]] = []

    def __call__(self, tx: StoreTx) -> T:
        rules = self.s.rules_for(self.principal, self.info, self.write)  # fresh per attempt
        self.rules = rules
        self.pending = []
        result = self.fn(GuardedTx(tx, self.principal, self.s.defs, rules))
        trail = self.s.audit
        if trail is not None and rules is not None:
            events = events_of(rules.trace, self.principal, self.info, self.s.store.clock())
            if events and self.write:
                trail.record(events, tx)  # type: ignore[arg-type]
            else:
                self.pending = events
        return result

    def done(self, wait: bool = True) -> Future[list[int]] | None:
        """Record the accesses of a read unit, durable when this returns; with ``wait``
        false, the recording is queued and returned, for the caller to wait for before the
        answer leaves."""
        trail, events = self.s.audit, self.pending
        self.pending = []
        if trail is None or not events:
            return None
        if not wait:
            return trail.record_future(events)
        trail.record(events)
        return None

    def failed(self, error: FhirError) -> None:
        """Record what a failed unit decided: its denials and the reads it made."""
        trail = self.s.audit
        if trail is None:
            return
        clock = self.s.store.clock
        rules = self.rules
        events = (
            events_of(rules.trace, self.principal, self.info, clock(), error.message)
            if rules is not None
            else []
        )
        denied = any(e.get("outcome") != "0" for e in events)
        if error.category is Category.FORBIDDEN and not denied:
            events.append(denial_event(self.principal, self.info, clock(), error.message))
        if events:
            trail.record(events)


def make_store(settings: Settings, defs: Definitions) -> SqlStore:
    """The SQL store for the configured database, its data keys and indexer."""
    state = settings.state_dir
    state.mkdir(parents=True, exist_ok=True)
    if not settings.is_url:
        from pathlib import Path

        Path(settings.data).mkdir(parents=True, exist_ok=True)
    indexer = Indexer(defs)
    return SqlStore(
        settings.database_url,
        Keyring.load_or_create(state),
        indexer.extract,
        settings=StoreSettings(sqlite_synchronous=settings.sqlite_synchronous),
    )


def make_authenticator(settings: Settings) -> tuple[CachingAuthenticator, LocalIssuer | None]:
    """The configured issuer, or the local development issuer."""
    audience = settings.audience or settings.base_url
    if settings.issuer:
        remote = JwtAuthenticator(settings.issuer, audience, RemoteJwks(settings.issuer))
        return CachingAuthenticator(remote), None
    issuer = LocalIssuer.load_or_create(settings.state_dir / "keys", settings.issuer_url)
    return CachingAuthenticator(issuer.authenticator(audience)), issuer


def build_services(settings: Settings) -> Services:
    """Build every adapter the server needs."""
    defs = default_definitions()
    store = make_store(settings, defs)
    authenticator, issuer = make_authenticator(settings)
    services = Services(
        settings, defs, store, Validator(defs), authenticator, issuer, base_defs=defs
    )
    services.terminologies = SqlTerminology(store)
    services.validator = services.validator_for(defs)
    services.identity_base = IdentityBase(store)
    register_ins(services.operations, services.identity_base, lambda: store.clock().date())
    register_merge(services.operations)
    register_dmp(services.operations, store.clock)
    register_access(
        services.operations, store.clock, settings.emergency_minutes, settings.consent_hours
    )
    register_terminology(services.operations, defs, services.terminology)
    register_admin(services.operations, store, lambda: services.audit)
    state = settings.state_dir
    strict = settings.dmp_strict if settings.dmp_strict is not None else not settings.demo
    services.matrix = ActiveMatrix(store, canonical_system)
    services.audit = AuditTrail.open(store, state)
    services.regulation_centres = settings.regulation_ids
    services.dmp = DocumentSharing(
        blobs=open_blob_store(settings.blob_dir, state / "keys"),
        terminology=lambda: services.terminology(services.defs),
        has_profile=lambda url: url in services.defs.structure_definitions,
        strict=strict,
        new_id=store.new_id,
        identity=lambda system, value: identity_status(store, system, value),
        patient=lambda subject: subject_patient(store, subject),
        feeding=feeding_check(store.read),
    )
    return services
