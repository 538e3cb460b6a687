"""The life of a DMP document after it is fed: what may change, and how.

PDSm (Flux 03/04) lets a producer update a document's metadata by a conditional PATCH of only
``status``, ``securityLabel`` and the ``isArchived`` extension; anything else is refused with
405. The DMP (PDSM4DMP) adds:

* replacement (TD2.1): a new document ``relatesTo.code = replaces`` the old one, which becomes
  ``superseded``; both are kept;
* logical deletion (TD3.3c, XDS availabilityStatus ``urn:asip:ci-sis:2010:StatusType:Deleted``):
  ``status = superseded`` with no document replacing it — the MHD/PDSm profiles bind
  ``status`` to current | superseded, so ``entered-in-error`` is not open to them; never a
  physical DELETE (the purge of a closed DMP is an administrator's job, ``maison dmp purge``);
* archiving (TD3.3d): the ``isArchived`` extension, back and forth;
* visibility (TD3.3a/b): ``securityLabel`` codes of TRE_A07 (``MASQUE_PS``,
  ``INVISIBLE_PATIENT``, ``INVISIBLE_REPRESENTANTS_LEGAUX``) and back to ``N``.

A superseded or deleted document keeps its status: it may still be archived or masked (its
labels matter while it is kept), never brought back to ``current``.

These rules apply to the documents the DMP holds: those fed through ITI-65 / ITI-105, which
carry the PDSm DocumentReference profile in ``meta.profile``. Other DocumentReferences of the
server stay plain FHIR resources.

https://interop.esante.gouv.fr/ig/fhir/pdsm/ (Flux 03/04) and
https://interop.esante.gouv.fr/ig/fhir/pdsm4dmp/ (TD2.1, TD3.3)
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from maison.fhir.errors import Category, FhirError, Issue

IS_ARCHIVED: Final = (
    "https://interop.esante.gouv.fr/ig/fhir/pdsm/StructureDefinition/pdsm-ext-is-archived"
)
DOCUMENT_PROFILE: Final = (
    "https://interop.esante.gouv.fr/ig/fhir/pdsm/StructureDefinition/"
    "pdsm-comprehensive-document-reference"
)
SIMPLIFIED_PROFILE: Final = (
    "https://interop.esante.gouv.fr/ig/fhir/pdsm/StructureDefinition/pdsm-simplified-publish"
)
#: The elements a metadata update may change (PDSm Flux 03/04).
MUTABLE: Final = frozenset({"status", "securityLabel", "meta", "extension"})
#: Allowed status changes: from → to.
TRANSITIONS: Final = {
    "current": frozenset({"current", "superseded", "entered-in-error"}),
    "superseded": frozenset({"superseded"}),
    "entered-in-error": frozenset({"entered-in-error"}),
}
#: TRE_A07 visibility codes and the HL7 confidentiality codes a securityLabel may carry.
VISIBILITY_SYSTEM: Final = "https://mos.esante.gouv.fr/NOS/TRE_A07-StatutVisibiliteDocument/FHIR/TRE-A07-StatutVisibiliteDocument"


def is_dmp_document(resource: Mapping[str, Any] | None) -> bool:
    """Whether a DocumentReference is one the DMP holds (fed through ITI-65 or ITI-105): it
    carries a PDSm profile (https://interop.esante.gouv.fr/ig/fhir/pdsm/)."""
    if not isinstance(resource, Mapping):
        return False
    meta = resource.get("meta")
    profiles = meta.get("profile") if isinstance(meta, Mapping) else None
    return isinstance(profiles, list) and (
        DOCUMENT_PROFILE in profiles or SIMPLIFIED_PROFILE in profiles
    )


def is_archived(resource: Mapping[str, Any]) -> bool:
    """The value of the PDSm ``isArchived`` extension (false when absent)."""
    for ext in resource.get("extension") or []:
        if isinstance(ext, Mapping) and ext.get("url") == IS_ARCHIVED:
            return ext.get("valueBoolean") is True
    return False


def _other_extensions(resource: Mapping[str, Any]) -> list[Any]:
    return [
        e
        for e in resource.get("extension") or []
        if not (isinstance(e, Mapping) and e.get("url") == IS_ARCHIVED)
    ]


def _not_allowed(message: str, where: str) -> FhirError:
    return FhirError(
        Category.METHOD_NOT_ALLOWED, message, [Issue("error", "not-supported", message, (where,))]
    )


def check_update(
    new: dict[str, Any], old: dict[str, Any] | None, allow_subject: bool = False
) -> tuple[dict[str, Any], list[Issue]]:
    """Refuse (405) an update of a DMP document that changes anything but ``status``,
    ``securityLabel`` and ``isArchived``, or moves its status backwards; ``allow_subject`` lets
    the identity-vigilance merge move documents to the surviving patient
    (https://interop.esante.gouv.fr/ig/fhir/pdsm/, Flux 03/04)."""
    if old is None or not is_dmp_document(old):
        return new, []
    if not is_dmp_document(new):
        raise _not_allowed(
            "a DMP document keeps its PDSm profile (meta.profile) when its metadata change",
            "DocumentReference.meta.profile",
        )
    mutable = MUTABLE | ({"subject"} if allow_subject else frozenset())
    for key in sorted(set(new) | set(old)):
        if key in mutable or key == "id":
            continue
        if new.get(key) != old.get(key):
            raise _not_allowed(
                f"a DMP document's {key} cannot change: only status, securityLabel and the "
                "isArchived extension may be updated (PDSm); to correct a document, replace it "
                "(relatesTo replaces) or delete it (status superseded)",
                f"DocumentReference.{key}",
            )
    if _other_extensions(new) != _other_extensions(old):
        raise _not_allowed(
            "a DMP document's extensions cannot change, except isArchived (PDSm)",
            "DocumentReference.extension",
        )
    before, after = old.get("status"), new.get("status")
    if after not in TRANSITIONS.get(str(before), frozenset({before})):
        message = (
            f"a DMP document cannot go from status {before} to {after}: a superseded or "
            "deleted document never comes back (feed a new document instead)"
        )
        raise FhirError(
            Category.UNPROCESSABLE,
            message,
            [Issue("error", "business-rule", message, ("DocumentReference.status",))],
        )
    return new, []


def superseded(old: dict[str, Any]) -> dict[str, Any]:
    """The replaced document, now ``superseded`` (MHD ITI-65 replace; DMP TD2.1)."""
    return {**old, "status": "superseded"}


def check_delete(current: dict[str, Any]) -> None:
    """Refuse (405) the physical deletion of a DMP document or of its content: deletion is
    logical, ``status = superseded`` (https://interop.esante.gouv.fr/ig/fhir/pdsm4dmp/,
    TD3.3c); the purge of a closed DMP is an administrator's job (``maison dmp purge``)."""
    if current.get("resourceType") == "Binary":
        if current.get("securityContext"):
            raise _not_allowed(
                "the content of a DMP document is never deleted through the API: delete the "
                "document logically (PATCH its status to superseded)",
                "Binary",
            )
        return
    if is_dmp_document(current):
        raise _not_allowed(
            "a DMP document is never deleted physically: delete it logically (PATCH status to "
            "superseded); the purge of a closed DMP is an administrator's job",
            "DocumentReference",
        )


def check_binary(
    new: dict[str, Any], old: dict[str, Any] | None
) -> tuple[dict[str, Any], list[Issue]]:
    """Refuse (405) a change of a DMP document's content: a document is replaced, never edited
    (https://profiles.ihe.net/ITI/MHD/ITI-65.html, replace)."""
    if old is not None and old.get("securityContext"):
        same = {k: v for k, v in new.items() if k != "meta"} == {
            k: v for k, v in old.items() if k != "meta"
        }
        if not same:
            raise _not_allowed(
                "the content of a DMP document never changes: feed a new document that "
                "replaces it (relatesTo replaces)",
                "Binary",
            )
    return new, []
