"""Start real maison servers (subprocesses) on free ports for black-box tests."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

MAISON = [sys.executable, "-m", "maison.cli.main"]


def free_port() -> int:
    """A free TCP port on the loopback interface."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def fresh_pg_database(admin_url: str) -> str:
    """Create an empty database on the test cluster and return its URL."""
    from sqlalchemy import create_engine, text

    name = f"maison_{uuid.uuid4().hex[:12]}"
    engine = create_engine(
        admin_url.replace("postgresql://", "postgresql+psycopg://"), isolation_level="AUTOCOMMIT"
    )
    with engine.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    engine.dispose()
    return admin_url.rsplit("/", 1)[0] + "/" + name


def backend_data(backend: str, tmp: Path) -> str:
    """The --data value for a backend: a folder for SQLite, a fresh database URL for PG."""
    if backend == "sqlite":
        return str(tmp / "data")
    admin = os.environ.get("MAISON_TEST_PG_URL")
    if not admin:
        raise RuntimeError("MAISON_TEST_PG_URL is not set")
    return fresh_pg_database(admin)


@dataclass
class Server:
    """A running server and a token to talk to it."""

    data: str
    state: Path
    port: int
    proc: subprocess.Popen[bytes] | None = None
    token: str = ""
    extra_args: list[str] = field(default_factory=list)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 60.0) -> Server:
        self.log = self.state / f"server-{self.port}.log"
        with self.log.open("ab") as log:
            self.proc = self._spawn(log)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited: {self.log.read_text()[-2000:]}")
            try:
                if httpx.get(f"{self.base_url}/metadata", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        else:
            raise RuntimeError("server did not start in time")
        if not self.token:
            self.token = self.mint()
        return self

    def _spawn(self, log: Any) -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            [
                *MAISON,
                "serve",
                "--data",
                self.data,
                "--state",
                str(self.state),
                "--port",
                str(self.port),
                *self.extra_args,
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: the workers go with it
        )

    def mint(self, *scopes: str, patient: str | None = None, subject: str | None = None) -> str:
        """A token from `maison token` (its last output line)."""
        args = [*MAISON, "token", "--data", self.data, "--state", str(self.state)]
        if subject:
            args += ["--subject", subject]
        for s in scopes or ("system/*.*",):
            args += ["--scope", s]
        if patient:
            args += ["--patient", patient]
        out = subprocess.run(args, capture_output=True, text=True, check=True).stdout
        return out.strip().splitlines()[-1]

    def mint_professional(
        self,
        idnps: str = "810000000009",
        profession: str = "10",
        *scopes: str,
        structure: dict[str, str] | None = None,
        savoir_faire: tuple[str, str] | None = None,
        name: str | None = None,
    ) -> str:
        """A platform token carrying a professional context (as the token exchange or the SMART
        server builds it), signed in process by the server's local issuer."""
        import orjson

        from maison.security.issuer import LocalIssuer

        info = orjson.loads((self.state / "server.json").read_bytes())
        issuer = LocalIssuer.load_or_create(self.state / "keys", info["issuer"])
        body: dict[str, Any] = {
            "idnps": idnps,
            "activity": 0,
            "structure": structure if structure is not None else {"finess": "750000001"},
            "profession": profession,
        }
        if savoir_faire:
            body["savoir_faire_type"], body["savoir_faire"] = savoir_faire
        claims: dict[str, Any] = {
            "SubjectNameID": idnps,
            "fhirUser": f"Practitioner/{idnps}",
            "acr": "eidas1",
            "professional": body,
        }
        if name:
            claims["name"] = name
        return issuer.mint(idnps, list(scopes or ("user/*.cruds",)), info["audience"], 3600, claims)

    def client(self, token: str | None = None) -> httpx.Client:
        """An HTTP client with the bearer token."""
        return httpx.Client(
            base_url=self.base_url,
            headers={"Authorization": f"Bearer {token or self.token}"},
            timeout=60,
        )

    def kill(self) -> None:
        """SIGKILL the server and all its workers at once (durability tests)."""
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()


_LAUNCHER = '''"""Serve maison through uvicorn: a chosen worker count and application log level."""
import logging
import os
import sys

import uvicorn

from maison.api.settings import Settings


def app():
    from maison.api.http import build_app
    from maison.api.services import build_services

    level = os.environ.get("MAISON_TEST_LOG_LEVEL", "warning").upper()
    logging.basicConfig(level=getattr(logging, level), stream=sys.stderr)
    services = build_services(Settings.from_env())
    services.refresh()
    return build_app(services)


if __name__ == "__main__":
    from maison.api.app import prepare

    data, state, port, workers = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    settings = Settings(data=data, state=state, port=port, demo=False, workers=workers)
    prepare(settings).store.close()
    os.environ["MAISON_SETTINGS"] = settings.to_env()
    uvicorn.run(
        "maison_test_launcher:app", factory=True, host="127.0.0.1", port=port,
        workers=workers, log_level=os.environ.get("MAISON_TEST_LOG_LEVEL", "warning"),
        access_log=False,
    )
'''


@dataclass
class LaunchedServer(Server):
    """A server without demo data started through uvicorn directly, with its own environment
    (clients, trusted headers…), worker count and application log level (``info`` lets a test
    read what the application logs)."""

    env: dict[str, str] = field(default_factory=dict)
    workers: int = 1
    log_level: str = "warning"

    def _spawn(self, log: Any) -> subprocess.Popen[bytes]:
        launcher = self.state / "maison_test_launcher.py"
        self.state.mkdir(parents=True, exist_ok=True)
        launcher.write_text(_LAUNCHER)
        env = {**os.environ, **self.env, "MAISON_TEST_LOG_LEVEL": self.log_level}
        env["PYTHONPATH"] = os.pathsep.join([str(self.state), env.get("PYTHONPATH", "")])
        return subprocess.Popen(
            [sys.executable, str(launcher), self.data, str(self.state), str(self.port),
             str(self.workers)],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True, env=env,
        )  # fmt: skip


def import_annuaire(srv: Server, path: Path) -> None:
    """`maison annuaire import` of an extraction into the server's store."""
    out = subprocess.run(
        [*MAISON, "annuaire", "import", str(path), "--data", srv.data, "--state", str(srv.state)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]


def maison_cli(srv: Server, *args: str) -> str:
    """Run a ``maison`` command on a server's data and state; its stdout (asserts success)."""
    out = subprocess.run(
        [*MAISON, *args, "--data", srv.data, "--state", str(srv.state)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stdout


def guide_server(backend: str, tmp: Path, *guides: Path) -> Server:
    """A server without demo data with these compiled guides installed (in this order)."""
    srv = Server(backend_data(backend, tmp), tmp, free_port(), extra_args=["--no-demo"]).start()
    for guide in guides:
        maison_cli(srv, "ig", "install", str(guide))
    time.sleep(1.5)  # every worker reloads the installed definitions within a second
    return srv
