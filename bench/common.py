"""Shared benchmark plumbing: start/stop a maison server, tokens, peak RSS, load, percentiles.

The benchmarks are scripts that print figures, not tests. The server is run as
``maison serve --host 127.0.0.1 --port P --data DIR|URL`` and a token is taken from the last line
printed by ``maison token --data DIR|URL --scope "system/*.*" --scope ins:assert-insi`` (the
synthetic patients declare their INSi interrogation).
https://hl7.org/fhir/R4/http.html
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import orjson

DEFAULT_PG = os.environ.get(
    "MAISON_BENCH_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)
FHIR_JSON = "application/fhir+json"


# --------------------------------------------------------------------------- options


def add_server_options(parser: argparse.ArgumentParser) -> None:
    """Options shared by every benchmark: which store, which server, extra server arguments."""
    group = parser.add_argument_group("server")
    group.add_argument(
        "--store",
        choices=("sqlite", "pg"),
        default=None,
        help="sqlite (default) or pg; --pg alone implies pg",
    )
    group.add_argument(
        "--pg",
        metavar="URL",
        default=None,
        help=f"PostgreSQL URL of a database to connect to for CREATE DATABASE (default {DEFAULT_PG}"
        " or $MAISON_BENCH_PG); a fresh database is created per run and dropped after",
    )
    group.add_argument(
        "--pg-db",
        metavar="NAME",
        default=None,
        help="use this PostgreSQL database (created if missing) and keep it",
    )
    group.add_argument(
        "--data",
        metavar="DIR",
        default=None,
        help="use this SQLite data folder and keep it (default: a fresh temporary folder)",
    )
    group.add_argument("--keep", action="store_true", help="keep the fresh store after the run")
    group.add_argument(
        "--server-args",
        default="",
        metavar="ARGS",
        help="extra arguments for `maison serve`, e.g. --server-args='--workers 2'",
    )
    group.add_argument(
        "--maison",
        default=None,
        metavar="CMD",
        help="command that runs maison (default: the `maison` next to this Python, else on PATH)",
    )
    group.add_argument(
        "--startup-timeout", type=float, default=90.0, help="seconds to wait for /metadata"
    )
    group.add_argument(
        "--url",
        default=None,
        help="benchmark an already running server at this base URL (no start/stop, no RSS)",
    )
    group.add_argument("--token", default=None, help="bearer token to use with --url")


def own_servers_only(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """For benches that install guides and write in bulk: no ``--url`` (they start their own
    servers), and those servers start without the demo data."""
    if args.url:
        parser.error("--url is not supported: the bench installs guides and writes in bulk")
    if "--no-demo" not in args.server_args:
        args.server_args = f"{args.server_args} --no-demo".strip()


def store_kind(args: argparse.Namespace) -> str:
    """``pg`` or ``sqlite`` from the options."""
    if args.store:
        return str(args.store)
    return "pg" if (args.pg or args.pg_db) else "sqlite"


def maison_command(args: argparse.Namespace) -> list[str]:
    """The argv prefix that runs the maison CLI."""
    if args.maison:
        return shlex.split(args.maison)
    beside = Path(sys.executable).parent / "maison"
    if beside.exists():
        return [str(beside)]
    found = shutil.which("maison")
    if found:
        return [found]
    sys.exit("cannot find the `maison` command: install the project or pass --maison")


# --------------------------------------------------------------------------- statistics


def percentile(values: Sequence[float], p: float) -> float:
    """The ``p``-th percentile (0..100) with linear interpolation between closest ranks."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = (len(ordered) - 1) * p / 100.0
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def latency_summary(seconds: Sequence[float]) -> dict[str, float]:
    """p50/p95/p99/max of latencies, in milliseconds."""
    ordered = sorted(seconds)
    return {
        "p50_ms": round(percentile(ordered, 50) * 1000, 2),
        "p95_ms": round(percentile(ordered, 95) * 1000, 2),
        "p99_ms": round(percentile(ordered, 99) * 1000, 2),
        "max_ms": round(ordered[-1] * 1000, 2) if ordered else float("nan"),
    }


# --------------------------------------------------------------------------- memory


def _children_map() -> dict[int, list[int]]:
    children: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue
        # pid (comm) state ppid ...: comm may contain spaces and parentheses
        fields = stat[stat.rfind(b")") + 2 :].split()
        children.setdefault(int(fields[1]), []).append(int(entry.name))
    return children


def process_tree(root: int) -> list[int]:
    """``root`` and all its descendants (e.g. uvicorn worker processes)."""
    children = _children_map()
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(children.get(pid, []))
    return out


def memory_kib(pid: int) -> tuple[int, int] | None:
    """(VmHWM, VmRSS) of a live process in KiB, from ``/proc/<pid>/status``."""
    hwm = rss = 0
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    hwm = int(line.split()[1])
                elif line.startswith("VmRSS:"):
                    rss = int(line.split()[1])
    except OSError:
        return None
    return hwm, rss


class RssSampler:
    """Polls the peak RSS (VmHWM) of a process tree, so workers that exit are still counted."""

    def __init__(self, root: int, interval: float = 1.0) -> None:
        self.root = root
        self.interval = interval
        self.peaks: dict[int, int] = {}  # pid -> VmHWM KiB
        self.current: dict[int, int] = {}  # pid -> last VmRSS KiB
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def sample(self) -> None:
        seen = {}
        for pid in process_tree(self.root):
            mem = memory_kib(pid)
            if mem:
                self.peaks[pid] = max(self.peaks.get(pid, 0), mem[0])
                seen[pid] = mem[1]
        self.current = seen

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.sample()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def report(self) -> dict[str, Any]:
        """Peak RSS in MiB: summed over the processes of the tree, and the largest one."""
        self.sample()
        total = sum(self.peaks.values())
        return {
            "peak_rss_mib": round(total / 1024, 1),
            "peak_rss_largest_mib": round(max(self.peaks.values(), default=0) / 1024, 1),
            "rss_now_mib": round(sum(self.current.values()) / 1024, 1),
            "processes": len(self.peaks),
        }


# --------------------------------------------------------------------------- stores


def timed_command(cmd: list[str], label: str) -> tuple[float, str, dict[str, Any]]:
    """Run one command in its own process: (seconds, its output, the peak RSS of its process
    tree sampled every 0.2 s); a failure stops the benchmark with the output's tail."""
    env = {**os.environ, "COLUMNS": "200"}
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env)
    sampler = RssSampler(proc.pid, interval=0.2)
    sampler.start()
    out, _ = proc.communicate()
    seconds = time.perf_counter() - t0
    sampler.stop()
    text = out.decode(errors="replace")
    if proc.returncode != 0:
        raise SystemExit(f"{label}: the command failed ({proc.returncode}):\n{text[-3000:]}")
    return seconds, text, sampler.report()


def _pg_url(url: str, database: str | None = None) -> str:
    """``url`` with the psycopg 3 driver (and another database name if given)."""
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    if database:
        parsed = parsed.set(database=database)
    return parsed.render_as_string(hide_password=False)


def pg_database(admin_url: str, name: str | None, keep: bool) -> tuple[str, Callable[[], None]]:
    """Create (or reuse) a PostgreSQL database; return its URL and a cleanup function.

    https://www.postgresql.org/docs/current/sql-createdatabase.html
    """
    from sqlalchemy import create_engine, text
    from sqlalchemy.pool import NullPool

    fresh = name is None
    db = name or f"maison_bench_{int(time.time())}_{os.getpid()}"
    if not db.replace("_", "").isalnum():
        sys.exit(f"unsafe database name {db!r}")
    engine = create_engine(_pg_url(admin_url), isolation_level="AUTOCOMMIT", poolclass=NullPool)
    with engine.connect() as conn:
        exists = conn.execute(text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": db})
        if exists.first() is None:
            conn.execute(text(f'CREATE DATABASE "{db}"'))

    def cleanup() -> None:
        if fresh and not keep:
            with engine.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)'))
        elif fresh:
            print(f"kept PostgreSQL database {db}", file=sys.stderr)
        engine.dispose()

    return _pg_url(admin_url, db), cleanup


# --------------------------------------------------------------------------- server


@dataclass
class Server:
    """A running maison server (ours or an external one) and how to talk to it."""

    base_url: str
    token: str | None
    data: str
    proc: subprocess.Popen[bytes] | None = None
    log_path: Path | None = None
    sampler: RssSampler | None = None
    extra_headers: dict[str, str] = field(default_factory=dict)

    def headers(self) -> dict[str, str]:
        """Headers for FHIR JSON requests with the bearer token."""
        out = {"Accept": FHIR_JSON, "Content-Type": FHIR_JSON}
        if self.token:
            out["Authorization"] = f"Bearer {self.token}"
        return {**out, **self.extra_headers}

    def client(self, timeout: float = 120.0) -> httpx.Client:
        """One keep-alive HTTP/1.1 connection (one per load thread)."""
        return httpx.Client(
            base_url=self.base_url,
            headers=self.headers(),
            timeout=timeout,
            limits=httpx.Limits(max_connections=1, max_keepalive_connections=1),
        )

    def memory(self) -> dict[str, Any]:
        """Peak RSS of the server process tree (empty for an external server)."""
        return self.sampler.report() if self.sampler else {}


def free_port() -> int:
    """A TCP port that is free on 127.0.0.1 right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _log_tail(path: Path | None, lines: int = 30) -> str:
    if path is None or not path.exists():
        return ""
    text = path.read_text(errors="replace").splitlines()
    return "\n".join(text[-lines:])


def wait_ready(base_url: str, proc: subprocess.Popen[bytes] | None, timeout: float) -> None:
    """Poll ``GET /metadata`` (no token needed) until it answers 200."""
    deadline = time.monotonic() + timeout
    last = "no answer"
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"server exited with code {proc.returncode} before being ready")
        try:
            r = httpx.get(f"{base_url}/metadata", headers={"Accept": FHIR_JSON}, timeout=5)
            if r.status_code == 200 and r.json().get("resourceType") == "CapabilityStatement":
                return
            last = f"HTTP {r.status_code}: {r.text[:200]}"
        except (httpx.HTTPError, ValueError) as exc:
            last = repr(exc)
        time.sleep(0.2)
    raise RuntimeError(f"server not ready after {timeout:.0f}s ({last})")


def get_token(maison: list[str], data: str, cwd: Path) -> str:
    """The bearer token printed on the last line of ``maison token``."""
    done = subprocess.run(
        [*maison, "token", "--data", data, "--scope", "system/*.*", "--scope", "ins:assert-insi"],
        cwd=cwd,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"`maison token` failed ({done.returncode}): {done.stderr[-2000:]}")
    lines = [line.strip() for line in done.stdout.splitlines() if line.strip()]
    if not lines:
        raise RuntimeError("`maison token` printed nothing")
    return lines[-1]


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is not None:
        return
    # the server was started in its own session: its process group id is its pid
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


@contextlib.contextmanager
def running_server(args: argparse.Namespace, label: str = "") -> Iterator[Server]:
    """Start ``maison serve`` on a free port over a fresh (or given) store; stop it afterwards."""
    if args.url:
        base = args.url.rstrip("/")
        wait_ready(base, None, args.startup_timeout)
        yield Server(base_url=base, token=args.token, data="(external)")
        return

    maison = maison_command(args)
    if store_kind(args) == "pg" and args.pg_db:
        # a kept database needs its data key again: keep the state folder with it
        workdir = Path(tempfile.gettempdir()) / f"maison-bench-state-{args.pg_db}"
        workdir.mkdir(exist_ok=True)
    else:
        workdir = Path(tempfile.mkdtemp(prefix="maison-bench-"))
    cleanups: list[Callable[[], None]] = []
    if store_kind(args) == "pg":
        data, drop = pg_database(args.pg or DEFAULT_PG, args.pg_db, args.keep)
        cleanups.append(drop)
    elif args.data:
        data = str(Path(args.data).resolve())
    else:
        data = str(workdir / "data")
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    cmd = [*maison, "serve", "--host", "127.0.0.1", "--port", str(port), "--data", data]
    cmd += shlex.split(args.server_args)
    log_path = workdir / "server.log"
    print(f"[{label or 'bench'}] starting: {shlex.join(cmd)}", file=sys.stderr)
    with open(log_path, "wb") as log:
        # cwd=workdir: server state (keys) for a database URL lands there, shared with `token`
        proc = subprocess.Popen(
            cmd, cwd=workdir, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    server = Server(base_url=base, token=None, data=data, proc=proc, log_path=log_path)
    failed = False
    try:
        wait_ready(base, proc, args.startup_timeout)
        server.token = get_token(maison, data, workdir)
        server.sampler = RssSampler(proc.pid)
        server.sampler.start()
        yield server
    except BaseException:
        failed = True
        raise
    finally:
        if server.sampler:
            server.sampler.stop()
        _stop(proc)
        if failed:
            print(f"--- server log tail ({log_path}) ---\n{_log_tail(log_path)}", file=sys.stderr)
        for cleanup in cleanups:
            cleanup()
        if args.keep or failed or (store_kind(args) == "pg" and args.pg_db):
            print(f"kept {workdir}", file=sys.stderr)
        else:
            shutil.rmtree(workdir, ignore_errors=True)


# --------------------------------------------------------------------------- load


@dataclass
class LoadResult:
    """Latencies and outcome of one load phase."""

    elapsed: float
    latencies: list[float]
    ok: int
    errors: int
    units: int  # resources (or requests) the successful calls stood for
    first_errors: list[str]
    answers: list[Any] = field(default_factory=list)


Check = Callable[[httpx.Response, int], tuple[bool, int, Any]]


def run_load(
    server: Server,
    requests: Sequence[tuple[str, str, bytes | None, int]],
    clients: int,
    check: Check,
    keep_answers: bool = False,
) -> LoadResult:
    """Send pre-serialised ``(method, path, body, weight)`` requests over ``clients`` threads.

    Each thread holds one keep-alive connection, warmed up before the clock starts; requests are
    taken in order from a shared cursor. ``check(response, weight)`` says whether the call
    succeeded, how many units it stood for, and what to keep from it.
    """
    lock = threading.Lock()
    cursor = iter(range(len(requests)))
    barrier = threading.Barrier(clients + 1)
    latencies: list[list[float]] = [[] for _ in range(clients)]
    stats = {"ok": 0, "errors": 0, "units": 0}
    first_errors: list[str] = []
    answers: list[Any] = []

    def worker(slot: int) -> None:
        mine = latencies[slot]
        with server.client() as client:
            client.get("/metadata")  # open the connection before timing
            barrier.wait()
            while True:
                with lock:
                    i = next(cursor, None)
                if i is None:
                    return
                method, path, body, weight = requests[i]
                t0 = time.perf_counter()
                try:
                    response = client.request(method, path, content=body)
                    good, units, keep = check(response, weight)
                    detail = f"HTTP {response.status_code}: {response.text[:300]}"
                except httpx.HTTPError as exc:
                    good, units, keep, detail = False, 0, None, repr(exc)
                mine.append(time.perf_counter() - t0)
                with lock:
                    if good:
                        stats["ok"] += 1
                        stats["units"] += units
                        if keep_answers and keep is not None:
                            answers.append(keep)
                    else:
                        stats["errors"] += 1
                        if len(first_errors) < 5:
                            first_errors.append(f"{method} {path}: {detail}")

    threads = [threading.Thread(target=worker, args=(n,), daemon=True) for n in range(clients)]
    for t in threads:
        t.start()
    barrier.wait()
    t0 = time.perf_counter()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - t0
    return LoadResult(
        elapsed=elapsed,
        latencies=[x for per in latencies for x in per],
        ok=stats["ok"],
        errors=stats["errors"],
        units=stats["units"],
        first_errors=first_errors,
        answers=answers,
    )


def check_created(response: httpx.Response, weight: int) -> tuple[bool, int, Any]:
    """A create answers 201 Created with a Location: https://hl7.org/fhir/R4/http.html#create."""
    good = response.status_code == 201
    return good, weight if good else 0, response.headers.get("location")


def check_transaction(response: httpx.Response, weight: int) -> tuple[bool, int, Any]:
    """A transaction answers 200 with a transaction-response Bundle, one entry per request.

    https://hl7.org/fhir/R4/http.html#transaction-response
    """
    if response.status_code != 200:
        return False, 0, None
    try:
        bundle = orjson.loads(response.content)
    except orjson.JSONDecodeError:
        return False, 0, None
    entries = bundle.get("entry", [])
    if bundle.get("type") != "transaction-response" or len(entries) != weight:
        return False, 0, None
    statuses = [e.get("response", {}).get("status", "") for e in entries]
    if not all(s.startswith(("200", "201")) for s in statuses):
        return False, 0, None
    locations = [e.get("response", {}).get("location") for e in entries]
    return True, weight, locations


def reference_of(location: str) -> str | None:
    """``Type/id`` from a Location such as ``http://h/Patient/12/_history/1`` or ``Patient/12``."""
    parts = [p for p in location.split("?")[0].split("/") if p]
    if "_history" in parts:
        parts = parts[: parts.index("_history")]
    if len(parts) < 2:
        return None
    return f"{parts[-2]}/{parts[-1]}"


# --------------------------------------------------------------------------- output


def print_rows(title: str, rows: list[dict[str, Any]], json_path: str | None) -> None:
    """Print result rows as a table (and append them as JSON lines to ``json_path``)."""
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    # one column per run, one line per figure: stays readable in a narrow terminal
    table = Table(title=escape(title))
    table.add_column("")
    for n in range(len(rows)):
        table.add_column(f"run {n + 1}", justify="right")
    keys: list[str] = []
    for row in rows:
        keys += [k for k in row if k not in keys]
    for key in keys:
        table.add_row(key, *(str(row.get(key, "")) for row in rows))
    Console().print(table)
    if json_path:
        with open(json_path, "ab") as f:
            for row in rows:
                f.write(orjson.dumps({"benchmark": title, "at": time.time(), **row}) + b"\n")


def parts(text: str, known: set[str]) -> set[str]:
    """A ``--parts a,b`` value: the names given, each one of ``known``."""
    given = {p.strip() for p in text.split(",") if p.strip()}
    unknown = given - known
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown part(s): {', '.join(sorted(unknown))}")
    return given
