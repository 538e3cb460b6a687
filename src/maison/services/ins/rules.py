"""The INS rules applied to every Patient write (matricule, traits, RNIV status).

https://hl7.fr/ig/fhir/core/StructureDefinition-fr-core-patient-ins.html
"""

from __future__ import annotations

from datetime import date
from typing import Any

from maison.fhir.errors import Issue
from maison.services.ins.reliability import check_patient_write

# The right to declare an INSi interrogation made outside the platform (a vendor's software
# that called the national téléservice): without it, RECUP/QUAL need the platform's own call.
INSI_ASSERT_SCOPE = "ins:assert-insi"


def patient_write(
    new: dict[str, Any], old: dict[str, Any] | None, may_assert_insi: bool, today: date
) -> tuple[dict[str, Any], list[Issue]]:
    """The Patient to store (its status possibly lowered to what its evidence supports) and
    the notes for the client; a refusal raises the 422 that names the field
    (https://esante.gouv.fr/produits-services/referentiel-ins)."""
    decision = check_patient_write(new, old, None, may_assert_insi, today=today)
    error = decision.error
    if error is not None:
        raise error
    resource = dict(decision.resource) if decision.resource is not None else new
    return resource, [i for i in decision.issues if i.severity not in ("error", "fatal")]
