"""Terminology load benchmark: `maison terminology load` of a synthetic SNOMED CT-sized RF2
snapshot.

Synthesises an RF2 snapshot into a temporary folder (default: 350,000 concepts; 1,000,000
descriptions: an English FSN and synonym per concept, a French synonym for most; the en and
fr language reference sets marking the synonyms preferred; ~500,000 active is-a edges: an
8-ary tree plus a second parent for 3 concepts in 7, and a few inactive edges), then times, each in
its own process with the peak RSS of its process tree (polled every 0.2 s):

1. the first load (everything created);
2. the same release again: must write nothing (``unchanged``).

Then, in process over the loaded store: descendants of a mid-level concept (the recursive
query; its size printed) and concept look-ups (p50 over random codes).

Figures, not a test. Target (issue 9): under 5 minutes, bounded memory.

    .venv/bin/python bench/terminology_load.py                        # 350,000 concepts, SQLite
    .venv/bin/python bench/terminology_load.py --concepts 50000       # a quick run
    .venv/bin/python bench/terminology_load.py --pg postgresql://maison@127.0.0.1:5432/postgres
"""

from __future__ import annotations

import argparse
import random
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import common

CLI = "from maison.cli.terminology import terminology_app; terminology_app(prog_name='maison')"
DATE = "20250101"
CORE = "900000000000207008"
FSN, SYNONYM = "900000000000003001", "900000000000013009"
PREFERRED, ACCEPTABLE = "900000000000548007", "900000000000549004"
IS_A = "116680003"
HEADERS = {
    "concept": "id effectiveTime active moduleId definitionStatusId",
    "description": "id effectiveTime active moduleId conceptId languageCode typeId term "
    "caseSignificanceId",
    "relationship": "id effectiveTime active moduleId sourceId destinationId relationshipGroup "
    "typeId characteristicTypeId modifierId",
    "language": "id effectiveTime active moduleId refsetId referencedComponentId acceptabilityId",
}
WORDS = str.split(
    "acute chronic left right upper lower anterior posterior fracture infection disorder "
    "syndrome lesion pain structure procedure finding bone heart lung kidney liver skin muscle "
    "nerve vessel congenital traumatic benign malignant primary secondary"
)
MOTS = str.split(
    "aigu chronique gauche droit supérieur inférieur antérieur postérieur fracture infection "
    "trouble syndrome lésion douleur structure intervention constat os cœur poumon rein foie "
    "peau muscle nerf vaisseau congénital traumatique bénin malin primaire secondaire"
)
BRANCHING = 8


def sctid(n: int, partition: str) -> str:
    """A SNOMED CT identifier with a valid Verhoeff check digit (partition 00 concept, 01
    description, 02 relationship)."""
    from stdnum import verhoeff

    body = f"{n}{partition}"
    return body + verhoeff.calc_check_digit(body)


def parent_of(i: int) -> int:
    return (i - 1) // BRANCHING


def synthesise(folder: Path, concepts: int, descriptions: int, seed: int) -> dict[str, int]:
    """Write the RF2 snapshot files; how many rows of each kind."""
    rng = random.Random(seed)
    term_dir = folder / "SnomedCT_Synthetic_PRODUCTION" / "Snapshot" / "Terminology"
    lang_dir = folder / "SnomedCT_Synthetic_PRODUCTION" / "Snapshot" / "Refset" / "Language"
    term_dir.mkdir(parents=True)
    lang_dir.mkdir(parents=True)
    ids = [sctid(100_000 + i, "00") for i in range(concepts)]
    # per concept: an English FSN and synonym, and a French synonym for a share of them
    french = max(0, min(concepts, descriptions - 2 * concepts))
    counts = {"concept": concepts, "description": 0, "relationship": 0, "language": 0}

    def open_rf2(path: Path, kind: str) -> Any:
        f = path.open("w", encoding="utf-8", newline="")
        f.write("\t".join(HEADERS[kind].split()) + "\r\n")
        return f

    with open_rf2(term_dir / f"sct2_Concept_Snapshot_INT_{DATE}.txt", "concept") as f:
        for i, cid in enumerate(ids):
            active = "0" if i and i % 997 == 0 else "1"
            f.write(f"{cid}\t{DATE}\t{active}\t{CORE}\t900000000000074008\r\n")
    desc_n = 0
    lang_n = 0
    en_desc = term_dir / f"sct2_Description_Snapshot-en_INT_{DATE}.txt"
    fr_desc = term_dir / f"sct2_Description_Snapshot-fr_INT_{DATE}.txt"
    en_lang = lang_dir / f"der2_cRefset_LanguageSnapshot-en_INT_{DATE}.txt"
    fr_lang = lang_dir / f"der2_cRefset_LanguageSnapshot-fr_INT_{DATE}.txt"
    with (
        open_rf2(en_desc, "description") as den,
        open_rf2(fr_desc, "description") as dfr,
        open_rf2(en_lang, "language") as len_,
        open_rf2(fr_lang, "language") as lfr,
    ):
        for i, cid in enumerate(ids):
            words = " ".join(rng.choice(WORDS) for _ in range(rng.randint(2, 5)))
            mots = " ".join(rng.choice(MOTS) for _ in range(rng.randint(2, 5)))
            fsn, syn = sctid(desc_n, "01"), sctid(desc_n + 1, "01")
            den.write(
                f"{fsn}\t{DATE}\t1\t{CORE}\t{cid}\ten\t{FSN}\t{words.capitalize()} {i} (disorder)"
                f"\t900000000000448009\r\n"
                f"{syn}\t{DATE}\t1\t{CORE}\t{cid}\ten\t{SYNONYM}\t{words.capitalize()} {i}"
                f"\t900000000000448009\r\n"
            )
            len_.write(
                f"e{i}a\t{DATE}\t1\t{CORE}\t900000000000509007\t{fsn}\t{PREFERRED}\r\n"
                f"e{i}b\t{DATE}\t1\t{CORE}\t900000000000509007\t{syn}\t{PREFERRED}\r\n"
            )
            desc_n += 2
            lang_n += 2
            if i < french:
                fr = sctid(desc_n, "01")
                dfr.write(
                    f"{fr}\t{DATE}\t1\t{CORE}\t{cid}\tfr\t{SYNONYM}\t{mots.capitalize()} {i}"
                    f"\t900000000000017004\r\n"
                )
                lfr.write(f"f{i}\t{DATE}\t1\t{CORE}\t10031000315102\t{fr}\t{PREFERRED}\r\n")
                desc_n += 1
                lang_n += 1
    counts["description"] = desc_n
    counts["language"] = lang_n
    rel_n = 0
    rel = term_dir / f"sct2_Relationship_Snapshot_INT_{DATE}.txt"
    with open_rf2(rel, "relationship") as f:
        for i in range(1, concepts):
            parents = [parent_of(i)]
            if i % 7 in (1, 3, 5):  # a second parent at the same level as the first
                level_start = parent_of(i) - parent_of(i) % BRANCHING
                parents.append(min(concepts - 1, max(0, level_start + rng.randrange(BRANCHING))))
            for p in dict.fromkeys(parents):
                if p == i:
                    continue
                active = "0" if rel_n % 1009 == 0 else "1"
                f.write(
                    f"{sctid(rel_n, '02')}\t{DATE}\t{active}\t{CORE}\t{ids[i]}\t{ids[p]}\t0\t"
                    f"{IS_A}\t900000000000011006\t900000000000451002\r\n"
                )
                rel_n += 1
    counts["relationship"] = rel_n
    return counts


def run_load(folder: Path, data: str, state: Path, label: str) -> dict[str, Any]:
    """One `maison terminology load` in its own process: time, peak RSS, its summary."""
    cmd = [sys.executable, "-c", CLI, "load", str(folder), "--data", data, "--state", str(state)]
    seconds, text, memory = common.timed_command(cmd, label)
    row = next(
        (
            [c.strip() for c in line.split("│")[1:-1]]
            for line in text.splitlines()
            if "SNOMED CT" in line and "│" in line
        ),
        ["", "", "", "0", "?"],
    )
    concepts = int(row[3].replace(",", "") or 0)
    return {
        "run": label,
        "status": row[4],
        "concepts": concepts,
        "seconds": round(seconds, 1),
        "peak_rss_mib (tree)": memory["peak_rss_mib"],
        "peak_rss_mib (largest)": memory["peak_rss_largest_mib"],
    }


def reads(data: str, state: Path, concepts: int, seed: int) -> dict[str, Any]:
    """Descendants of a mid-level concept and concept look-ups, in process."""
    from maison.api.services import make_store
    from maison.api.settings import Settings
    from maison.fhir.definitions import default_definitions
    from maison.terminology.source import SNOMED
    from maison.terminology.sql_source import SqlTerminology

    store = make_store(Settings(data=data, state=str(state), demo=False), default_definitions())
    try:
        term = SqlTerminology(store)
        ids = [sctid(100_000 + i, "00") for i in range(concepts)]
        mid = ids[3]  # level 1 of the 8-ary tree: about 1/8 of the concepts below it
        deeper = ids[3 * BRANCHING + 2]  # level 2
        out: dict[str, Any] = {}
        for name, code in (("level 1", mid), ("level 2", deeper)):
            term.descendants(SNOMED, code)  # warm
            t0 = time.perf_counter()
            below = term.descendants(SNOMED, code)
            out[f"descendants {name} (count)"] = len(below)
            out[f"descendants {name} ms"] = round((time.perf_counter() - t0) * 1000, 1)
        rng = random.Random(seed)
        sample = [rng.choice(ids) for _ in range(2000)]
        times = []
        for code in sample:
            t0 = time.perf_counter()
            found = term.concept(SNOMED, code)
            times.append(time.perf_counter() - t0)
            assert found is not None and found.display
        out["concept() p50 ms"] = round(common.percentile(times, 50) * 1000, 3)
        out["concept() p95 ms"] = round(common.percentile(times, 95) * 1000, 3)
        return out
    finally:
        store.close()


def main(argv: list[str] | None = None) -> int:
    """Synthesise, load, load again, then read."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--concepts", type=int, default=350_000)
    parser.add_argument("--descriptions", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", default=None, help="append result rows as JSON lines")
    group = parser.add_argument_group("store")
    group.add_argument("--pg", metavar="URL", default=None, help="PostgreSQL server to use")
    group.add_argument("--data", metavar="DIR", default=None, help="keep this SQLite folder")
    group.add_argument("--keep", action="store_true", help="keep the fresh store and files")
    args = parser.parse_args(argv)

    folder = Path(tempfile.mkdtemp(prefix="maison-terminology-"))
    cleanups: list[Callable[[], None]] = []
    if args.pg:
        data, drop = common.pg_database(args.pg, None, args.keep)
        cleanups.append(drop)
        store = "PostgreSQL"
    else:
        data = str(Path(args.data).resolve()) if args.data else str(folder / "data")
        store = "SQLite"
    state = folder / "state"
    release = folder / "release"
    rows: list[dict[str, Any]] = []
    try:
        t0 = time.perf_counter()
        counts = synthesise(release, args.concepts, args.descriptions, args.seed)
        size = sum(f.stat().st_size for f in release.rglob("*.txt"))
        print(
            f"synthesised {counts} in {time.perf_counter() - t0:.1f} s ({size:,} bytes)",
            file=sys.stderr,
        )
        for label in ("first load", "same release"):
            result = run_load(release, data, state, label)
            print(f"{label}: {result['seconds']} s ({result['status']})", file=sys.stderr)
            rows.append({**result, **({"rf2 rows": sum(counts.values())} if not rows else {})})
        rows.append({"run": "reads", **reads(data, state, args.concepts, args.seed)})
    finally:
        for cleanup in cleanups:
            cleanup()
        if args.keep:
            print(f"kept {folder}", file=sys.stderr)
        else:
            shutil.rmtree(folder, ignore_errors=True)
    common.print_rows(
        f"Terminology load of a synthetic RF2 snapshot, {args.concepts:,} concepts ({store})",
        rows,
        args.json,
    )
    if rows[0]["status"] != "created" or rows[1]["status"] != "unchanged":
        print("unexpected statuses (created, then unchanged)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
