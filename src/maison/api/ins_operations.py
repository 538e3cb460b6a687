"""The INSi-compatible téléservice as FHIR operations: ``Patient/$ins-search`` and
``Patient/$ins-verify`` over the reference base, each call kept as evidence for the INS rules.

https://esante.gouv.fr/produits-services/referentiel-ins
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date

from maison.api.interactions import Result
from maison.api.operations import (
    PROFESSIONAL_CONTEXTS,
    Invocation,
    Operation,
    Registry,
    load_definition,
)
from maison.services.ins import insi
from maison.store.identity_base import IdentityBase


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
