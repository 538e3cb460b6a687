"""``Patient/$merge`` and ``Patient/[id]/$unmerge``: identity-vigilance merges, registered with
their OperationDefinitions and run on the caller's guarded store.

https://hl7.org/fhir/R5/patient-operation-merge.html
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from maison.api import interactions as ix
from maison.api.operations import (
    PROFESSIONAL_CONTEXTS,
    Invocation,
    Operation,
    Registry,
    load_definition,
)
from maison.fhir.errors import Category, FhirError, Issue
from maison.security.admin import is_admin
from maison.security.guard import GuardedTx
from maison.services.ins import merge as svc
from maison.store.interface import Stored


@dataclass(frozen=True)
class RuleWriter:
    """Writes a merge through the generic update and create handlers: validation and the write
    rules (the INS rules on Patient) apply as to any PUT (https://hl7.org/fhir/R4/http.html)."""

    ctx: ix.Context
    tx: GuardedTx

    def update(self, resource: dict[str, Any], version: int) -> tuple[Stored, list[Issue]]:
        """A new version replacing ``version``, as ``PUT [type]/[id]`` with If-Match:
        https://hl7.org/fhir/R4/http.html#update."""
        res_type, res_id = resource["resourceType"], resource["id"]
        result = ix.update(self.ctx, self.tx, res_type, res_id, resource, f'W/"{version}"')
        return _stored(result), result.issues

    def create(self, resource: dict[str, Any]) -> tuple[Stored, list[Issue]]:
        """A new resource, as ``POST [type]``: https://hl7.org/fhir/R4/http.html#create."""
        result = ix.create(self.ctx, self.tx, resource["resourceType"], resource)
        return _stored(result), result.issues


def _stored(result: ix.Result) -> Stored:
    if result.stored is None:
        raise FhirError(Category.INTERNAL, "a write returned no stored version")
    return result.stored


def _agent(inv: Invocation) -> str:
    return inv.principal.fhir_user or inv.principal.subject


def _id(inv: Invocation, name: str, res_type: str) -> str | None:
    value = inv.value(name)
    if value is None:
        return None
    return svc.reference_id(value, res_type, [inv.ctx.base_url], name)


def merge(inv: Invocation) -> ix.Result:
    """``POST Patient/$merge``: https://hl7.org/fhir/R5/patient-operation-merge.html."""
    request = svc.MergeRequest(
        source=_id(inv, "source-patient", "Patient"),
        target=_id(inv, "target-patient", "Patient"),
        source_identifiers=tuple(inv.values("source-patient-identifier")),
        target_identifiers=tuple(inv.values("target-patient-identifier")),
        preview=inv.value("preview") is True,
    )
    result = svc.merge(
        inv.tx,
        RuleWriter(inv.ctx, inv.tx),
        inv.ctx.defs,
        request,
        _agent(inv),
        [inv.ctx.base_url],
    )
    return ix.Result(200, svc.output_parameters(result, inv.parameters))


def unmerge(inv: Invocation) -> ix.Result:
    """``POST Patient/[id]/$unmerge``: undo the merge of this (source) record, from its merge
    Provenance (https://hl7.org/fhir/R5/patient-operation-merge.html)."""
    if inv.resource_id is None:
        raise FhirError(Category.INVALID, "$unmerge is invoked on a Patient: Patient/[id]/$unmerge")
    ix.check_id(inv.resource_id)
    # finding the merge's Provenance searches Provenance by entity, which the record rules
    # refuse to a professional (no patient named): an administrator (identity-vigilance) reads
    # them directly; the writes still go through the rules
    reads = inv.tx.tx if is_admin(inv.principal) else inv.tx
    result = svc.unmerge(
        reads,
        RuleWriter(inv.ctx, inv.tx),
        inv.ctx.defs,
        inv.resource_id,
        _agent(inv),
        _id(inv, "provenance", "Provenance"),
        [inv.ctx.base_url],
    )
    return ix.Result(200, svc.output_parameters(result, None, patient="source"))


def register_merge(registry: Registry) -> None:
    """Offer ``$merge`` and ``$unmerge`` on Patient to professionals and systems (never to a
    patient's app): https://hl7.org/fhir/R5/patient-operation-merge.html."""
    registry.add(
        Operation(load_definition("Patient-merge"), merge, "update", PROFESSIONAL_CONTEXTS)
    )
    registry.add(
        Operation(load_definition("Patient-unmerge"), unmerge, "update", PROFESSIONAL_CONTEXTS)
    )


__all__ = ["RuleWriter", "merge", "register_merge", "unmerge"]
