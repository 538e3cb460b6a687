"""The terminology operations as FHIR operations, registered with the base R4
OperationDefinitions: ``ValueSet/$expand``, ``ValueSet/$validate-code``,
``CodeSystem/$lookup``, ``CodeSystem/$validate-code``, ``CodeSystem/$subsumes``,
``ConceptMap/$translate``, at type level and (where R4 allows it) on an instance. Calling one
needs read access to the resource type it is invoked on.

https://hl7.org/fhir/R4/terminology-service.html
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from maison.api import interactions as ix
from maison.api.operations import Invocation, Operation, Registry
from maison.fhir.definitions import Definitions
from maison.fhir.errors import Category, FhirError
from maison.terminology.errors import not_supported
from maison.terminology.expand import expand
from maison.terminology.lookup import lookup, subsumes
from maison.terminology.service import expansion_cache, package_source, terminology_source
from maison.terminology.source import TerminologySource
from maison.terminology.translate import translate
from maison.terminology.validate import validate_in_code_system, validate_in_value_set

SourceFor = Callable[[Definitions], TerminologySource]
BASE = "http://hl7.org/fhir/OperationDefinition/"

#: Inputs the R4 definitions declare that would change the answer and are not implemented:
#: refused by name rather than silently ignored.
_UNSUPPORTED: dict[str, tuple[str, ...]] = {
    "ValueSet-expand": (
        "context",
        "contextDirection",
        "date",
        "designation",
        "exclude-system",
        "system-version",
        "check-system-version",
        "force-system-version",
    ),
    "ValueSet-validate-code": ("context", "date"),
    "CodeSystem-validate-code": ("date",),
    "CodeSystem-lookup": ("date",),
    "ConceptMap-translate": ("dependency",),
}


def _refuse_unsupported(inv: Invocation, op_id: str) -> None:
    for name in _UNSUPPORTED.get(op_id, ()):
        if inv.values(name):
            code = op_id.split("-", 1)[1]
            raise not_supported(f"${code}: the parameter '{name}' is not supported by this server")


def _text(inv: Invocation, name: str) -> str | None:
    value = inv.value(name)
    return value if isinstance(value, str) else None


def _flag(inv: Invocation, name: str, default: bool = False) -> bool:
    value = inv.value(name)
    return value if isinstance(value, bool) else default


def _int(inv: Invocation, name: str) -> int | None:
    value = inv.value(name)
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _dict(inv: Invocation, name: str) -> dict[str, Any] | None:
    value = inv.value(name)
    return value if isinstance(value, dict) else None


def _instance(inv: Invocation, res_type: str) -> dict[str, Any] | None:
    """The resource an instance-level invocation names: stored, or from the definitions."""
    res_id = inv.resource_id
    if res_id is None:
        return None
    ix.check_id(res_id)
    stored = inv.tx.read(res_type, res_id)
    if stored is not None and not stored.deleted and stored.resource is not None:
        return stored.resource
    package = package_source(inv.ctx.defs)
    found: dict[str, Any] | None
    if res_type == "ValueSet":
        found = package.value_set_by_id(res_id)
    elif res_type == "CodeSystem":
        found = package.code_system_by_id(res_id)
    else:
        found = next((cm for cm in package.concept_maps() if cm.get("id") == res_id), None)
    if found is None:
        raise FhirError(Category.NOT_FOUND, f"{res_type}/{res_id} is not known")
    return found


def register_terminology(
    registry: Registry, defs: Definitions, source_for: SourceFor | None = None
) -> None:
    """Offer the terminology operations on ``registry``, answered from ``source_for(defs)``
    (default: the code systems, value sets and concept maps of the loaded definitions)
    (https://hl7.org/fhir/R4/terminology-service.html)."""
    source_of: SourceFor = source_for or (lambda d: terminology_source(d))

    def value_set_expand(inv: Invocation) -> ix.Result:
        """``ValueSet/$expand``: https://hl7.org/fhir/R4/valueset-operation-expand.html."""
        _refuse_unsupported(inv, "ValueSet-expand")
        instance = _instance(inv, "ValueSet")
        body = expand(
            source_of(inv.ctx.defs),
            url=_text(inv, "url"),
            value_set=instance or _dict(inv, "valueSet"),
            value_set_version=_text(inv, "valueSetVersion"),
            filter=_text(inv, "filter"),
            offset=_int(inv, "offset"),
            count=_int(inv, "count"),
            include_designations=_flag(inv, "includeDesignations"),
            active_only=_flag(inv, "activeOnly"),
            display_language=_text(inv, "displayLanguage"),
            cache=expansion_cache(),
        )
        return ix.Result(200, body)

    def value_set_validate_code(inv: Invocation) -> ix.Result:
        """``ValueSet/$validate-code``: https://hl7.org/fhir/R4/valueset-operation-validate-code.html."""
        _refuse_unsupported(inv, "ValueSet-validate-code")
        instance = _instance(inv, "ValueSet")
        body = validate_in_value_set(
            source_of(inv.ctx.defs),
            url=_text(inv, "url"),
            value_set=instance or _dict(inv, "valueSet"),
            value_set_version=_text(inv, "valueSetVersion"),
            code=_text(inv, "code"),
            system=_text(inv, "system"),
            system_version=_text(inv, "systemVersion"),
            display=_text(inv, "display"),
            coding=_dict(inv, "coding"),
            codeable_concept=_dict(inv, "codeableConcept"),
            abstract=_flag(inv, "abstract", True),
            cache=expansion_cache(),
        )
        return ix.Result(200, body)

    def code_system_validate_code(inv: Invocation) -> ix.Result:
        """``CodeSystem/$validate-code``: https://hl7.org/fhir/R4/codesystem-operation-validate-code.html."""
        _refuse_unsupported(inv, "CodeSystem-validate-code")
        instance = _instance(inv, "CodeSystem")
        url = str(instance["url"]) if instance and instance.get("url") else _text(inv, "url")
        body = validate_in_code_system(
            source_of(inv.ctx.defs),
            url=url,
            code_system=_dict(inv, "codeSystem"),
            version=_text(inv, "version") or (instance or {}).get("version"),
            code=_text(inv, "code"),
            display=_text(inv, "display"),
            coding=_dict(inv, "coding"),
            codeable_concept=_dict(inv, "codeableConcept"),
            abstract=_flag(inv, "abstract", True),
        )
        return ix.Result(200, body)

    def code_system_lookup(inv: Invocation) -> ix.Result:
        """``CodeSystem/$lookup``: https://hl7.org/fhir/R4/codesystem-operation-lookup.html."""
        _refuse_unsupported(inv, "CodeSystem-lookup")
        body = lookup(
            source_of(inv.ctx.defs),
            code=_text(inv, "code"),
            system=_text(inv, "system"),
            version=_text(inv, "version"),
            coding=_dict(inv, "coding"),
            properties=[p for p in inv.values("property") if isinstance(p, str)] or None,
            display_language=_text(inv, "displayLanguage"),
        )
        return ix.Result(200, body)

    def code_system_subsumes(inv: Invocation) -> ix.Result:
        """``CodeSystem/$subsumes``: https://hl7.org/fhir/R4/codesystem-operation-subsumes.html."""
        instance = _instance(inv, "CodeSystem")
        system = str(instance["url"]) if instance and instance.get("url") else _text(inv, "system")
        body = subsumes(
            source_of(inv.ctx.defs),
            code_a=_text(inv, "codeA"),
            code_b=_text(inv, "codeB"),
            system=system,
            version=_text(inv, "version") or (instance or {}).get("version"),
            coding_a=_dict(inv, "codingA"),
            coding_b=_dict(inv, "codingB"),
        )
        return ix.Result(200, body)

    def concept_map_translate(inv: Invocation) -> ix.Result:
        """``ConceptMap/$translate``: https://hl7.org/fhir/R4/conceptmap-operation-translate.html."""
        _refuse_unsupported(inv, "ConceptMap-translate")
        instance = _instance(inv, "ConceptMap")
        body = translate(
            source_of(inv.ctx.defs),
            url=_text(inv, "url"),
            concept_map=instance or _dict(inv, "conceptMap"),
            concept_map_version=_text(inv, "conceptMapVersion"),
            code=_text(inv, "code"),
            system=_text(inv, "system"),
            version=_text(inv, "version"),
            coding=_dict(inv, "coding"),
            codeable_concept=_dict(inv, "codeableConcept"),
            source_value_set=_text(inv, "source"),
            target_value_set=_text(inv, "target"),
            target_system=_text(inv, "targetsystem"),
            reverse=_flag(inv, "reverse"),
        )
        return ix.Result(200, body)

    handlers: dict[str, Callable[[Invocation], ix.Result]] = {
        "ValueSet-expand": value_set_expand,
        "ValueSet-validate-code": value_set_validate_code,
        "CodeSystem-validate-code": code_system_validate_code,
        "CodeSystem-lookup": code_system_lookup,
        "CodeSystem-subsumes": code_system_subsumes,
        "ConceptMap-translate": concept_map_translate,
    }
    for op_id, handler in handlers.items():
        definition = defs.operation_definitions.get(BASE + op_id)
        if definition is None:
            raise RuntimeError(f"the R4 OperationDefinition {op_id} is not in the definitions")
        registry.add(Operation(definition, handler, "read"))


__all__ = ["register_terminology"]
