"""Drive the portal as a browser would (forms, redirects, cookies) over httpx: the sign-in of
a patient (INS, password, one-time code) and of a professional (Pro Santé Connect's test page),
shared by the in-process tests."""

from __future__ import annotations

from typing import Any
from urllib.parse import urljoin, urlsplit

import httpx
from lxml import html as lxml_html


def forms(page: str) -> list[Any]:
    """The forms of a page."""
    return list(lxml_html.fromstring(page).forms)


def fields(form: Any) -> dict[str, str]:
    """The values a form would send (hidden fields included), buttons left out."""
    out: dict[str, str] = {}
    for el in form.inputs:
        name = el.get("name")
        if not name or el.tag == "button":
            continue
        kind = (el.get("type") or "text").lower()
        if kind in ("submit", "button", "checkbox", "radio") and not el.get("checked"):
            continue
        out[name] = el.get("value") or ""
    return out


def form_with(page: str, action_part: str, button: tuple[str, str] | None = None) -> Any:
    """The form whose action contains ``action_part`` (and, if given, a button name=value)."""
    for form in forms(page):
        if action_part not in (form.get("action") or ""):
            continue
        if button is None:
            return form
        for b in form.xpath(".//button"):
            if b.get("name") == button[0] and b.get("value") == button[1]:
                return form
    raise AssertionError(f"no form {action_part} {button} in page:\n{page[:2000]}")


async def follow(client: httpx.AsyncClient, response: httpx.Response) -> httpx.Response:
    """Follow redirects (303/302/307) the way a browser does, staying on the test host."""
    for _ in range(12):
        if response.status_code not in (301, 302, 303, 307, 308):
            return response
        location = urljoin(str(response.url), response.headers["location"])
        parts = urlsplit(location)
        path = parts.path + (f"?{parts.query}" if parts.query else "")
        response = await client.get(path)
    raise AssertionError("too many redirects")


async def submit(
    client: httpx.AsyncClient,
    page: httpx.Response,
    action_part: str,
    values: dict[str, str] | None = None,
    button: tuple[str, str] | None = None,
) -> httpx.Response:
    """Fill and post a form of a page, then follow the redirects."""
    form = form_with(page.text, action_part, button)
    data = fields(form)
    if button is not None:
        data[button[0]] = button[1]
    data.update(values or {})
    action = urljoin(str(page.url), form.get("action") or "")
    parts = urlsplit(action)
    method = (form.get("method") or "get").lower()
    if method == "post":
        response = await client.post(parts.path, data=data)
    else:
        response = await client.get(parts.path, params=data)
    return await follow(client, response)


async def patient_sign_in(
    client: httpx.AsyncClient, ins: str, password: str, code: str
) -> httpx.Response:
    """Espace patient → the authorization server's pages → back in the portal."""
    page = await follow(client, await client.get("/portal/connexion/patient"))
    page = await submit(client, page, "/auth/authorize/choose", button=("who", "patient"))
    return await submit(
        client,
        page,
        "/auth/authorize/patient",
        {"ins": ins, "password": password, "totp": code},
    )


async def pro_sign_in(
    client: httpx.AsyncClient, national_id: str, password: str = "maison-test"
) -> httpx.Response:
    """Espace professionnel → Pro Santé Connect's test page → (activity) → the portal."""
    page = await follow(client, await client.get("/portal/connexion/professionnel"))
    page = await submit(client, page, "/auth/authorize/choose", button=("who", "professional"))
    form = forms(page.text)[0]
    values = fields(form)
    for name in values:
        if name.lower() in ("login", "username", "identifier", "id", "rpps", "idnps"):
            values[name] = national_id
        if "password" in name.lower():
            values[name] = password
    values["action"] = "password"
    action = urljoin(str(page.url), form.get("action") or "")
    response = await client.post(urlsplit(action).path, data=values)
    page = await follow(client, response)
    if "/auth/authorize/activity" in page.text:
        form = form_with(page.text, "/auth/authorize/activity")
        first = form.xpath(".//button")[0]
        page = await submit(
            client, page, "/auth/authorize/activity", button=(first.get("name"), first.get("value"))
        )
    return page
