"""A request's body: read within the limits, and parsed as JSON.

A request whose body can't be read within the limits (a path or a body too long, a Content-Length
that is not a number, a malformed chunk) is refused before its body is read in full: RefusedUnread.
"""

import json
import math
import sys

from serving.fields import InputError

# Python refuses to read an integer of more digits than this (a guard against slow conversions).
MAX_INTEGER_DIGITS = 4300
MAX_PATH = 8192  # characters; a longer path gets 414


class RefusedUnread(InputError):
    """The request was refused before its body was read in full."""


def read_body(request, max_bytes):
    """A Flask request's body, read through Flask's own limit: never more than `max_bytes` of it
    is held, whatever the method, and with or without a Content-Length. A path over MAX_PATH
    characters, or a body over the limit, is refused unread."""
    if len(request.path) > MAX_PATH:
        raise RefusedUnread(f"the path is {len(request.path)} characters; the limit is {MAX_PATH}", status=414)
    declared = request.headers.get("Content-Length")
    if declared is not None:
        if not (declared.isascii() and declared.isdigit()):  # werkzeug would read it as 0
            raise RefusedUnread("Content-Length is not a number")
        if int(declared) > max_bytes:
            raise RefusedUnread(f"body is {declared} bytes; the limit is {max_bytes}", status=413)
    # A body without a Content-Length (chunked) is cut at max_content_length, so one byte over
    # the limit shows that there was more.
    request.max_content_length = max_bytes + 1
    try:
        data = request.get_data()
    except Exception:  # the server's own reader refused it: a malformed chunk, or an early end
        raise RefusedUnread("the body could not be read: malformed chunked encoding, or it ended early") from None
    if len(data) > max_bytes:
        raise RefusedUnread(f"body is over the limit of {max_bytes} bytes", status=413)
    return data


def refuse_constant(name):
    raise InputError(f"malformed JSON: {name} is not a JSON number")


def read_integer(text):
    # An integer too long for Python to read is far outside any field's range: read as an
    # infinity, it is refused by its field's own check, which names the field.
    if len(text.lstrip("-")) > MAX_INTEGER_DIGITS:
        return -math.inf if text.startswith("-") else math.inf
    return int(text)


# Python 3.11's JSON reader counts a body's nesting against the interpreter's recursion limit, some
# of which gunicorn, Flask and this function have used; 3.12 and later count it against a limit of
# their own. With this one, a body nested up to a thousand deep is read on every runtime (and then
# refused, if it must be, by the check that names its field); deeper is malformed JSON.
sys.setrecursionlimit(max(sys.getrecursionlimit(), 2000))


def parse_json(body):
    """The body (bytes, in any encoding JSON allows) as JSON; NaN and Infinity are refused."""
    if not body.strip():
        raise InputError("empty body; send a JSON object")
    try:
        return json.loads(body, parse_constant=refuse_constant, parse_int=read_integer)
    except RecursionError:
        raise InputError("malformed JSON: nested too deeply") from None
    except UnicodeDecodeError:
        raise InputError("malformed JSON: not valid UTF-8") from None
    except ValueError as err:
        raise InputError(f"malformed JSON: {err}") from None
