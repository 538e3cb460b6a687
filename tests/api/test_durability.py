"""Nothing acknowledged is ever lost: kill -9 during writes, concurrent updates."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from servers import Server, free_port


def test_kill_9_loses_nothing_acknowledged(data_url: str, tmp_path: Path) -> None:
    srv = Server(data_url, tmp_path, free_port(), extra_args=["--no-demo"]).start()
    acked: list[tuple[str, str]] = []
    lock = threading.Lock()
    stop = threading.Event()

    def writer(n: int) -> None:
        with srv.client() as c:
            i = 0
            while not stop.is_set():
                i += 1
                body = {"resourceType": "Basic", "code": {"text": f"w{n}-{i}"}}
                try:
                    r = c.post("/Basic", json=body)
                except httpx.HTTPError:
                    return  # the server died mid-request: not acknowledged
                if r.status_code == 201:
                    with lock:
                        acked.append((r.json()["id"], f"w{n}-{i}"))

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 30
    while len(acked) < 200 and time.monotonic() < deadline:
        time.sleep(0.05)
    srv.kill()  # SIGKILL while the writers are still sending
    stop.set()
    for t in threads:
        t.join()
    assert len(acked) >= 200
    srv.port = free_port()
    srv.token = ""  # the base URL (token audience) changes with the port
    srv.start()
    try:
        with srv.client() as c:
            for rid, text in acked:
                r = c.get(f"/Basic/{rid}")
                assert r.status_code == 200, f"acknowledged Basic/{rid} lost"
                assert r.json()["code"]["text"] == text
    finally:
        srv.stop()


def test_concurrent_updates_never_lose_a_write(http: httpx.Client, server: Any) -> None:
    rid = http.post("/Basic", json={"resourceType": "Basic", "code": {"text": "0"}}).json()["id"]

    def bump(_: int) -> int:
        with server.client() as c:
            while True:
                cur = c.get(f"/Basic/{rid}").json()
                n = int(cur["code"]["text"]) + 1
                r = c.put(
                    f"/Basic/{rid}",
                    json={**cur, "code": {"text": str(n)}},
                    headers={"If-Match": f'W/"{cur["meta"]["versionId"]}"'},
                )
                if r.status_code == 200:
                    return n
                assert r.status_code in (409, 412), r.text

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(bump, range(40)))
    assert sorted(results) == list(range(1, 41))  # every increment applied exactly once
    final = http.get(f"/Basic/{rid}").json()
    assert final["code"]["text"] == "40" and final["meta"]["versionId"] == "41"


def test_concurrent_blind_updates_all_get_a_version(http: httpx.Client, server: Any) -> None:
    rid = http.post("/Basic", json={"resourceType": "Basic", "code": {"text": "x"}}).json()["id"]

    def put(i: int) -> str:
        with server.client() as c:
            body = {"resourceType": "Basic", "id": rid, "code": {"text": f"v{i}"}}
            while True:
                r = c.put(f"/Basic/{rid}", json=body)
                if r.status_code == 200:
                    return str(r.json()["meta"]["versionId"])
                assert r.status_code in (409, 503), r.text

    with ThreadPoolExecutor(8) as pool:
        versions = list(pool.map(put, range(30)))
    assert len(set(versions)) == 30
    hist = http.get(f"/Basic/{rid}/_history", params={"_count": 100}).json()
    assert hist["total"] == 31


def test_lost_database_connections_recover(backend: str, data_url: str, tmp_path: Path) -> None:
    if backend != "postgresql":
        pytest.skip("connections to kill exist only on PostgreSQL")
    from sqlalchemy import create_engine, text

    srv = Server(data_url, tmp_path, free_port(), extra_args=["--no-demo"]).start()
    try:
        with srv.client() as http:
            body = {"resourceType": "Basic", "code": {"text": "x"}}
            rid = http.post("/Basic", json=body).json()["id"]
            for _ in range(20):  # open connections in every worker's pool
                assert http.get(f"/Basic/{rid}").status_code == 200
            engine = create_engine(data_url.replace("postgresql://", "postgresql+psycopg://"))
            with engine.connect() as conn:
                conn.execute(
                    text(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                        "WHERE datname = current_database() AND pid <> pg_backend_pid()"
                    )
                )
            engine.dispose()
            # reads retry on a fresh connection: never an error
            assert {http.get(f"/Basic/{rid}").status_code for _ in range(40)} == {200}
            # a write on a dead connection may answer 503 (retry), never 500, then works
            statuses = [http.post("/Basic", json=body).status_code for _ in range(10)]
            assert set(statuses) <= {201, 503}, statuses
            assert statuses[-1] == 201
    finally:
        srv.stop()
