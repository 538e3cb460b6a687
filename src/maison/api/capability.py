"""The CapabilityStatement, generated from what the server actually supports.

https://hl7.org/fhir/R4/capabilitystatement.html
"""

from __future__ import annotations

import functools
from typing import Any

from maison import __version__
from maison.api.operations import Registry, capability_operations
from maison.fhir.definitions import Definitions
from maison.fhir.search import searchable

TYPE_INTERACTIONS = (
    "read",
    "vread",
    "update",
    "patch",
    "delete",
    "history-instance",
    "history-type",
    "create",
    "search-type",
)


@functools.cache
def _resources(defs: Definitions) -> tuple[dict[str, Any], ...]:
    out = []
    for rtype in sorted(defs.resource_types):
        params = [
            {"name": p.code, "definition": p.url, "type": p.type}
            for p in sorted(defs.search_params(rtype).values(), key=lambda p: p.code)
            if searchable(p)
        ]
        out.append(
            {
                "type": rtype,
                "profile": f"http://hl7.org/fhir/StructureDefinition/{rtype}",
                "interaction": [{"code": c} for c in TYPE_INTERACTIONS],
                "versioning": "versioned-update",
                "readHistory": True,
                "updateCreate": True,
                "conditionalCreate": True,
                "conditionalRead": "not-supported",
                "conditionalUpdate": True,
                "conditionalDelete": "single",
                "searchParam": params,
                "operation": [
                    {
                        "name": "validate",
                        "definition": "http://hl7.org/fhir/OperationDefinition/Resource-validate",
                    }
                ],
            }
        )
    return tuple(out)


def capability_statement(
    defs: Definitions,
    base_url: str,
    registry: Registry | None = None,
    oauth: dict[str, str] | None = None,
) -> dict[str, Any]:
    """This server's CapabilityStatement (https://hl7.org/fhir/R4/capabilitystatement.html);
    ``oauth`` names its authorization server's endpoints (``authorize``, ``token``,
    ``revoke``…) for SMART clients that discover them there
    (https://hl7.org/fhir/smart-app-launch/conformance.html#using-cors)."""
    oauth_uris = (
        [
            {
                "url": "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris",
                "extension": [{"url": k, "valueUri": v} for k, v in sorted(oauth.items())],
            }
        ]
        if oauth
        else []
    )
    registry = registry or Registry()
    resources = []
    for entry in _resources(defs):
        extra = capability_operations(registry.for_type(entry["type"]))
        if extra:
            entry = {**entry, "operation": [*entry["operation"], *extra]}
        resources.append(entry)
    rest_ops = capability_operations(registry.system())
    return {
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": "2026-11-26",
        "publisher": "maison",
        "kind": "instance",
        "software": {"name": "maison", "version": __version__},
        "implementation": {"description": "maison FHIR R4 server", "url": base_url},
        "fhirVersion": defs.fhir_version,
        "format": ["application/fhir+json", "json"],
        "patchFormat": ["application/json-patch+json", "application/fhir+json"],
        "rest": [
            {
                "mode": "server",
                "security": {
                    **({"extension": oauth_uris} if oauth_uris else {}),
                    "cors": False,
                    "service": [
                        {
                            "coding": [
                                {
                                    "system": "http://terminology.hl7.org/CodeSystem/restful-security-service",
                                    "code": "SMART-on-FHIR",
                                }
                            ]
                        }
                    ],
                    "description": "Bearer JWT access tokens (RFC 9068) with SMART scopes",
                },
                "resource": resources,
                "interaction": [
                    {"code": "transaction"},
                    {"code": "batch"},
                    {"code": "history-system"},
                    {"code": "search-system"},
                ],
                "searchParam": [
                    {"name": p.code, "definition": p.url, "type": p.type}
                    for p in sorted(defs.search_params("Account").values(), key=lambda p: p.code)
                    if p.base in ("Resource", "DomainResource") and searchable(p)
                ],
                **({"operation": rest_ops} if rest_ops else {}),
            }
        ],
    }
