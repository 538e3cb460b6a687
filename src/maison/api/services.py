"""The composition root: the one place that picks the adapters the server runs with.

https://hl7.org/fhir/R4/http.html
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from maison.api.ins_operations import register_ins
from maison.api.interactions import UniqueClaim, UniqueClaims, WriteCheck, WriteRule
from maison.api.merge_operations import register_merge
from maison.api.operations import Registry
from maison.api.settings import Settings
from maison.api.terminology_operations import register_terminology
from maison.fhir.definitions import Definitions, default_definitions
from maison.fhir.errors import Issue
from maison.fhir.indexing import Indexer
from maison.fhir.validation import Validator
from maison.security.cache import CachingAuthenticator
from maison.security.guard import GuardedTx
from maison.security.issuer import LocalIssuer
from maison.security.jwks import RemoteJwks
from maison.security.principal import Principal
from maison.security.tokens import JwtAuthenticator
from maison.services.ins import rules as ins_rules
from maison.services.ins.reliability import InsiEvidence
from maison.services.ins.rules import INSI_ASSERT_SCOPE
from maison.store.crypto import Keyring
from maison.store.identity_base import IdentityBase
from maison.store.interface import StoreTx
from maison.store.sql import SqlStore, StoreSettings
from maison.terminology.binding import ServiceBindings
from maison.terminology.search_codes import SearchCodes
from maison.terminology.service import expansion_cache, terminology_source
from maison.terminology.source import TerminologySource
from maison.terminology.sql_source import SqlTerminology

T = TypeVar("T")
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

    def run(self, principal: Principal, write: bool, fn: Callable[[GuardedTx], T]) -> T:
        """Run ``fn`` on a store transaction seen through the caller's permissions; writes are
        group-committed and return only once durable."""
        if write:
            return self.store.write(lambda tx: fn(GuardedTx(tx, principal)))
        return self.store.read(lambda tx: fn(GuardedTx(tx, principal)))

    async def run_write(self, principal: Principal, fn: Callable[[GuardedTx], T]) -> T:
        """Queue ``fn`` for the group-commit writer and await it, without blocking a thread."""
        fut = self.store.write_future(lambda tx: fn(GuardedTx(tx, principal)))
        result: T = await asyncio.wrap_future(fut)
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

        return {"Patient": patient}

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

    def write_checks(self) -> dict[str, WriteCheck]:
        """Checks of writes against other resources: documents and messages name a patient by
        INS only if the identity is qualified (https://esante.gouv.fr/produits-services/referentiel-ins)."""
        check = ins_rules.check_ins_emission
        return {t: check for t in ("DocumentReference", "Composition", "Bundle", "List")}

    def runner(self, principal: Principal) -> Runner:
        """A runner for the bundle processor."""
        return lambda fn, write: self.run(principal, write, fn)

    def jwks(self) -> dict[str, Any] | None:
        """The local issuer's public keys (development mode only)."""
        return self.issuer.jwks() if self.issuer else None

    def openid_configuration(self, base_url: str) -> dict[str, Any] | None:
        """The local issuer's discovery document (development mode only)."""
        return self.issuer.openid_configuration(base_url) if self.issuer else None

    def smart_configuration(self, base_url: str) -> dict[str, Any]:
        """SMART App Launch discovery: https://hl7.org/fhir/smart-app-launch/conformance.html."""
        return {
            "issuer": self.settings.issuer_url,
            "jwks_uri": f"{base_url}/.well-known/jwks.json" if self.issuer else None,
            "grant_types_supported": ["client_credentials"],
            "scopes_supported": [
                "system/*.read",
                "system/*.write",
                "user/*.read",
                "patient/*.read",
            ],
            "capabilities": ["permission-v1", "permission-v2"],
            "code_challenge_methods_supported": ["S256"],
        }


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
    register_terminology(services.operations, defs, services.terminology)
    return services
