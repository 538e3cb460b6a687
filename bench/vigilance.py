"""Identity-vigilance batch benchmark: N patients with injected duplicates, time, memory, quality.

Generates N candidates from the INS reference synthesis (``maison.services.ins.reference``), with a
controlled share of injected duplicates of each kind (accents/case, inverted first names, date
typos, used name as birth name, name typos, missing traits, a name typo with a date typo) and
of INS collisions (another person
carrying the same INS). Runs ``find_duplicates`` and prints the time, the peak RSS of the process
(``resource.getrusage``, which includes the candidate list itself), the pairs found and the
precision/recall against the injected pairs, overall and per kind.

    .venv/bin/python bench/vigilance.py                      # 100,000 patients
    .venv/bin/python bench/vigilance.py --n 1000000          # the 1M target: < 2 min, < 2 GB
    .venv/bin/python bench/vigilance.py --n 1000000 --stream # candidates streamed, not listed
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import sys
import time
from collections import Counter
from collections.abc import Iterator
from datetime import date, timedelta
from typing import Any

from maison.services.ins.reference import ReferenceIdentity, synthesize
from maison.services.ins.vigilance import (
    COLLISION,
    DUPLICATE,
    Candidate,
    DuplicatePair,
    find_duplicates,
)

KINDS = (
    "accents_case",
    "given_inverted",
    "date_digit",
    "date_swap",
    "date_one_day",
    "used_name",
    "name_typo",
    "given_typo",
    "missing_traits",
    "two_errors",
    "collision",
)

ACCENTED = {"E": "ÉÈÊ", "A": "ÀÂ", "I": "ÎÏ", "O": "Ô", "U": "ÙÛ", "C": "Ç"}


def _accents_case(text: str, rng: random.Random) -> str:
    """'LE GALL-MARTIN' -> 'Le Gall Martin' with an accent or two, as a desk might type it."""
    chars = list(text.title())
    for _ in range(2):
        k = rng.randrange(len(chars))
        options = ACCENTED.get(chars[k].upper())
        if options:
            accented = rng.choice(options)
            chars[k] = accented if chars[k].isupper() else accented.lower()
    out = "".join(chars)
    if "-" in out and rng.random() < 0.5:
        out = out.replace("-", " ")
    elif " " in out and rng.random() < 0.5:
        out = out.replace(" ", "-")
    return out


def _typo(word: str, rng: random.Random) -> str:
    if len(word) < 4:
        return word + "E"
    k = rng.randrange(len(word))
    if rng.random() < 0.5:
        letter = rng.choice([c for c in "ABCDEFGHIJKLMNOPQRSTUVWXYZ" if c != word[k]])
        return word[:k] + letter + word[k + 1 :]
    return word[:k] + word[k + 1 :]


def _date_digit(iso: str, rng: random.Random) -> str:
    y, m, d = (int(p) for p in iso.split("-"))
    for _ in range(20):
        field = rng.choice(("year", "month", "day"))
        if field == "year":
            ny, nm, nd = y - y % 10 + rng.choice([v for v in range(10) if v != y % 10]), m, d
        elif field == "month":
            nm = m - m % 10 + rng.choice([v for v in range(10) if v != m % 10])
            ny, nd = y, d
        else:
            nd = d - d % 10 + rng.choice([v for v in range(10) if v != d % 10])
            ny, nm = y, m
        try:
            moved = date(ny, nm, nd)
        except ValueError:
            continue
        if moved <= date(2025, 6, 30):
            return moved.isoformat()
    return (date.fromisoformat(iso) - timedelta(days=10)).isoformat()


def _candidate(ident: ReferenceIdentity, cid: str, rng: random.Random) -> Candidate:
    return Candidate(
        id=cid,
        family=ident.nom_naissance,
        given_names=ident.prenoms,
        birth_date=ident.date_naissance,
        gender="male" if ident.sexe == "M" else "female",
        birth_place=ident.lieu_naissance,
        ins=ident.matricule if rng.random() < 0.8 else None,  # 20% provisional identities
        used_family=None,
    )


def _duplicate(
    base: Candidate, kind: str, cid: str, other: ReferenceIdentity, rng: random.Random
) -> tuple[Candidate, Candidate] | None:
    """(base, duplicate) for ``kind``; the base may change (used name); None if not applicable."""
    family = base.family or ""
    given = base.given_names
    birth = base.birth_date or ""
    fields: dict[str, Any] = {
        "id": cid,
        "family": family,
        "given_names": given,
        "birth_date": birth,
        "gender": base.gender,
        "birth_place": base.birth_place if rng.random() < 0.7 else None,
        "ins": None,
        "used_family": None,
    }
    if len(birth) != 10 and (kind.startswith("date") or kind == "two_errors"):
        return None
    if kind == "accents_case":
        fields["family"] = _accents_case(family, rng)
        fields["given_names"] = tuple(_accents_case(g, rng) for g in given)
    elif kind == "given_inverted":
        if len(given) < 2:
            return None
        fields["given_names"] = (given[1], given[0], *given[2:])
    elif kind == "date_digit":
        fields["birth_date"] = _date_digit(birth, rng)
    elif kind == "date_swap":
        y, m, d = birth.split("-")
        if int(d) > 12 or d == m:
            return None
        fields["birth_date"] = f"{y}-{d}-{m}"
    elif kind == "date_one_day":
        moved = date.fromisoformat(birth) + timedelta(days=rng.choice((-1, 1)))
        if moved > date(2025, 6, 30):
            return None
        fields["birth_date"] = moved.isoformat()
    elif kind == "used_name":
        married = other.nom_naissance
        if married == family:
            return None
        base = Candidate(**{**_fields(base), "used_family": married})
        fields["family"] = married  # the used name typed as the birth name
    elif kind == "name_typo":
        fields["family"] = _typo(family, rng)
    elif kind == "given_typo":
        fields["given_names"] = (_typo(given[0], rng), *given[1:])
    elif kind == "two_errors":  # a birth-name typo and a one-digit date typo together
        fields["family"] = _typo(family, rng)
        fields["birth_date"] = _date_digit(birth, rng)
    elif kind == "missing_traits":
        fields["gender"] = None
        fields["birth_place"] = None
        fields["given_names"] = given[:1]
    elif kind == "collision":
        fields = {
            "id": cid,
            "family": other.nom_naissance,
            "given_names": other.prenoms,
            "birth_date": other.date_naissance,
            "gender": "male" if other.sexe == "M" else "female",
            "birth_place": other.lieu_naissance,
            "ins": base.ins or "",
            "used_family": None,
        }
        if not base.ins:
            return None
    return base, Candidate(**fields)


def _fields(c: Candidate) -> dict[str, Any]:
    return {
        "id": c.id,
        "family": c.family,
        "given_names": c.given_names,
        "birth_date": c.birth_date,
        "gender": c.gender,
        "birth_place": c.birth_place,
        "ins": c.ins,
        "used_family": c.used_family,
    }


def generate(
    n: int, seed: int, dup_share: float, truth: dict[frozenset[str], str]
) -> Iterator[Candidate]:
    """N candidates (bases + injected duplicates); fills ``truth`` with the injected pairs."""
    rng = random.Random(f"bench-vigilance/{seed}")
    others = synthesize(n, seed + 1_000_003)  # other persons: married names, collisions
    produced = 0
    for index, ident in enumerate(synthesize(n, seed)):
        if produced >= n:
            return
        base = _candidate(ident, f"P{index}", rng)
        pair = None
        if produced + 1 < n and rng.random() < dup_share:
            kind = KINDS[rng.randrange(len(KINDS))]
            pair = _duplicate(base, kind, f"D{index}", next(others), rng)
            if pair is not None:
                base = pair[0]
                truth[frozenset((base.id, pair[1].id))] = kind
        yield base
        produced += 1
        if pair is not None:
            yield pair[1]
            produced += 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000, help="candidates in all")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--dup-share", type=float, default=0.02, help="bases with a duplicate")
    parser.add_argument("--threshold", type=float, default=0.8)
    parser.add_argument("--stream", action="store_true", help="stream candidates (no list)")
    parser.add_argument("--json", help="append the result row as a JSON line to this file")
    parser.add_argument("--show", type=int, default=5, help="false positives/negatives to print")
    args = parser.parse_args()

    truth: dict[frozenset[str], str] = {}
    t0 = time.perf_counter()
    source: Iterator[Candidate] | list[Candidate]
    if args.stream:
        source = generate(args.n, args.seed, args.dup_share, truth)
        generation = 0.0
    else:
        source = list(generate(args.n, args.seed, args.dup_share, truth))
        generation = time.perf_counter() - t0
    stats: dict[str, int] = {}
    t1 = time.perf_counter()
    pairs: list[DuplicatePair] = list(find_duplicates(source, args.threshold, stats=stats))
    detection = time.perf_counter() - t1
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    found = {frozenset((p.a, p.b)): p for p in pairs if p.kind in (COLLISION, DUPLICATE)}
    hits = [key for key in found if key in truth]
    precision = len(hits) / len(found) if found else 1.0
    recall = len(hits) / len(truth) if truth else 1.0
    injected = Counter(truth.values())
    recovered = Counter(truth[key] for key in hits)
    by_kind = Counter(p.kind for p in pairs)

    print(f"candidates            {stats['candidates']:>12,}")
    print(f"injected pairs        {len(truth):>12,}")
    if not args.stream:
        print(f"generation            {generation:>12.1f} s (not in the detection time)")
    label = "detection + generation" if args.stream else "detection"
    print(f"{label:<22}{detection:>12.1f} s")
    print(f"peak RSS (process)    {peak_mib:>12,.0f} MiB")
    print(f"blocks / oversized    {stats['blocks']:>12,} / {stats['oversized']:,}")
    print(f"comparisons           {stats['comparisons']:>12,}")
    print(f"pairs reported        {len(pairs):>12,}  {dict(by_kind)}")
    print(f"precision             {precision:>12.4f}")
    print(f"recall                {recall:>12.4f}")
    for kind in KINDS:
        if injected[kind]:
            share = recovered[kind] / injected[kind]
            print(f"  recall {kind:<15}{share:>8.3f}  ({recovered[kind]}/{injected[kind]})")
    misses = [key for key in truth if key not in found][: args.show]
    extras = [p for key, p in found.items() if key not in truth][: args.show]
    if misses:
        print("missed (first few):", [(sorted(k), truth[k]) for k in misses])
    if extras:
        print("not injected (first few):")
        for p in extras:
            print(f"  {p.a} {p.b} {p.score} {p.kind} {list(p.reasons)}")
    if args.json:
        row = {
            "n": stats["candidates"],
            "injected": len(truth),
            "detection_s": round(detection, 2),
            "generation_s": round(generation, 2),
            "peak_rss_mib": round(peak_mib),
            "pairs": len(pairs),
            "precision": round(precision, 4),
            "recall": round(recall, 4),
            "comparisons": stats["comparisons"],
            "stream": args.stream,
        }
        with open(args.json, "a", encoding="utf-8") as out:
            out.write(json.dumps(row) + "\n")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
