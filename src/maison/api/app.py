"""Application factories: prepare a data folder, then build the ASGI app for uvicorn.

https://hl7.org/fhir/R4/http.html
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from typing import Any, Literal, overload

import orjson
from starlette.applications import Starlette

from maison.api import bundles
from maison.api.http import build_app
from maison.api.ins_operations import load_demo_reference
from maison.api.services import Services, build_services
from maison.api.settings import Settings, server_file
from maison.security.principal import Principal, parse_scopes
from maison.store.interface import Stored, StoreTx

log = logging.getLogger("maison")


def system_principal(subject: str = "maison-system") -> Principal:
    """The server acting on its own behalf (demo load, CLI imports)."""
    scopes, others = parse_scopes("system/*.*")
    return Principal(subject, "maison", scopes, None, None, None, other_scopes=others)


@overload
def load_bundles(services: Services, items: Iterable[dict[str, Any]]) -> int: ...


@overload
def load_bundles(
    services: Services, items: Iterable[dict[str, Any]], responses: Literal[True]
) -> list[dict[str, Any]]: ...


def load_bundles(
    services: Services, items: Iterable[dict[str, Any]], responses: bool = False
) -> int | list[dict[str, Any]]:
    """Process transaction/batch Bundles as the system; returns resources written (or, with
    ``responses``, the response entries)."""
    principal = system_principal()
    written = 0
    entries: list[dict[str, Any]] = []
    for bundle in items:
        if services.refresh_due():
            services.refresh()
        ctx = services.context(services.settings.base_url, None)
        if bundle.get("type") == "transaction":
            out = bundles.transaction(
                ctx, services.runner(principal), services.store.new_id, bundle, True, False
            )
        else:
            out = bundles.batch(ctx, services.runner(principal), bundle, True, False)
        entries.extend(out["entry"])
        written += sum(
            1 for e in out["entry"] if e["response"]["status"].startswith(("200", "201"))
        )
    return entries if responses else written


def prepare(settings: Settings) -> Services:
    """Migrate the store, record how to reach the server, load the demo data on first start."""
    services = build_services(settings)
    services.store.migrate()
    services.store.check_keys(str(settings.state_dir / "keys"))
    services.store.analyze()
    services.refresh()
    state = settings.state_dir
    state.mkdir(parents=True, exist_ok=True)
    info = {
        "public_url": settings.base_url,
        "issuer": settings.issuer_url,
        "audience": settings.audience or settings.base_url,
        "local_issuer": services.issuer is not None,
    }
    tmp = server_file(state).with_suffix(".tmp")
    tmp.write_bytes(orjson.dumps(info, option=orjson.OPT_INDENT_2))
    os.replace(tmp, server_file(state))
    if settings.demo and services.store.get_meta("demo_loaded") is None:
        if services.store.count() == 0:
            from maison.services.demo.synthetic import demo_bundles

            bundles_ = list(demo_bundles(settings.demo_patients, seed=2026))
            n = load_bundles(services, bundles_)
            log.info("loaded %d demo resources", n)
            patients = [
                e["resource"]
                for b in bundles_
                for e in b.get("entry", [])
                if e.get("resource", {}).get("resourceType") == "Patient"
            ]
            if services.identity_base is not None:
                m = load_demo_reference(services.identity_base, patients, seed=2026)
                log.info("loaded %d identities into the demo INSi reference base", m)
            k = load_demo_annuaire(services, DEMO_ANNUAIRE_ROWS, seed=2026)
            log.info("loaded %d Annuaire Santé resources from a synthetic extraction", k)
            d = load_demo_documents(services, patients[:DEMO_DMP_PATIENTS])
            log.info("fed %d documents into the demo patients' DMP", d)
        services.store.set_meta("demo_loaded", "1")
    return services


#: Demo patients whose DMP holds documents (a lab report, a discharge letter, a vaccination
#: history, an imaging report each).
DEMO_DMP_PATIENTS = 5


def load_demo_documents(services: Services, patients: list[dict[str, Any]]) -> int:
    """Feed the demo documents of these (stored) patients through ITI-65, as a producer
    would; returns the documents fed (https://profiles.ihe.net/ITI/MHD/ITI-65.html)."""
    from maison.services.demo.documents import demo_documents

    dmp = services.dmp
    if dmp is None:
        return 0
    principal = system_principal()
    ctx = services.context(services.settings.base_url, principal)
    fed = 0
    for patient in patients:
        ins = next(
            (i for i in patient.get("identifier") or [] if "1.2.250.1.213.1.4." in i["system"]),
            None,
        )
        if ins is None:
            continue
        system, value = str(ins["system"]), str(ins["value"])

        def holders(tx: StoreTx, system: str = system, value: str = value) -> list[Stored]:
            return tx.holders("Patient", "identifier", system, value)

        held = services.store.read(holders)
        if not held:
            continue
        bundle = demo_documents(patient, f"Patient/{held[0].id}")
        if bundle is None:
            continue
        out = dmp.provide_bundle(ctx, services.runner(principal), bundle, True, False)
        assert out.resource is not None
        fed += sum(
            1 for e in out.resource["entry"] if e["response"]["location"].startswith("Document")
        )
    return fed


#: Rows of the synthetic Annuaire Santé extraction the demo start imports.
DEMO_ANNUAIRE_ROWS = 300


def load_demo_annuaire(services: Services, rows: int, seed: int) -> int:
    """Import a synthetic Annuaire Santé extraction (official layout) with its side files
    (diplômes, savoir-faire, MSSanté) and the FINESS extraction of its establishments into the
    demo store, as ``maison annuaire import`` would; returns the resources created."""
    import tempfile
    from pathlib import Path

    from maison.services.annuaire.finess_synth import finess_for_activity, write_finess
    from maison.services.annuaire.importer import import_extraction, import_finess
    from maison.services.annuaire.side_synth import write_side_files
    from maison.services.annuaire.synth import synthesize, write_extraction

    with tempfile.TemporaryDirectory(prefix="maison-demo-") as folder:
        here = Path(folder)
        path = write_extraction(synthesize(rows, seed), here / "extraction.txt")
        sides = write_side_files(synthesize(rows, seed), here, seed=seed)
        finess = write_finess(finess_for_activity(synthesize(rows, seed), seed), here / "f.csv")
        created = import_finess(services.store, finess).created
        summary = import_extraction(
            services.store, path, parallel=False, side_files=list(sides.values())
        )
    return created + summary.created


def create_app(settings: Settings, services: Services | None = None) -> Starlette:
    """The ASGI app for the given settings."""
    if services is None:
        services = build_services(settings)
        services.refresh()
    return build_app(services)


def app_from_env() -> Starlette:
    """Factory for uvicorn workers (settings passed in ``MAISON_SETTINGS``)."""
    _die_with_parent()
    return create_app(Settings.from_env())


def _die_with_parent() -> None:
    """On Linux, have the kernel SIGKILL this worker when its supervisor dies (even by kill -9),
    so no orphan keeps serving or writing."""
    import ctypes
    import signal
    import sys

    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        pr_set_pdeathsig = 1
        libc.prctl(pr_set_pdeathsig, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):
        log.warning("could not set the parent-death signal of this worker")
