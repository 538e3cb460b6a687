"""Authentication (bearer JWTs) and authorization (SMART scopes).

https://hl7.org/fhir/smart-app-launch/
"""

from maison.security.authenticator import Authenticator
from maison.security.issuer import LocalIssuer
from maison.security.jwks import KeySource, RemoteJwks, StaticJwks
from maison.security.principal import Principal, Scope, parse_scopes
from maison.security.scopes import authorize
from maison.security.tokens import JwtAuthenticator

__all__ = [
    "Authenticator",
    "JwtAuthenticator",
    "KeySource",
    "LocalIssuer",
    "Principal",
    "RemoteJwks",
    "Scope",
    "StaticJwks",
    "authorize",
    "parse_scopes",
]
