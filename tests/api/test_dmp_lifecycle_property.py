"""Property: whatever sequence of DMP lifecycle operations runs (feed, replace, delete
logically, mask, archive), a search with ``status=current`` never returns a superseded or
deleted document, and every stored document's content decrypts to its original bytes with
its declared SHA-1 (issue 7 acceptance).

https://profiles.ihe.net/ITI/MHD/ITI-65.html, https://interop.esante.gouv.fr/ig/fhir/pdsm/
"""

from __future__ import annotations

import base64
import hashlib
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from maison.api import interactions as ix
from maison.api.app import prepare, system_principal
from maison.api.services import Services
from maison.api.settings import Settings
from maison.services.demo import synthetic
from maison.services.demo.documents import provide_bundle
from maison.services.dmp.lifecycle import IS_ARCHIVED

PATCH = "application/json-patch+json"


@pytest.fixture(scope="module")
def world() -> Iterator[tuple[Services, str]]:
    with tempfile.TemporaryDirectory(prefix="maison-dmp-prop-") as folder:
        services = prepare(Settings(data=str(Path(folder) / "data"), demo=False, dmp_strict=False))
        bundle = synthetic.patient_bundle(synthetic.bundle_rng(5, 5), 5)
        patient = bundle["entry"][0]["resource"]
        principal = system_principal()
        ctx = services.context(services.settings.base_url, None)
        made = services.run(principal, True, lambda tx: ix.create(ctx, tx, "Patient", patient))
        assert made.stored is not None
        yield services, f"Patient/{made.stored.id}"
        services.store.close()


operations = st.lists(
    st.tuples(
        st.sampled_from(["feed", "replace", "delete", "mask", "unmask", "archive"]),
        st.integers(0, 50),
        st.binary(min_size=0, max_size=300),
    ),
    min_size=1,
    max_size=8,
)


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(operations)
def test_current_never_shows_superseded_and_content_round_trips(
    world: tuple[Services, str], ops: list[tuple[str, int, bytes]]
) -> None:
    services, patient = world
    assert services.dmp is not None
    principal = system_principal()
    ctx = services.context(services.settings.base_url, principal)
    run = services.runner(principal)
    fed: dict[str, bytes] = {}
    gone: set[str] = set()  # replaced or deleted: never current again

    def current() -> list[dict[str, Any]]:
        params = [("patient", patient), ("status", "current"), ("_count", "1000")]
        result = services.run(
            principal, False, lambda tx: ix.search(ctx, tx, "DocumentReference", params, False)
        )
        assert result.resource is not None
        return [e["resource"] for e in result.resource.get("entry", [])]

    def patch(doc_id: str, ops_: list[dict[str, Any]]) -> None:
        services.run(
            principal,
            True,
            lambda tx: ix.patch(ctx, tx, "DocumentReference", doc_id, PATCH, ops_),
        )

    before = {d["id"] for d in current()}  # earlier examples' documents, still current
    for op, pick, data in ops:
        live = current()
        target = live[pick % len(live)]["id"] if live else None
        if op == "feed" or (op == "replace" and target is None):
            out = services.dmp.provide_bundle(
                ctx, run, provide_bundle(patient, [data]), True, False
            )
        elif op == "replace":
            bundle = provide_bundle(patient, [data], replaces=f"DocumentReference/{target}")
            out = services.dmp.provide_bundle(ctx, run, bundle, True, False)
            gone.add(str(target))
        elif target is None:
            continue
        elif op == "delete":
            patch(target, [{"op": "replace", "path": "/status", "value": "superseded"}])
            gone.add(target)
            continue
        elif op in ("mask", "unmask"):
            code = "MASQUE_PS" if op == "mask" else "N"
            patch(
                target, [{"op": "replace", "path": "/securityLabel/0/coding/0/code", "value": code}]
            )
            continue
        else:
            ext = [{"url": IS_ARCHIVED, "valueBoolean": True}]
            patch(target, [{"op": "add", "path": "/extension", "value": ext}])
            continue
        assert out.resource is not None
        location = out.resource["entry"][1]["response"]["location"]
        fed[location.split("/")[1]] = data
    shown = {d["id"] for d in current()}
    assert shown == (before | set(fed)) - gone
    for doc_id in gone:
        old = services.store.read(lambda tx, d=doc_id: tx.read("DocumentReference", d))
        assert old is not None and old.resource is not None
        assert old.resource["status"] == "superseded"
    for doc_id, data in fed.items():
        stored = services.store.read(lambda tx, d=doc_id: tx.read("DocumentReference", d))
        assert stored is not None and stored.resource is not None
        attachment = stored.resource["content"][0]["attachment"]
        content = b"".join(services.dmp.blobs.open(attachment["url"].split("/")[1]))
        assert content == data
        assert base64.b64decode(attachment["hash"]) == hashlib.sha1(content).digest()
        assert attachment["size"] == len(content)
