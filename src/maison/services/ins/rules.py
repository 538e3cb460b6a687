"""The INS rules applied to every Patient write (matricule, traits, RNIV status).

https://hl7.fr/ig/fhir/core/StructureDefinition-fr-core-patient-ins.html
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import date
from typing import Any

from maison.fhir.errors import Category, FhirError, Issue
from maison.services.ins import insi
from maison.services.ins.matricule import active_ins_values
from maison.services.ins.reliability import (
    InsiEvidence,
    check_patient_write,
    may_emit_ins,
    read_reliability,
)
from maison.services.ins.vigilance import INS_SYSTEMS

# The right to declare an INSi interrogation made outside the platform (a vendor's software
# that called the national téléservice): without it, RECUP/QUAL need the platform's own call.
INSI_ASSERT_SCOPE = "ins:assert-insi"


@dataclass(frozen=True)
class CalledIdentity:
    """The identity an earlier call of the platform's INSi service returned."""

    matricule: str
    oid: str
    birth_name: str
    given_names: tuple[str, ...]
    sex: str
    birth_date: str
    birth_place: str
    history: tuple[str, ...] = ()


def ins_identifiers(patient: dict[str, Any]) -> list[tuple[str, str]]:
    """(system, matricule) of each INS a Patient carries in force (use official or temp)."""
    return sorted(active_ins_values(patient))


V2_0203 = "http://terminology.hl7.org/CodeSystem/v2-0203"


def _is_ipp(identifier: dict[str, Any]) -> bool:
    codings = (identifier.get("type") or {}).get("coding") or ()
    return any(
        isinstance(c, dict) and c.get("system") == V2_0203 and c.get("code") == "PI"
        for c in codings
    )


def ipp_identifiers(patient: dict[str, Any]) -> list[tuple[str, str]]:
    """(structure system, IPP) of each IPP (type PI) in force: one per structure and patient,
    several structures side by side (https://hl7.fr/ig/fhir/core/StructureDefinition-fr-core-patient.html)."""
    return [
        (str(i["system"]), str(i["value"]))
        for i in patient.get("identifier") or ()
        if isinstance(i, dict)
        and _is_ipp(i)
        and i.get("use") != "old"
        and isinstance(i.get("system"), str)
        and isinstance(i.get("value"), str)
    ]


def check_ipp(patient: dict[str, Any]) -> list[Issue]:
    """An IPP is only meaningful in its structure's namespace: it must carry the system."""
    issues = []
    for n, i in enumerate(patient.get("identifier") or ()):
        if isinstance(i, dict) and _is_ipp(i) and not i.get("system"):
            issues.append(
                Issue(
                    "error",
                    "required",
                    f"Patient.identifier[{n}]: an IPP (type PI) needs the system of the structure "
                    "that assigned it (identifier.system), or it cannot be told from another "
                    "structure's IPP",
                    (f"Patient.identifier[{n}].system",),
                )
            )
    return issues


def ins_matricules(patient: dict[str, Any]) -> list[str]:
    """The matricules INS a Patient carries in force."""
    return [value for _, value in ins_identifiers(patient)]


def evidence_from_call(
    cr: str, matricule: str | None, oid: str | None, traits: dict[str, Any], day: date
) -> InsiEvidence | None:
    """The evidence a recorded call of the platform's INSi service gives (CR 00 only):
    https://esante.gouv.fr/produits-services/referentiel-ins."""
    if cr != insi.CR_FOUND or not matricule or not oid or not traits:
        return None
    identity = CalledIdentity(
        matricule=matricule,
        oid=oid,
        birth_name=str(traits["birth_name"]),
        given_names=tuple(traits["given_names"]),
        sex=str(traits["sex"]),
        birth_date=str(traits["birth_date"]),
        birth_place=str(traits.get("birth_place") or ""),
    )
    return insi.evidence(insi.InsiResponse(cr, "", identity=identity), day)


def patient_write(
    new: dict[str, Any],
    old: dict[str, Any] | None,
    may_assert_insi: bool,
    today: date,
    evidence: Callable[[str], Iterable[InsiEvidence]] | None = None,
) -> tuple[dict[str, Any], list[Issue]]:
    """The Patient to store (its status possibly lowered to what its evidence supports) and
    the notes for the client; a refusal raises the 422 that names the field. ``evidence``
    gives the platform's own INSi answers for a matricule, newest first
    (https://esante.gouv.fr/produits-services/referentiel-ins)."""
    found: InsiEvidence | None = None
    if evidence is not None:
        for matricule in ins_matricules(new):
            found = next(iter(evidence(matricule)), None)
            if found is not None:
                break
    ipp = check_ipp(new)
    if ipp:
        raise FhirError(Category.UNPROCESSABLE, ipp[0].diagnostics, ipp)
    decision = check_patient_write(new, old, found, may_assert_insi, today=today)
    error = decision.error
    if error is not None:
        raise error
    resource = dict(decision.resource) if decision.resource is not None else new
    return resource, [i for i in decision.issues if i.severity not in ("error", "fatal")]


def _ins_named(element: Any, found: dict[tuple[str, str], None]) -> None:
    if isinstance(element, dict):
        system, value = element.get("system"), element.get("value")
        if system in INS_SYSTEMS and isinstance(value, str):
            found[(str(system), value)] = None
        for child in element.values():
            _ins_named(child, found)
    elif isinstance(element, list):
        for child in element:
            _ins_named(child, found)


def check_ins_emission(
    document: dict[str, Any], holders: Callable[[str, str, str, str], list[Any]]
) -> None:
    """A document (or message) may name a patient by matricule INS only when the platform
    holds that identity as qualified (QUAL): refuse (422) an INS of a PROV/RECUP/VALI identity,
    or one no Patient carries (https://esante.gouv.fr/produits-services/referentiel-ins, RNIV)."""
    found: dict[tuple[str, str], None] = {}
    _ins_named(document, found)
    kind = document.get("resourceType", "document")
    for system, value in found:
        patients = [
            h.resource
            for h in holders("Patient", "identifier", system, value)
            if h.resource is not None and (system, value) in ins_identifiers(h.resource)
        ]
        if not patients:
            message = (
                f"{kind} names the matricule INS {value}, which no Patient of this platform "
                "carries: a matricule INS is only emitted for a qualified identity (QUAL); "
                "register the patient with a qualified identity first"
            )
        elif not any(may_emit_ins(p) for p in patients):
            status = read_reliability(patients[0]).status or "none"
            message = (
                f"{kind} names the matricule INS {value} of Patient/{patients[0].get('id')}, whose "
                f"identity is {status}, not qualified (QUAL): the RNIV forbids emitting the INS "
                "of a non-qualified identity; name the patient by a local identifier or "
                "qualify the identity first"
            )
        else:
            continue
        raise FhirError(
            Category.UNPROCESSABLE,
            message,
            [Issue("error", "business-rule", message, (f"{kind}",))],
        )
