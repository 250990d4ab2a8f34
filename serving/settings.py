"""The function's settings, read from environment variables when an instance starts. Each is
checked: a wrong one stops the instance with one line naming it, rather than serving with a
limit or an origin nobody meant."""

import ipaddress
import re
from typing import NamedTuple

# Cloud Run functions take no request over 32 MiB, so a larger limit could never be reached; and a
# batch can hold no more rows than such a body spells, each at least "[0]," (4 bytes).
MAX_BODY_LIMIT = 32 * 1024 * 1024
MAX_INSTANCES_LIMIT = MAX_BODY_LIMIT // len("[0],")
DEFAULT_PORTS = {"http": "80", "https": "443"}
DNS_LABEL = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")


class SettingError(Exception):
    """A setting is wrong; the message names it and says why."""


class Settings(NamedTuple):
    max_body_bytes: int  # bodies over this get 413
    max_instances: int  # batches and BigQuery calls over this get 413
    allowed_origins: list  # web origins whose pages may read the answers; ["*"] for any
    model_sha256: str | None  # the SHA-256 model.pkl must have, as well as model.json's


def whole_number(text):
    if not (text.isascii() and text.isdigit()) or int(text) < 1:
        raise ValueError(f"{text!r} is not a whole number of 1 or more")
    return int(text)


def at_most(limit, why):
    """A parser of a whole number of 1 to `limit`; `why` follows the limit in a refusal, saying where it comes from."""

    def parse(text):
        # Its digits are counted before it is read: Python refuses to read an integer of more than 4,300.
        too_long = text.isascii() and text.isdigit() and len(text.lstrip("0")) > len(str(limit))
        if too_long or whole_number(text) > limit:
            shown = repr(text) if len(text) <= 40 else f"a number of {len(text)} digits"
            raise ValueError(f"{shown} is more than {limit} {why}")
        return int(text)

    return parse


def origins(text):
    listed = [origin.strip() for origin in text.split(",") if origin.strip()]
    if not listed:
        raise ValueError("lists no origin; give * or scheme://host[:port], comma separated")
    if "*" in listed and len(listed) > 1:
        raise ValueError("* allows every origin, so it stands alone; give * or a list of origins")
    for origin in listed:
        problem = origin_problem(origin) if origin != "*" else None
        if problem:
            raise ValueError(f"{origin!r} is not an origin a browser sends: {problem}")
    return listed


def origin_problem(origin):
    """Why `origin` is not one a browser sends in its Origin header, as it writes it (scheme, host
    and port, in lower case, without the scheme's default port), or None. CORS compares the two
    as text: any other spelling would never match, and its pages would be refused for no reason
    anyone could see."""
    if not origin.isascii() or not origin.isprintable() or " " in origin:
        return "it holds a space, a control character or a letter beyond ASCII (a browser sends a host in punycode)"
    scheme, separator, authority = origin.partition("://")
    if not separator:
        return "it is not scheme://host[:port]"
    if origin != origin.lower():
        return f"a browser writes it in lower case: {origin.lower()}"
    if scheme not in DEFAULT_PORTS:
        return "its scheme must be http or https"
    if any(mark in authority for mark in "/?#@"):
        return "it has a path, a query, a fragment or a user; an origin is scheme://host[:port] alone"
    if authority.startswith("[") and "]" not in authority:
        return "its host opens a [ that no ] closes"
    host, port = authority, None
    if ":" in authority.rpartition("]")[2]:  # a port: a colon past an IPv6 address's own
        host, _, port = authority.rpartition(":")
    if port is not None and not (port.isdigit() and port[0] != "0" and int(port) <= 65535):
        return "its port must be a whole number from 1 to 65535"
    if port == DEFAULT_PORTS[scheme]:
        return f"{port} is {scheme}'s default port, which a browser leaves out: write {scheme}://{host}"
    return host_problem(host)


def host_problem(host):
    """Why `host` is not a host as a browser writes it in an origin: a DNS name, an IPv4 address or
    an IPv6 address in brackets; or None."""
    if host.startswith("["):
        try:
            address = ipaddress.IPv6Address(host.removeprefix("[").removesuffix("]"))
        except ValueError:
            return f"its host {host} is not an IPv6 address"
        if address.scope_id:
            return "a browser sends no IPv6 zone (%...) in an origin"
        if host != f"[{address.compressed}]":
            return f"a browser writes this address as [{address.compressed}]"
        return None
    labels = host.split(".")
    if labels[-1].isdigit():  # a name ending in a number is read as an IPv4 address
        try:
            ipaddress.IPv4Address(host)
        except ValueError:
            return f"its host {host} is not an IPv4 address"
        return None
    if len(host) > 253 or not all(DNS_LABEL.fullmatch(label) for label in labels):
        return (f"its host {host!r} is not a DNS name: labels of letters, digits and hyphens (not first or last), "
                "1 to 63 characters, between single dots")
    return None


def sha256(text):
    if not re.fullmatch(r"[0-9a-fA-F]{64}", text):
        raise ValueError(f"{text!r} is not a SHA-256 (64 hex digits)")
    return text.lower()


def read_settings(environ):
    def setting(name, parse, default):
        if name not in environ:
            return default
        try:
            return parse(environ[name].strip())
        except ValueError as err:
            raise SettingError(f"{name}: {err}") from None

    return Settings(
        max_body_bytes=setting("MAX_BODY_BYTES", at_most(MAX_BODY_LIMIT, "(32 MiB), the most Cloud Run functions take in a request"),
                               1024 * 1024),
        max_instances=setting("MAX_INSTANCES", at_most(MAX_INSTANCES_LIMIT, "rows, the most a request of 32 MiB can hold"), 10_000),
        allowed_origins=setting("ALLOWED_ORIGINS", origins, ["*"]),
        model_sha256=setting("MODEL_SHA256", sha256, None),
    )
