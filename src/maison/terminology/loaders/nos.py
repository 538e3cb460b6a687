"""NOS naming rules: the canonical URL of a TRE_/JDV_/ASS_ name, the code systems behind the
OIDs the CI-SIS value sets cite, and the NOS date format.

https://interop.esante.gouv.fr/ig/nos/ (NOS: Nomenclatures des Objets de Santé; URLs
``https://mos.esante.gouv.fr/NOS/<name>/FHIR/<name with _ replaced by ->``)
"""

from __future__ import annotations

import re
from typing import Final

from maison.terminology.loaders import OidResolver
from maison.terminology.source import SYSTEM_ALIASES

NOS_BASE: Final = "https://mos.esante.gouv.fr/NOS/"
#: A NOS file name: TRE_A03-ClasseDocument, JDV_J66-TypeCode-DMP, ASS_X16-…
NAME_RE: Final = re.compile(r"(TRE|JDV|ASS)_[A-Za-z]+\d+[-_].+")


def nos_url(name: str) -> str:
    """The FHIR canonical URL of a NOS name (https://interop.esante.gouv.fr/ig/nos/)."""
    return f"{NOS_BASE}{name}/FHIR/{name.replace('_', '-')}"


def _nos(name: str) -> str:
    return nos_url(name)


#: The code systems of the OIDs the CI-SIS and DMP value sets cite (NOS TRE OIDs as their
#: FHIR exports give them; ``ASTM`` and ``URN`` are the NOS's own placeholders).
NOS_OIDS: Final[dict[str, str]] = {
    "1.2.250.1.213.1.1.4.6": _nos("TRE_A00-ProducteurDocNonPS"),
    "1.2.250.1.213.1.1.4.9": _nos("TRE_A01-CadreExercice"),
    "1.2.250.1.213.1.1.4.1": _nos("TRE_A03-ClasseDocument"),
    "1.2.250.1.213.1.1.4.12": _nos("TRE_A05-TypeDocComplementaire"),
    "1.2.250.1.213.1.1.4.2.282": _nos("TRE_A06-FormatCodeComplementaire"),
    "1.2.250.1.213.1.1.4.13": _nos("TRE_A07-StatutVisibiliteDocument"),
    "2.16.840.1.113883.5.25": _nos("TRE_A08-HL7Confidentiality"),
    "1.2.840.10008.2.6.1": _nos("TRE_A09-DICOMuidRegistry"),
    "URN": _nos("TRE_A10-NomenclatureURN"),
    "1.3.6.1.4.1.19376.1.2.3": _nos("TRE_A11-IheFormatCode"),
    "ASTM": _nos("TRE_A12-NomenclatureASTM"),
    "1.2.250.1.71.1.2.7": _nos("TRE_G15-ProfessionSante"),
    "1.2.250.1.71.4.2.4": _nos("TRE_R02-SecteurActivite"),
    "1.2.250.1.213.1.6.1.17": _nos("TRE_R21-Fonction"),
    "1.2.250.1.213.2.28": _nos("TRE_R38-SpecialiteOrdinale"),
    "1.2.250.1.213.1.6.1.107": _nos("TRE_R85-RolePriseCharge"),
    "1.2.250.1.213.1.6.1.4": _nos("TRE_R94-ProfessionSocial"),
    "1.2.250.1.213.1.6.1.109": _nos("TRE_R95-UsagerTitre"),
    "1.2.250.1.213.2.24": _nos("TRE_R20-Pays"),
}


def system_for_oid(oid: str, resolve: OidResolver | None = None, name: str | None = None) -> str:
    """The canonical URL of the code system an OID names: a known alias (LOINC, SNOMED CT),
    the NOS table above, a loaded code system with that OID, the NOS URL of ``name`` when the
    file gives one, else ``urn:oid:<oid>`` (https://hl7.org/fhir/R4/terminologies-systems.html)."""
    oid = oid.strip()
    if oid.startswith("urn:oid:"):
        oid = oid[len("urn:oid:") :]
    alias = SYSTEM_ALIASES.get(f"urn:oid:{oid}")
    if alias:
        return alias
    if oid in NOS_OIDS:
        return NOS_OIDS[oid]
    if resolve is not None and (found := resolve(oid)):
        return found
    if name and NAME_RE.fullmatch(name):
        return nos_url(name)
    return f"urn:oid:{oid}"


def nos_datetime(value: str) -> str | None:
    """A NOS timestamp (``20230127120000``) as the FHIR dateTime the NOS FHIR exports write
    (``2023-01-27T12:00:00+01:00``: they always give +01:00)."""
    value = value.strip()
    if not value:
        return None
    if not re.fullmatch(r"\d{14}", value):
        return value
    return (
        f"{value[0:4]}-{value[4:6]}-{value[6:8]}T{value[8:10]}:{value[10:12]}:{value[12:14]}+01:00"
    )


__all__ = ["NAME_RE", "NOS_BASE", "NOS_OIDS", "nos_datetime", "nos_url", "system_for_oid"]
