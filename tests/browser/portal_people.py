"""People of the portal's browser tests: a demo patient with documents and his account (the
one-time codes computed from its secret), created through the CLI as an operator would."""

from __future__ import annotations

import re
import subprocess
import time

import httpx
import pyotp

from servers import MAISON, Server

PASSWORD = "Correct-Horse-Battery-9"


class Account:
    """A demo patient with documents, his account, and fresh one-time codes."""

    def __init__(self, server: Server) -> None:
        headers = {"Authorization": f"Bearer {server.mint('system/*.*')}"}
        docs = httpx.get(
            f"{server.base_url}/DocumentReference",
            params={"status": "current", "_count": "1"},
            headers=headers,
        ).json()
        pid = docs["entry"][0]["resource"]["subject"]["reference"].split("/")[1]
        self.patient = pid
        patient = httpx.get(f"{server.base_url}/Patient/{pid}", headers=headers).json()
        self.ins = next(
            i["value"]
            for i in patient["identifier"]
            if i["system"].startswith("urn:oid:1.2.250.1.213.1.4.")
        )
        done = subprocess.run(
            [*MAISON, "patient", "account", "create", "--ins", self.ins, "--password-stdin",
             "--data", server.data, "--state", str(server.state)],
            input=PASSWORD + "\n", capture_output=True, text=True, check=True,
        )  # fmt: skip
        found = re.search(r"secret: (\S+)", done.stdout)
        assert found, done.stdout + done.stderr
        self.secret = found.group(1)
        self.last = 0

    def code(self) -> str:
        step = max(int(time.time() // 30), self.last + 1)
        while step > int(time.time() // 30) + 1:
            time.sleep(0.5)
        self.last = step
        return str(pyotp.TOTP(self.secret).at(step * 30))
