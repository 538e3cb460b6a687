"""In-process timings of the terminology operations on a synthetic 10,000-code value set:
``ValueSet/$validate-code`` and ``CodeSystem/$validate-code`` (target p50 < 1 ms) and
``ValueSet/$expand`` with a text filter (target p50 < 50 ms), the expansion cache warm, plus the
first (cold) expansion. No server: the functions the API calls, over a ``PackageSource``.

    .venv/bin/python bench/terminology_ops.py
    .venv/bin/python bench/terminology_ops.py --codes 50000 --calls 5000

https://hl7.org/fhir/R4/terminology-service.html
"""

from __future__ import annotations

import argparse
import random
import time
from typing import Any

import common
from maison.fhir.definitions import Definitions
from maison.terminology.compose import ExpansionCache
from maison.terminology.expand import expand
from maison.terminology.packages import PackageSource
from maison.terminology.validate import validate_in_code_system, validate_in_value_set

SYSTEM = "https://example.org/fhir/CodeSystem/bench-types"
VS_URL = "https://example.org/fhir/ValueSet/bench-types"
WORDS = (
    "compte",
    "rendu",
    "opératoire",
    "hospitalisation",
    "consultation",
    "bilan",
    "évaluation",
    "synthèse",
    "radiologie",
    "échographie",
    "cardiologie",
    "prescription",
    "médicament",
    "biologie",
    "examen",
    "imagerie",
    "lettre",
    "sortie",
    "urgence",
    "pédiatrie",
    "néphrologie",
    "dermatologie",
    "vaccination",
    "certificat",
    "décès",
    "naissance",
    "grossesse",
    "anesthésie",
    "chirurgie",
    "kinésithérapie",
    "orthophonie",
    "psychiatrie",
    "gériatrie",
    "oncologie",
    "dépistage",
)


def synthetic(codes: int, seed: int) -> tuple[dict[str, Any], dict[str, Any]]:
    """A complete CodeSystem of ``codes`` concepts (French displays with accents, a short
    designation each) and a ValueSet that includes all of it."""
    rng = random.Random(seed)
    concepts = []
    for n in range(codes):
        words = rng.sample(WORDS, rng.randint(2, 5))
        concepts.append(
            {
                "code": f"T{n:06d}",
                "display": " ".join(words).capitalize() + f" {n % 97}",
                "designation": [{"use": {"code": "LibelleCourt"}, "value": " ".join(words[:2])}],
            }
        )
    cs = {
        "resourceType": "CodeSystem",
        "url": SYSTEM,
        "version": "1",
        "status": "active",
        "content": "complete",
        "concept": concepts,
    }
    vs = {
        "resourceType": "ValueSet",
        "url": VS_URL,
        "version": "1",
        "status": "active",
        "compose": {"include": [{"system": SYSTEM}]},
    }
    return cs, vs


def timed(calls: list[Any]) -> list[float]:
    """The duration of each call, in seconds."""
    out = []
    for call in calls:
        t0 = time.perf_counter()
        call()
        out.append(time.perf_counter() - t0)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--codes", type=int, default=10_000, help="concepts in the value set")
    parser.add_argument("--calls", type=int, default=2_000, help="$validate-code calls timed")
    parser.add_argument("--expands", type=int, default=300, help="filtered $expand calls timed")
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--json", default=None, help="append the figures as JSON lines here")
    args = parser.parse_args()

    cs, vs = synthetic(args.codes, args.seed)
    source = PackageSource(Definitions(code_systems={SYSTEM: cs}, value_sets={VS_URL: vs}))
    cache = ExpansionCache()
    rng = random.Random(args.seed + 1)

    t0 = time.perf_counter()
    cold = expand(source, url=VS_URL, count=0, cache=cache)
    cold_ms = round((time.perf_counter() - t0) * 1000, 1)
    assert cold["expansion"]["total"] == args.codes

    concepts = cs["concept"]
    picks = [rng.choice(concepts) for _ in range(args.calls)]

    def vs_call(c: dict[str, Any]) -> Any:
        return lambda: validate_in_value_set(
            source, url=VS_URL, system=SYSTEM, code=c["code"], display=c["display"], cache=cache
        )

    def cs_call(c: dict[str, Any]) -> Any:
        return lambda: validate_in_code_system(source, url=SYSTEM, code=c["code"])

    timed([vs_call(c) for c in picks[:100]])  # warm-up
    vs_times = timed([vs_call(c) for c in picks])
    cs_times = timed([cs_call(c) for c in picks])
    outside = timed(
        [
            lambda n=n: validate_in_value_set(
                source, url=VS_URL, system=SYSTEM, code=f"X{n}", cache=cache
            )
            for n in range(args.calls)
        ]
    )

    filters = []
    for _ in range(args.expands):
        words = rng.sample(WORDS, rng.choice((1, 1, 2)))
        filters.append(" ".join(w[: rng.randint(3, len(w))] for w in words))
    matched: list[int] = []

    def expand_call(text: str) -> Any:
        def run() -> None:
            out = expand(source, url=VS_URL, filter=text, count=50, cache=cache)
            matched.append(out["expansion"]["total"])

        return run

    expand_times = timed([expand_call(f) for f in filters])
    unpaged = timed(
        [
            lambda f=f: expand(source, url=VS_URL, filter=f, cache=cache)
            for f in filters[: max(1, args.expands // 3)]
        ]
    )

    def row(name: str, seconds: list[float], **extra: Any) -> dict[str, Any]:
        micro = {
            "p50_us": round(common.percentile(seconds, 50) * 1e6, 1),
            "p95_us": round(common.percentile(seconds, 95) * 1e6, 1),
        }
        summary = common.latency_summary(seconds)
        return {"operation": name, "calls": len(seconds), **micro, **summary, **extra}

    rows = [
        row("ValueSet/$validate-code (in, display checked)", vs_times),
        row("ValueSet/$validate-code (not in)", outside),
        row("CodeSystem/$validate-code", cs_times),
        row(
            "ValueSet/$expand filter, count=50",
            expand_times,
            median_matches=sorted(matched)[len(matched) // 2],
        ),
        row("ValueSet/$expand filter, every match", unpaged),
        {"operation": "first $expand (cold, indexes the system)", "ms": cold_ms},
    ]
    common.print_rows(f"terminology operations, {args.codes:,}-code value set", rows, args.json)


if __name__ == "__main__":
    main()
