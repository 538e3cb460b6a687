"""Check a FHIR interaction against the caller's SMART scopes.

https://hl7.org/fhir/smart-app-launch/scopes-and-launch-context.html
"""

from __future__ import annotations

from maison.fhir.errors import Category, FhirError
from maison.security.principal import Principal

# FHIR interaction (https://hl7.org/fhir/R4/http.html) -> SMART v2 permission letter.
# Type- and system-level history list many resources, like a search.
INTERACTION_PERMISSION: dict[str, str] = {
    "read": "r",
    "vread": "r",
    "history": "r",
    "history-instance": "r",
    "search": "s",
    "search-type": "s",
    "search-system": "s",
    "history-type": "s",
    "history-system": "s",
    "create": "c",
    "update": "u",
    "patch": "u",
    "delete": "d",
}
# Bundles whose entries the caller checks one by one.
BUNDLE_INTERACTIONS = frozenset({"transaction", "batch"})


def authorize(
    principal: Principal,
    interaction: str,
    resource_type: str | None,
    contexts: frozenset[str] = frozenset({"patient", "user", "system"}),
) -> None:
    """Raise FORBIDDEN unless a scope of one of ``contexts`` allows the interaction: https://hl7.org/fhir/smart-app-launch/scopes-and-launch-context.html."""
    if interaction in BUNDLE_INTERACTIONS:
        if any(_usable(principal, s.context) for s in principal.scopes):
            return
        raise FhirError(
            Category.FORBIDDEN, f"{interaction} refused: the token grants no usable resource scope"
        )
    permission = INTERACTION_PERMISSION.get(interaction)
    if permission is None:
        # "operation" and unknown names: the caller must pass the interaction an operation needs
        raise ValueError(f"unknown interaction for authorization: {interaction!r}")
    needs_context = False
    wrong_context = False
    for scope in principal.scopes:
        if not scope.covers(permission, resource_type):
            continue
        if scope.context not in contexts:
            wrong_context = True
            continue
        if _usable(principal, scope.context):
            return
        needs_context = True
    target = resource_type or "all resource types"
    if wrong_context and not needs_context:
        allowed = " or ".join(f"{c}/" for c in sorted(contexts))
        reason = (
            f"{interaction} on {target} refused: only {allowed} scopes may do this, "
            "not the token's scopes"
        )
    elif needs_context:
        reason = (
            f"{interaction} on {target} refused: patient/ scopes need a patient in the "
            "launch context and the token has none"
        )
    else:
        kind = resource_type or "*"
        reason = (
            f"{interaction} on {target} refused: no scope grants '{permission}' "
            f"(e.g. user/{kind}.{permission} or patient/{kind}.{permission})"
        )
    raise FhirError(Category.FORBIDDEN, reason)


def _usable(principal: Principal, context: str) -> bool:
    # system/ and user/ allow every instance of the type (user/ is refined later);
    # patient/ needs a launch patient, the store then confines to its compartment.
    return context != "patient" or bool(principal.patient)
