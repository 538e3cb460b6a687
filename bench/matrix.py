"""Habilitation matrix decision latency: :func:`maison.security.matrix.decide` over the shipped
matrix plus N narrowed cells (savoir-faire / rôle / type rows, so every lookup level is
exercised), for a mix of professionals and document types; prints p50/p90/p99 per decision
(target p50 < 50 µs) and the load (parse + validate + index) time.

Figures, not a test.

    .venv/bin/python bench/matrix.py                 # 200,000 decisions
    .venv/bin/python bench/matrix.py --decisions 1000000 --extra 5000

https://www.legifrance.gouv.fr/jorf/id/JORFTEXT000048256185
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
from dataclasses import dataclass

from maison.security.matrix import LOINC, TRE_A03, Matrix, decide, load_csv
from maison.security.matrix_store import packaged_csv
from maison.terminology.source import NOS_LOINC, canonical_system

TYPES = ["11488-4", "11490-0", "11502-2", "18748-4", "34133-9", "57833-6", "60593-1", "87273-9"]
CLASSES = ["10", "11", "31", "42", "43", "44", "45", "52", "60", "90"]
PROFESSIONS = ["10", "21", "40", "50", "60", "70", "80", "91", "93"]


@dataclass(frozen=True)
class Pro:
    profession: str | None
    savoir_faire_type: str | None
    savoir_faire: str | None
    role: str | None


def _matrix(extra: int) -> tuple[Matrix, float]:
    rows = [packaged_csv().rstrip("\n")]
    for i in range(extra):
        profession = PROFESSIONS[i % len(PROFESSIONS)]
        rows.append(
            f"{profession},S:SM{i},FON-{i % 7:02d},LOINC:{TYPES[i % len(TYPES)]},yes,"
            f"provisional,bench"
        )
    text = "\n".join(rows) + "\n"
    started = time.perf_counter()
    matrix = load_csv(text, canonical=canonical_system)
    elapsed = time.perf_counter() - started
    assert isinstance(matrix, Matrix), matrix[:5]
    return matrix, elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--decisions", type=int, default=200_000)
    parser.add_argument("--extra", type=int, default=1000, help="narrowed cells added")
    args = parser.parse_args()
    matrix, load_seconds = _matrix(args.extra)
    rng = random.Random(8)
    cases = []
    for _ in range(4096):
        sf = f"SM{rng.randrange(args.extra or 1)}" if rng.random() < 0.5 else None
        pro = Pro(rng.choice(PROFESSIONS), "S" if sf else None, sf, f"FON-{rng.randrange(7):02d}")
        system = rng.choice([LOINC, NOS_LOINC, "urn:oid:2.16.840.1.113883.6.1"])
        type_ = {"system": system, "code": rng.choice(TYPES)}
        class_ = {"system": TRE_A03, "code": rng.choice(CLASSES)}
        cases.append((pro, type_, class_))
    for pro, type_, class_ in cases:  # warm up
        decide(matrix, pro, type_, class_)
    samples = []
    allowed = 0
    clock = time.perf_counter_ns
    for i in range(args.decisions):
        pro, type_, class_ = cases[i & 4095]
        t0 = clock()
        d = decide(matrix, pro, type_, class_)
        samples.append(clock() - t0)
        allowed += d.allowed
    samples.sort()
    q = statistics.quantiles(samples, n=100)
    print(
        f"matrix: {len(matrix.cells):,} cells, loaded (parse + validate + index) in "
        f"{load_seconds * 1000:.1f} ms"
    )
    print(
        f"decide: {args.decisions:,} decisions, {allowed:,} allowed; per decision "
        f"p50 {q[49] / 1000:.2f} µs, p90 {q[89] / 1000:.2f} µs, p99 {q[98] / 1000:.2f} µs "
        f"(target p50 < 50 µs)"
    )


if __name__ == "__main__":
    main()
