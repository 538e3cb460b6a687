"""The DMP's rules on a document's metadata: each coded XDS metadatum in the value set the DMP
restricts it to (JDV_J66 type, J57 class, J60 format, J61 facility type, J04 practice setting,
J08 confidentiality), and the class the ASS_X16 correspondence gives for the type. The value
sets and the correspondence come from the terminology service (``maison terminology load`` of
the NOS); a metadatum whose DMP value set is not loaded is checked against the CI-SIS value
set the DMP's restricts (JDV_J07/J06/J10/J02), with a warning saying so, and refused when
neither is loaded, rather than let through.

https://interop.esante.gouv.fr/ig/fhir/pdsm/ (XDS metadata bindings) and the DMP's NOS
value sets https://mos.esante.gouv.fr/NOS/
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Final

from maison.fhir.errors import FhirError, Issue
from maison.terminology.binding import ServiceBindings
from maison.terminology.compose import ExpansionCache
from maison.terminology.source import TerminologySource, canonical_system
from maison.terminology.translate import translate

NOS: Final = "https://mos.esante.gouv.fr/NOS/"


def nos_url(name: str) -> str:
    """The FHIR canonical URL of a NOS table (https://mos.esante.gouv.fr/NOS/)."""
    return f"{NOS}{name}/FHIR/{name.replace('_', '-')}"


@dataclass(frozen=True, slots=True)
class Binding:
    """One coded metadatum of a DocumentReference and the DMP value set it must come from."""

    path: str  # where, for messages (FHIRPath-like)
    value_set: str  # NOS table name
    codings: Callable[[dict[str, Any]], Iterator[tuple[dict[str, Any], str]]]
    #: the CI-SIS value set the DMP's restricts, checked (with a warning) when the DMP's own
    #: is not loaded
    fallback: str | None = None


def _concept(*path: str) -> Callable[[dict[str, Any]], Iterator[tuple[dict[str, Any], str]]]:
    """The codings of a CodeableConcept (or of each one of a list) at ``path``."""

    def codings(doc: dict[str, Any]) -> Iterator[tuple[dict[str, Any], str]]:
        nodes: list[tuple[Any, str]] = [(doc, "DocumentReference")]
        for step in path:
            nxt: list[tuple[Any, str]] = []
            for node, where in nodes:
                value = node.get(step) if isinstance(node, dict) else None
                if isinstance(value, list):
                    nxt.extend((v, f"{where}.{step}[{i}]") for i, v in enumerate(value))
                elif value is not None:
                    nxt.append((value, f"{where}.{step}"))
            nodes = nxt
        for node, where in nodes:
            if not isinstance(node, dict):
                continue
            if "code" in node and "coding" not in node:  # a Coding (content.format)
                yield node, where
                continue
            for i, coding in enumerate(node.get("coding") or []):
                if isinstance(coding, dict):
                    yield coding, f"{where}.coding[{i}]"

    return codings


#: The DMP value sets of the XDS metadata (domain-spec §4, PDSm metadata table).
BINDINGS: Final = (
    Binding("type", "JDV_J66-TypeCode-DMP", _concept("type"), "JDV_J07-XdsTypeCode-CISIS"),
    Binding(
        "category", "JDV_J57-ClassCode-DMP", _concept("category"), "JDV_J06-XdsClassCode-CISIS"
    ),
    Binding(
        "content.format",
        "JDV_J60-FormatCode-DMP",
        _concept("content", "format"),
        "JDV_J10-XdsFormatCode-CISIS",
    ),
    Binding(
        "context.facilityType",
        "JDV_J61-HealthcareFacilityTypeCode-DMP",
        _concept("context", "facilityType"),
        "JDV_J02-XdsHealthcareFacilityTypeCode-CISIS",
    ),
    Binding(
        "context.practiceSetting",
        "JDV_J04-XdsPracticeSettingCode-CISIS",
        _concept("context", "practiceSetting"),
    ),
    Binding("securityLabel", "JDV_J08-XdsConfidentialityCode-CISIS", _concept("securityLabel")),
)
TYPE_TO_CLASS: Final = "ASS_X16-CorrespondanceType-Classe-DMP"


def metadata_issues(
    doc: dict[str, Any], source: TerminologySource, cache: ExpansionCache | None = None
) -> list[Issue]:
    """Why the DMP refuses a DocumentReference's coded metadata (empty: it accepts them), each
    issue naming the value set or the correspondence; ``cache`` keeps the value sets'
    expansions between documents (https://mos.esante.gouv.fr/NOS/)."""
    bindings = ServiceBindings(source, cache)
    issues: list[Issue] = []
    for binding in BINDINGS:
        url = nos_url(binding.value_set)
        for coding, where in binding.codings(doc):
            system, code = coding.get("system"), coding.get("code")
            if not isinstance(code, str):
                continue
            sys_ = system if isinstance(system, str) else None
            verdict = bindings.contains(url, sys_, code)
            shown = f"{system}#{code}" if system else repr(code)
            if verdict is None and binding.fallback is not None:
                wider = nos_url(binding.fallback)
                broad = bindings.contains(wider, sys_, code)
                if broad is not None:
                    if broad:
                        issues.append(
                            Issue(
                                "warning",
                                "not-supported",
                                f"{where}: {shown} checked against the CI-SIS value set "
                                f"{binding.fallback} only: the DMP's own {binding.value_set} "
                                "is not loaded on this server (maison terminology load)",
                                (where,),
                            )
                        )
                    else:
                        issues.append(
                            Issue(
                                "error",
                                "code-invalid",
                                f"{where}: {shown} is not in the CI-SIS value set "
                                f"{binding.fallback} ({wider}), which the DMP value set "
                                f"{binding.value_set} restricts",
                                (where,),
                            )
                        )
                    continue
            if verdict is None:
                issues.append(
                    Issue(
                        "error",
                        "not-supported",
                        f"{where}: the DMP value set {binding.value_set} ({url}) is not loaded "
                        "on this server, so the DMP cannot accept this metadatum (maison "
                        "terminology load)",
                        (where,),
                    )
                )
            elif not verdict:
                issues.append(
                    Issue(
                        "error",
                        "code-invalid",
                        f"{where}: {shown} is not in the DMP value set {binding.value_set} ({url})",
                        (where,),
                    )
                )
    issues.extend(_class_of_type(doc, source))
    return issues


def _class_of_type(doc: dict[str, Any], source: TerminologySource) -> list[Issue]:
    """The class must be the one ASS_X16 gives for the type."""
    types = list(_concept("type")(doc))
    classes = {
        (canonical_system(str(c.get("system"))), c.get("code"))
        for c, _ in _concept("category")(doc)
    }
    if not types or not classes:
        return []
    coding, where = types[0]
    try:
        out = translate(
            source,
            url=nos_url(TYPE_TO_CLASS),
            system=coding.get("system"),
            code=coding.get("code"),
        )
    except FhirError as exc:
        return [
            Issue(
                "error",
                "not-supported",
                f"{where}: the type-to-class correspondence {TYPE_TO_CLASS} cannot be read "
                f"here ({exc}), so the DMP cannot accept the document",
                (where,),
            )
        ]
    expected = [
        (canonical_system(str(part["valueCoding"].get("system"))), part["valueCoding"]["code"])
        for p in out.get("parameter", [])
        if p.get("name") == "match"
        for part in p.get("part", [])
        if part.get("name") == "concept"
    ]
    if not expected or set(expected) & classes:
        return []
    wanted = ", ".join(code for _, code in expected)
    return [
        Issue(
            "error",
            "business-rule",
            f"DocumentReference.category: the type {coding.get('code')} belongs to the class "
            f"{wanted} according to {TYPE_TO_CLASS}, not to "
            + ", ".join(sorted(str(c) for _, c in classes)),
            ("DocumentReference.category",),
        )
    ]


__all__ = ["BINDINGS", "TYPE_TO_CLASS", "Binding", "metadata_issues", "nos_url"]
