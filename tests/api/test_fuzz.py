"""Random JSON thrown at the write endpoints: only 4xx, never 500, nothing written."""

from __future__ import annotations

from typing import Any

import httpx
import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.floats(allow_nan=False)
    | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=20,
)
field_names = st.sampled_from(
    [
        "id",
        "meta",
        "name",
        "identifier",
        "gender",
        "birthDate",
        "status",
        "subject",
        "code",
        "entry",
        "type",
        "request",
        "resource",
        "contained",
        "extension",
        "text",
        "valueQuantity",
    ]
)
resource_like = st.fixed_dictionaries(
    {"resourceType": st.sampled_from(["Patient", "Observation", "Bundle", "Basic", "Nope", ""])},
    optional={"a": json_values},
).flatmap(
    lambda base: st.dictionaries(field_names, json_values, max_size=5).map(
        lambda extra: {**extra, **base}
    )
)
bodies = st.one_of(json_values, resource_like)
targets = st.sampled_from(
    [
        ("POST", "/Patient"),
        ("POST", "/Observation"),
        ("PUT", "/Patient/fuzz-1"),
        ("POST", "/"),
        ("POST", "/Patient/$validate"),
        ("PATCH", "/Patient/fuzz-1"),
    ]
)


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(target=targets, body=bodies)
def test_random_json_never_500_nor_partial_write(
    server: Any, target: tuple[str, str], body: Any
) -> None:
    method, path = target
    with server.client() as c:
        before = c.get("/_history", params={"_count": 1}).json()["total"]
        ctype = "application/json-patch+json" if method == "PATCH" else "application/fhir+json"
        r = c.request(method, path, content=orjson.dumps(body), headers={"Content-Type": ctype})
        assert r.status_code < 500, r.text
        if r.status_code >= 400:
            assert r.json()["resourceType"] == "OperationOutcome"
            after = c.get("/_history", params={"_count": 1}).json()["total"]
            assert after == before


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(raw=st.binary(max_size=200))
def test_random_bytes_are_400(server: Any, raw: bytes) -> None:
    with server.client() as c:
        r = c.post("/Patient", content=raw, headers={"Content-Type": "application/fhir+json"})
        assert 400 <= r.status_code < 500


@settings(max_examples=80, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    path=st.text(alphabet=st.characters(codec="utf-8"), max_size=40),
    query=st.text(max_size=40),
)
def test_random_urls_never_500(server: Any, path: str, query: str) -> None:
    with server.client() as c:
        try:
            r = c.get("/" + path, params={"q": query})
        except (httpx.InvalidURL, httpx.UnsupportedProtocol):
            return
        assert r.status_code < 500, (path, r.text)
