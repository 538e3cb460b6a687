"""The shape of a matricule INS typed in a sign-in or search form: 13 characters and the key,
Corsica's departments 2A/2B in characters 6-7 (https://esante.gouv.fr/produits-services/referentiel-ins)."""

from __future__ import annotations

import pytest

from maison.services.smart.patients import normalize_ins


@pytest.mark.parametrize(
    ("typed", "expected"),
    [
        ("148063523842251", "148063523842251"),
        ("1 48 06 35 238 422 51", "148063523842251"),
        ("118042B03302556", "118042B03302556"),  # born in Haute-Corse
        ("2 85 04 2a 033 025 56", "285042A03302556"),  # lower case, Corse-du-Sud
    ],
)
def test_real_shapes_are_kept(typed: str, expected: str) -> None:
    assert normalize_ins(typed) == expected


@pytest.mark.parametrize(
    "typed",
    ["", "12345", "1B8063523842251", "14806352384225", "1480635238422511", "A48063523842251"],
)
def test_other_shapes_are_refused(typed: str) -> None:
    assert normalize_ins(typed) is None
