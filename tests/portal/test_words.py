"""The rule codes the API returns, said in French on the pages."""

from __future__ import annotations

import re
from pathlib import Path

from maison.portal.words import RULE_WORDS, rule_words

SRC = Path(__file__).resolve().parents[2] / "src" / "maison"


def test_every_word_names_a_rule_the_platform_really_uses() -> None:
    code = "\n".join(p.read_text() for p in (SRC / "security").glob("*.py"))
    code += "\n".join(p.read_text() for p in (SRC / "api").glob("*.py"))
    used = set(re.findall(r'"((?:dmp-[a-z]+|habilitation-matrix):[A-Za-z_-]+)"', code))
    assert set(RULE_WORDS) <= used, sorted(set(RULE_WORDS) - used)


def test_the_first_known_code_speaks_and_unknown_ones_are_silent() -> None:
    assert rule_words(["x", "dmp-access:blocked"]) == "le patient vous a bloqué"
    assert rule_words("nothing-known") == ""
    assert "matrice" in rule_words("habilitation-matrix:60/11488-4")
