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
