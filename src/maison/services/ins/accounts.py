"""The INS side of patient accounts: what makes a Patient's identity good enough to open a
Mon espace santé account (status QUAL with an INS in force), handed to the security layer.

https://hl7.fr/ig/fhir/core/StructureDefinition-fr-core-identity-reliability.html
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

from maison.security.patient_accounts import InsIdentity, PatientAccounts, ScryptParams
from maison.services.ins.matricule import active_ins
from maison.services.ins.reliability import STATUS_DISPLAY, may_emit_ins, read_reliability
from maison.store.crypto import Keyring
from maison.store.sql import SqlStore


def ins_identity(patient: Mapping[str, Any]) -> InsIdentity:
    """A Patient's identity status and INS in force, qualified only when the INS may be
    emitted (QUAL, no DOUT/FICT, no error): https://hl7.fr/ig/fhir/core/StructureDefinition-fr-core-patient-ins.html."""
    rel = read_reliability(patient)
    found = active_ins(patient)
    identifier = found[0][1] if found else None
    system = identifier.get("system") if identifier else None
    value = identifier.get("value") if identifier else None
    return InsIdentity(
        qualified=may_emit_ins(patient),
        status=rel.status,
        status_display=STATUS_DISPLAY.get(rel.status or "", ""),
        ins_system=system if isinstance(system, str) else None,
        ins=value if isinstance(value, str) else None,
        identifier=identifier,
    )


def patient_accounts(
    store: SqlStore,
    keyring: Keyring | None = None,
    clock: Callable[[], float] = time.time,
    *,
    params: ScryptParams | None = None,
) -> PatientAccounts:
    """The patient accounts of a store, reading identities with the INS rules
    (https://www.rfc-editor.org/rfc/rfc6238)."""
    return PatientAccounts(store, keyring, clock, identity=ins_identity, params=params)
