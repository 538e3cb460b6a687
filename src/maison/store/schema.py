"""The relational schema: resource versions plus generic index tables per search-parameter type.

https://hl7.org/fhir/R4/search.html#ptypes — a new SearchParameter needs a reindex, not a migration.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Float,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    false,
)

metadata = MetaData()
# Columns searched with LIKE 'prefix%' (string default search, uri :below).
PATTERN_COLUMNS = frozenset({"value_folded"})

_bigint_pk = BigInteger().with_variant(Integer(), "sqlite")

# The current version of every resource (deleted ones kept as tombstones); its body is the
# matching row of resource_history, so each version's body is stored once.
resource = Table(
    "resource",
    metadata,
    Column("res_type", String(64), primary_key=True),
    Column("res_id", String(64), primary_key=True),
    Column("version", Integer, nullable=False),
    Column("last_updated", String(32), nullable=False),
    Column("deleted", Boolean, nullable=False),
    Index("ix_resource_type_updated", "res_type", "last_updated"),
)

# Every version, in write order (seq gives system-level history order).
resource_history = Table(
    "resource_history",
    metadata,
    Column("seq", _bigint_pk, primary_key=True, autoincrement=True),
    Column("res_type", String(64), nullable=False),
    Column("res_id", String(64), nullable=False),
    Column("version", Integer, nullable=False),
    Column("last_updated", String(32), nullable=False),
    Column("deleted", Boolean, nullable=False),
    Column("method", String(8), nullable=False),
    Column("content", LargeBinary, nullable=True),
    Index("ux_history_version", "res_type", "res_id", "version", unique=True),
    Index("ix_history_type_seq", "res_type", "seq"),
)

# Key/value facts about the store itself (demo loaded, schema notes).
store_meta = Table(
    "store_meta",
    metadata,
    Column("key", String(64), primary_key=True),
    Column("value", Text, nullable=False),
)


def _index_table(name: str, *columns: Column[object], indexes: list[tuple[str, ...]]) -> Table:
    table = Table(
        name,
        metadata,
        Column("res_type", String(64), nullable=False),
        Column("res_id", String(64), nullable=False),
        Column("code", String(128), nullable=False),
        *columns,
        # composite parameters: the rows of one repetition share a group number
        Column("grp", Integer, nullable=True),
    )
    Index(f"ix_{name}_res", table.c.res_type, table.c.res_id)
    for cols in indexes:
        Index(
            f"ix_{name}_{'_'.join(cols)}",
            *(table.c[c] for c in ("res_type", "code", *cols)),
            # LIKE 'prefix%' can use the index under any collation
            postgresql_ops={c: "text_pattern_ops" for c in cols if c in PATTERN_COLUMNS},
        )
    return table


idx_string = _index_table(
    "idx_string",
    Column("value_folded", Text),
    Column("value", Text),
    indexes=[("value_folded",)],
)
idx_token = _index_table(
    "idx_token",
    Column("system", Text),
    Column("value", Text),
    Column("text_folded", Text),
    indexes=[("value", "system")],
)
idx_date = _index_table(
    "idx_date",
    Column("low", String(32)),
    Column("high", String(32)),
    indexes=[("low", "high")],
)
idx_number = _index_table(
    "idx_number",
    Column("value", Float),
    Column("low", Float),
    Column("high", Float),
    indexes=[("value",)],
)
idx_quantity = _index_table(
    "idx_quantity",
    Column("system", Text),
    Column("unit", Text),
    Column("value", Float),
    Column("low", Float),
    Column("high", Float),
    indexes=[("unit", "value")],
)
idx_reference = _index_table(
    "idx_reference",
    Column("target_type", String(64)),
    Column("target_id", String(64)),
    Column("url", Text),
    indexes=[("target_id", "target_type")],
)
idx_uri = _index_table(
    "idx_uri",
    Column("value", Text),
    indexes=[("value",)],
)

INDEX_TABLES: dict[str, Table] = {
    "string": idx_string,
    "token": idx_token,
    "date": idx_date,
    "number": idx_number,
    "quantity": idx_quantity,
    "reference": idx_reference,
    "uri": idx_uri,
}

# Column names of each index table after (res_type, res_id), in IndexValues row order.
INDEX_COLUMNS: dict[str, tuple[str, ...]] = {
    kind: tuple(c.name for c in table.columns if c.name != "grp")[2:]
    for kind, table in INDEX_TABLES.items()
}

# Every column of each index table, in the order of the tuples the store inserts.
INDEX_ROW_COLUMNS: dict[str, tuple[str, ...]] = {
    kind: ("res_type", "res_id", *cols, "grp") for kind, cols in INDEX_COLUMNS.items()
}

# -- INSi reference base (https://esante.gouv.fr/produits-services/referentiel-ins) -----------
# The identities behind our INSi-compatible téléservice. A matricule is stored only as a keyed
# hash (HMAC-SHA256) and each record as an encrypted payload; the search traits are in clear,
# as in the index tables above.
insref_identity = Table(
    "insref_identity",
    metadata,
    Column("mat_hash", LargeBinary, primary_key=True),
    Column("oid", String(64), primary_key=True),
    Column("birth_name", Text, nullable=False),
    Column("birth_date", String(10), nullable=False),
    Column("sex", String(1), nullable=False),
    Column("digest", LargeBinary, nullable=False),  # keyed hash of the record: skips reloads
    Column("payload", LargeBinary, nullable=False),
    Index("ix_insref_identity_traits", "birth_name", "birth_date", "sex"),
)

# Previous matricules (INSHISTO): one row per (hash of the old matricule, identity).
insref_history = Table(
    "insref_history",
    metadata,
    Column("hist_hash", LargeBinary, primary_key=True),
    Column("mat_hash", LargeBinary, primary_key=True),
    Column("oid", String(64), primary_key=True),
    Index("ix_insref_history_identity", "mat_hash", "oid"),
)

# Every call to our INSi service, kept as evidence for later Patient writes.
insi_call = Table(
    "insi_call",
    metadata,
    Column("id", _bigint_pk, primary_key=True, autoincrement=True),
    Column("at", String(32), nullable=False),
    Column("operation", String(16), nullable=False),
    Column("client", Text, nullable=False),
    Column("cr", String(2), nullable=False),
    Column("mat_hash", LargeBinary, nullable=True),
    Column("payload", LargeBinary, nullable=False),
    Index("ix_insi_call_mat_at", "mat_hash", "at"),
)

# -- Import ledger (resources maintained by an external source, e.g. the Annuaire Santé) -----
# One row per resource an import wrote: the hash of the content it wrote, the last run whose
# extraction held it, and whether the resource was retired (made inactive) since the source
# dropped it. Re-imports compare hashes here without decrypting bodies; what an import did not
# see is found with one indexed query.
import_ledger = Table(
    "import_ledger",
    metadata,
    Column("source", String(32), primary_key=True),
    Column("res_type", String(64), primary_key=True),
    Column("res_id", String(64), primary_key=True),
    Column("content_hash", String(64), nullable=False),
    Column("run", Integer, nullable=False),
    Column("retired", Boolean, nullable=False, server_default=false()),
    Index("ix_import_ledger_source_run", "source", "run"),
)

# -- Terminology content (https://hl7.org/fhir/R4/terminology-service.html) -----------------
# Code systems the loaders fill (NOS, LOINC, SNOMED CT RF2), several versions of one URL side by
# side, with their concepts, designations and is-a edges; and the ValueSet/ConceptMap bodies
# they bring. Not patient data: stored in clear. Codes compare byte-wise on both databases
# (COLLATE "C" on PostgreSQL, SQLite's default BINARY), so code order is the same everywhere.
_code = Text().with_variant(Text(collation="C"), "postgresql")

term_system = Table(
    "term_system",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("url", Text, nullable=False),  # canonical URL (aliases resolved)
    Column("version", Text, nullable=False),  # '' when the source gives none
    Column("name", Text, nullable=True),
    Column("title", Text, nullable=True),
    Column("kind", String(16), nullable=False),  # fhir | nos | svs | loinc | snomed
    Column("content", String(16), nullable=False),  # CodeSystem.content of what is held
    Column("oid", Text, nullable=True),  # bare OID (no urn:oid:), when known
    Column("hierarchical", Boolean, nullable=False, server_default=false()),
    Column("concept_count", Integer, nullable=False, server_default="0"),
    Column("content_hash", String(64), nullable=False),  # of what was loaded: skips reloads
    Column("loaded_at", String(32), nullable=False),
    Column("header", Text, nullable=True),  # JSON: the CodeSystem without its concepts
    Index("ux_term_system_url_version", "url", "version", unique=True),
    Index("ix_term_system_oid", "oid"),
)

term_concept = Table(
    "term_concept",
    metadata,
    Column("system_id", Integer, primary_key=True, autoincrement=False),
    Column("code", _code, primary_key=True),
    Column("display", Text, nullable=True),
    # ' ' + the folded words of the display and designations, each once: a word-prefix filter
    # is LIKE '% word%' (https://hl7.org/fhir/R4/valueset-operation-expand.html, filter)
    Column("text_folded", Text, nullable=True),
    Column("inactive", Boolean, nullable=False, server_default=false()),
    Column("properties", Text, nullable=True),  # JSON [[code, value], …]
)

term_designation = Table(
    "term_designation",
    metadata,
    Column("system_id", Integer, nullable=False),
    Column("code", _code, nullable=False),
    Column("language", String(16), nullable=True),
    Column("use_system", Text, nullable=True),
    Column("use_code", Text, nullable=True),
    Column("value", Text, nullable=False),
    # preferred in its language (SNOMED CT language reference set): picks the display
    Column("preferred", Boolean, nullable=False, server_default=false()),
    Index("ix_term_designation_code", "system_id", "code"),
)

# Direct is-a edges: child is-a parent.
term_parent = Table(
    "term_parent",
    metadata,
    Column("system_id", Integer, primary_key=True, autoincrement=False),
    Column("child", _code, primary_key=True),
    Column("parent", _code, primary_key=True),
    Index("ix_term_parent_parent", "system_id", "parent", "child"),
)

# ValueSet and ConceptMap bodies (JSON), by canonical URL and version.
term_resource = Table(
    "term_resource",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("res_type", String(32), nullable=False),  # ValueSet | ConceptMap
    Column("url", Text, nullable=False),
    Column("version", Text, nullable=False),  # '' when the source gives none
    Column("name", Text, nullable=True),
    Column("title", Text, nullable=True),
    Column("oid", Text, nullable=True),  # bare OID (identifier urn:oid:…), when known
    Column("kind", String(16), nullable=False),
    Column("body", Text, nullable=False),
    Column("content_hash", String(64), nullable=False),
    Column("loaded_at", String(32), nullable=False),
    Index("ux_term_resource_url_version", "res_type", "url", "version", unique=True),
    Index("ix_term_resource_oid", "res_type", "oid"),
)
