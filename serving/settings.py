"""The function's settings, read from environment variables when an instance starts. Each is
checked: a wrong one stops the instance with one line naming it, rather than serving with a
limit or an origin nobody meant."""

import re
from typing import NamedTuple

ORIGIN = re.compile(r"https?://[^\s/?#]+")


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


def origins(text):
    listed = [origin.strip() for origin in text.split(",") if origin.strip()]
    if not listed:
        raise ValueError("lists no origin; give * or scheme://host[:port], comma separated")
    for origin in listed:
        if origin != "*" and not ORIGIN.fullmatch(origin):
            raise ValueError(f"{origin!r} is not an origin (scheme://host[:port], with no path) or *")
    return listed


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
        max_body_bytes=setting("MAX_BODY_BYTES", whole_number, 1024 * 1024),
        max_instances=setting("MAX_INSTANCES", whole_number, 10_000),
        allowed_origins=setting("ALLOWED_ORIGINS", origins, ["*"]),
        model_sha256=setting("MODEL_SHA256", sha256, None),
    )
