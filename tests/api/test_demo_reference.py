"""The demo start gives the INSi service a reference base holding the demo patients' identities,
so the README's `$ins-search` example answers CR 00 on a fresh machine.

https://esante.gouv.fr/produits-services/referentiel-ins
"""

from __future__ import annotations

from pathlib import Path

from maison.api.app import prepare
from maison.api.ins_operations import DEMO_REFERENCE_SIZE
from maison.api.settings import Settings
from maison.services.ins import insi


def test_demo_patients_are_found_by_ins_search(tmp_path: Path) -> None:
    services = prepare(Settings(data=str(tmp_path / "data"), demo=True, demo_patients=3))
    try:
        base = services.identity_base
        assert base is not None
        assert base.count() == DEMO_REFERENCE_SIZE + 3
        # the README's example: the first demo patient, traits as a person types them
        request = insi.search_request(
            [
                ("NomNaissance", "Dubois"),
                ("Prenom", "Théo"),
                ("Sexe", "M"),
                ("DateNaissance", "1948-06-18"),
            ]
        )
        response = insi.search(request, base.by_traits)
        assert response.cr == insi.CR_FOUND
        assert response.identity is not None
        assert response.identity.matricule == "148063523842251"
        assert response.identity.given_names == ("THEO", "SEBASTIEN", "RENE")
    finally:
        services.store.close()


def test_demo_start_imports_a_synthetic_annuaire(tmp_path: Path) -> None:
    """The demo store holds the Annuaire Santé of a synthetic extraction, found by the searches
    the Annuaire FHIR API documents (identifier, family, address-city, _revinclude)."""
    from maison.api.app import DEMO_ANNUAIRE_ROWS
    from maison.fhir.search import parse_search
    from maison.services.annuaire.synth import synthesize

    services = prepare(Settings(data=str(tmp_path / "data"), demo=True, demo_patients=1))
    try:
        first = next(synthesize(DEMO_ANNUAIRE_ROWS, 2026))
        rpps = first["Identifiant PP"]

        def search(rtype: str, *params: tuple[str, str]) -> list[dict[str, object]]:
            query = parse_search(services.defs, rtype, list(params))
            page = services.store.read(lambda tx: tx.search(query))
            return [s.resource for s in [*page.entries, *page.included] if s.resource]

        found = search(
            "Practitioner",
            ("identifier", f"https://rpps.esante.gouv.fr|{rpps}"),
            ("_revinclude", "PractitionerRole:practitioner"),
        )
        kinds = sorted({str(r["resourceType"]) for r in found})
        assert kinds == ["Practitioner", "PractitionerRole"], kinds
        practitioner = next(r for r in found if r["resourceType"] == "Practitioner")
        assert practitioner["active"] is True
        family = first["Nom d'exercice"]
        assert any(
            r["id"] == practitioner["id"] for r in search("Practitioner", ("family", family))
        )
        city = first["Libellé commune (coord. structure)"]
        if city:
            assert search("Organization", ("address-city", city))
    finally:
        services.store.close()
