"""Server settings: where data lives, who issues tokens, limits.

https://hl7.org/fhir/R4/http.html (service base URL)
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

import orjson

DEFAULT_DATA = "./maison-data"


@dataclass
class Settings:
    """Everything the composition root needs to build the server."""

    data: str = DEFAULT_DATA  # a folder (SQLite inside) or a database URL
    host: str = "127.0.0.1"
    port: int = 8080
    public_url: str | None = None  # base URL as clients see it
    state: str | None = None  # folder for keys and server.json when data is a URL
    issuer: str | None = None  # external OpenID issuer; None: the local development issuer
    audience: str | None = None  # expected token audience (default: the public URL)
    max_body_bytes: int = 16 * 1024 * 1024
    demo: bool = True  # load the synthetic demo dataset into an empty store
    demo_patients: int = 20
    sqlite_synchronous: str = "FULL"
    #: refuse to feed the DMP without its reference data (NOS value sets, PDSm guide); None:
    #: refuse unless the server runs with demo data (then feed, with a warning)
    dmp_strict: bool | None = None
    #: largest document a client may upload raw (POST Binary), streamed to the blob store
    max_document_bytes: int = 512 * 1024 * 1024
    workers: int = 1
    #: FINESS / SIRET / RASS of the structures whose professionals may use the centre de
    #: régulation (SAMU) mode, comma-separated
    regulation_centres: str = field(
        default_factory=lambda: os.environ.get("MAISON_REGULATION_CENTRES", "")
    )
    #: IDNPS of the platform's administrators (identity-vigilance, DPO, operators),
    #: comma-separated: they are granted the ``maison:admin`` scope when they sign in
    admins: str = field(default_factory=lambda: os.environ.get("MAISON_ADMINS", ""))
    #: how long a bris de glace opens a record, in minutes
    emergency_minutes: int = field(
        default_factory=lambda: int(os.environ.get("MAISON_EMERGENCY_MINUTES", "30") or 30)
    )
    #: how long a patient's consent for one consultation lasts, in hours
    consent_hours: int = field(
        default_factory=lambda: int(os.environ.get("MAISON_CONSENT_HOURS", "24") or 24)
    )

    @property
    def regulation_ids(self) -> frozenset[str]:
        """The structures declared as centres de régulation."""
        return frozenset(v.strip() for v in self.regulation_centres.split(",") if v.strip())

    @property
    def admin_ids(self) -> frozenset[str]:
        """The administrators' IDNPS."""
        return frozenset(v.strip() for v in self.admins.split(",") if v.strip())

    @property
    def is_url(self) -> bool:
        """True when ``data`` is a database URL rather than a folder."""
        return "://" in self.data

    @property
    def state_dir(self) -> Path:
        """The folder holding keys and ``server.json``."""
        if self.state:
            return Path(self.state).resolve()
        return Path(DEFAULT_DATA if self.is_url else self.data).resolve()

    @property
    def blob_dir(self) -> Path:
        """Where documents' encrypted content lives: ``DATA/blobs`` next to the SQLite
        database, ``STATE/blobs`` when ``data`` is a database URL (unless S3 is configured)."""
        root = self.state_dir if self.is_url else Path(self.data).resolve()
        return root / "blobs"

    @property
    def database_url(self) -> str:
        """The SQLAlchemy URL of the store."""
        if self.is_url:
            url = self.data
            if url.startswith("postgresql://") or url.startswith("postgres://"):
                url = "postgresql+psycopg://" + url.split("://", 1)[1]
            return url
        return f"sqlite:///{Path(self.data).resolve() / 'maison.db'}"

    @property
    def base_url(self) -> str:
        """The public base URL of the FHIR endpoint."""
        return (self.public_url or f"http://{self.host}:{self.port}").rstrip("/")

    @property
    def trust_client_cert_header(self) -> bool:
        """Whether the client certificate a TLS-terminating proxy forwards (``X-Client-Cert``)
        is trusted: ``MAISON_TRUST_CLIENT_CERT_HEADER=1``, only behind such a proxy
        (https://www.rfc-editor.org/rfc/rfc8705#section-3)."""
        return os.environ.get("MAISON_TRUST_CLIENT_CERT_HEADER") == "1"

    @property
    def issuer_url(self) -> str:
        """The token issuer the server trusts."""
        return self.issuer or f"{self.base_url}/auth"

    def to_env(self) -> str:
        """Serialise for worker processes."""
        return orjson.dumps(asdict(self)).decode()

    @classmethod
    def from_env(cls) -> Settings:
        """Read back what :meth:`to_env` wrote (``MAISON_SETTINGS``)."""
        raw = os.environ.get("MAISON_SETTINGS")
        return cls(**orjson.loads(raw)) if raw else cls()


def server_file(state_dir: Path) -> Path:
    """Where a running server records its public URL and issuer for ``maison token``."""
    return state_dir / "server.json"
