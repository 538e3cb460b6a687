"""EHR launch: an opaque launch id that a signed-in professional's software creates for a
patient (and optionally an encounter), resolved once, within five minutes, by the
authorization request that carries it (``launch=…``), for that same professional only.

https://hl7.org/fhir/smart-app-launch/app-launch.html#launch-app-ehr-launch
"""

from __future__ import annotations

import re
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

import orjson

from maison.services.psc.provider import Records

LAUNCH_TTL: Final = 300
_KEY: Final = "smart:l:"
_USED: Final = "used"
_ID: Final = re.compile(r"[A-Za-z0-9_-]{32}")
_FHIR_ID: Final = re.compile(r"[A-Za-z0-9\-.]{1,64}")


class LaunchError(ValueError):
    """An unknown, used or expired launch, or a bad request to create one: https://hl7.org/fhir/smart-app-launch/app-launch.html#launch-app-ehr-launch."""


@dataclass(frozen=True)
class Launch:
    """The context a launch id stands for: https://hl7.org/fhir/smart-app-launch/scopes-and-launch-context.html#launch-context-arrives-with-your-access_token."""

    patient: str
    encounter: str | None
    professional: str  # the IDNPS of the professional who launched


def create_launch(
    records: Records,
    patient: str,
    encounter: str | None,
    professional: str,
    clock: Callable[[], float] = time.time,
) -> str:
    """Record a launch context; its opaque id: https://hl7.org/fhir/smart-app-launch/app-launch.html#launch-app-ehr-launch."""
    if not _FHIR_ID.fullmatch(patient):
        raise LaunchError("patient must be a Patient id")
    if encounter is not None and not _FHIR_ID.fullmatch(encounter):
        raise LaunchError("encounter must be an Encounter id")
    launch_id = secrets.token_urlsafe(24)
    value = {
        "patient": patient,
        "encounter": encounter,
        "pro": professional,
        "exp": int(clock()) + LAUNCH_TTL,
    }
    records.set_meta(_KEY + launch_id, orjson.dumps(value).decode())
    return launch_id


def resolve_launch(
    records: Records, launch_id: str, clock: Callable[[], float] = time.time
) -> Launch:
    """Use a launch id, once: https://hl7.org/fhir/smart-app-launch/app-launch.html#launch-app-ehr-launch."""
    if not _ID.fullmatch(launch_id):
        raise LaunchError("unknown launch")
    key = _KEY + launch_id
    raw = records.get_meta(key)
    if raw is None or raw == _USED:
        raise LaunchError("unknown or already used launch")
    if records.swap_meta(key, raw, _USED) != raw:
        raise LaunchError("unknown or already used launch")
    value = orjson.loads(raw)
    if int(value["exp"]) <= clock():
        raise LaunchError("launch expired")
    return Launch(str(value["patient"]), value.get("encounter"), str(value["pro"]))
