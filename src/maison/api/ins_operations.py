"""The INSi-compatible téléservice as FHIR operations: ``Patient/$ins-search`` and
``Patient/$ins-verify`` over the reference base, each call kept as evidence for the INS rules.

https://esante.gouv.fr/produits-services/referentiel-ins
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable
from datetime import date
from typing import Any

from maison.api.interactions import Result
from maison.api.operations import (
    PROFESSIONAL_CONTEXTS,
    Invocation,
    Operation,
    Registry,
    load_definition,
)
from maison.services.ins import insi
from maison.services.ins.reference import ReferenceIdentity, from_patient, synthesize
from maison.services.ins.traits import normalise_name
from maison.store.identity_base import IdentityBase, IdentityRecord

#: Synthetic identities added to the demo reference base around the demo patients' own.
DEMO_REFERENCE_SIZE = 5000


def record_of(identity: ReferenceIdentity) -> IdentityRecord:
    """The stored form of a reference identity (https://esante.gouv.fr/produits-services/referentiel-ins)."""
    return IdentityRecord(
        matricule=identity.matricule,
        oid=identity.oid,
        birth_name=identity.nom_naissance,
        given_names=identity.prenoms,
        sex=identity.sexe,
        birth_date=identity.date_naissance,
        birth_place=identity.lieu_naissance,
        history=identity.historique,
    )


def load_demo_reference(base: IdentityBase, patients: Iterable[dict[str, Any]], seed: int) -> int:
    """The demo reference base: the demo patients' identities (so ``$ins-search`` finds them)
    and synthetic others; returns how many were loaded."""
    own = []
    for patient in patients:
        try:
            identity = from_patient(patient)
        except ValueError:
            continue  # a demo patient without a complete INS identity
        # as INSi returns them: upper case, no accents (the demo writes names as people do)
        record = record_of(identity)
        own.append(
            dataclasses.replace(
                record,
                birth_name=normalise_name(record.birth_name)[0],
                given_names=tuple(normalise_name(g)[0] for g in record.given_names),
            )
        )
    others = (record_of(i) for i in synthesize(DEMO_REFERENCE_SIZE, seed))
    counts = base.load([*own, *others])
    return counts.created + counts.updated


def _record_call(
    base: IdentityBase, operation: str, inv: Invocation, response: insi.InsiResponse
) -> None:
    identity = response.identity
    traits = (
        {
            "birth_name": identity.birth_name,
            "given_names": list(identity.given_names),
            "sex": identity.sex,
            "birth_date": identity.birth_date,
            "birth_place": identity.birth_place,
        }
        if identity is not None
        else {}
    )
    base.record_call(
        operation,
        inv.principal.subject,
        response.cr,
        identity.matricule if identity is not None else None,
        identity.oid if identity is not None else None,
        traits,
    )


def register_ins(registry: Registry, base: IdentityBase, today: Callable[[], date]) -> None:
    """Register ``$ins-search`` and ``$ins-verify`` (professionals and systems only: the answer
    names another person's INS) on ``registry``."""

    def search(inv: Invocation) -> Result:
        request = insi.search_request(inv.parameters, today())
        response = insi.search(request, base.by_traits)
        _record_call(base, "search", inv, response)
        return Result(200, insi.to_parameters(response))

    def verify(inv: Invocation) -> Result:
        request = insi.verify_request(inv.parameters, today())
        response = insi.verify(request, base.by_matricule)
        _record_call(base, "verify", inv, response)
        return Result(200, insi.to_parameters(response))

    for name, handler in (("Patient-ins-search", search), ("Patient-ins-verify", verify)):
        registry.add(
            Operation(load_definition(name), handler, "read", contexts=PROFESSIONAL_CONTEXTS)
        )
