"""Annuaire Santé resources (tagged by the import) are read-only through the API except for
administrators; local resources of the same types stay writable.

https://hl7.org/fhir/R4/resource.html#tag
"""

from __future__ import annotations

import uuid
from typing import Any

from maison.security.readonly import IMPORT_TAG_SYSTEM
from servers import Server

TAG = {"system": IMPORT_TAG_SYSTEM, "code": "annuaire"}


def _practitioner(pid: str, tagged: bool, family: str = "MARTIN") -> dict[str, Any]:
    p: dict[str, Any] = {"resourceType": "Practitioner", "id": pid, "name": [{"family": family}]}
    if tagged:
        p["meta"] = {"tag": [TAG]}
    return p


def test_imported_resources_are_read_only_but_for_the_admin_scope(server: Server) -> None:
    pid = f"810{uuid.uuid4().int % 10**9:09d}"
    with server.client(server.mint("system/*.*", "annuaire:admin")) as admin:
        assert admin.put(f"/Practitioner/{pid}", json=_practitioner(pid, True)).status_code == 201
    with server.client(server.mint("user/*.*")) as pro:
        r = pro.put(f"/Practitioner/{pid}", json=_practitioner(pid, False, "DUPONT"))
        assert r.status_code == 403, r.text
        assert "Annuaire Santé" in r.text and "annuaire:admin" in r.text
        assert pro.delete(f"/Practitioner/{pid}").status_code == 403
        patch = pro.patch(
            f"/Practitioner/{pid}",
            json=[{"op": "replace", "path": "/name/0/family", "value": "X"}],
            headers={"Content-Type": "application/json-patch+json"},
        )
        assert patch.status_code == 403
        # nobody forges an imported resource either
        forged = f"{pid}9"
        assert (
            pro.put(f"/Practitioner/{forged}", json=_practitioner(forged, True)).status_code == 403
        )
        # reading is fine, and the resource is unchanged
        got = pro.get(f"/Practitioner/{pid}")
        assert got.status_code == 200 and got.json()["name"][0]["family"] == "MARTIN"
        # local practitioners (no import tag) stay writable
        local = f"local-{uuid.uuid4().hex[:8]}"
        assert (
            pro.put(f"/Practitioner/{local}", json=_practitioner(local, False)).status_code == 201
        )
        assert pro.delete(f"/Practitioner/{local}").status_code in (200, 204)
    with server.client(server.mint("system/*.*", "annuaire:admin")) as admin:
        done = admin.put(f"/Practitioner/{pid}", json=_practitioner(pid, True, "MARTIN-DUVAL"))
        assert done.status_code == 200, done.text
