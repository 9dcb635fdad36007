"""The request body: read whole within MAX_BODY_BYTES however it is framed, and parsed as strict JSON.

Both rules exist because the libraries underneath are lenient where a hostile client is not:
- werkzeug limits a body without Content-Length (`Transfer-Encoding: chunked`, which gunicorn
  decodes and marks `wsgi.input_terminated`) by reading up to MAX_BODY_BYTES and stopping there,
  without asking whether more follows: a longer body came through cut, and was booked, and an
  Idempotency-Key fingerprinted the cut body. Here one byte past the limit is a 413.
- Python's json accepts NaN and Infinity, which are not JSON, turns `1e999` into infinity, keeps the
  last of duplicate keys (another parser in front of us may keep the first), and fails with a
  RecursionError or a ValueError, not a JSONDecodeError, on deep nesting or an integer of more than
  4300 digits: a 500 with a traceback. Here every one of them is a JSONDecodeError, which the parser
  answers 400 `invalid_request` ("Invalid JSON body.") like any other malformed body.
"""

from __future__ import annotations

import json
import math
from typing import Any

import flask
from flask.json.provider import DefaultJSONProvider
from werkzeug.exceptions import RequestEntityTooLarge
from werkzeug.utils import cached_property
from werkzeug.wsgi import LimitedStream, get_input_stream


class Request(flask.Request):
    """Flask's request, with a body limit that holds for a body of any framing."""

    @cached_property
    def stream(self):
        # werkzeug's own checks first: a Content-Length over the limit is a 413 before any read.
        stream = get_input_stream(self.environ, max_content_length=self.max_content_length)
        # Without Content-Length a body may be read to its end only where the server ends it (gunicorn,
        # which decodes chunks); elsewhere werkzeug reads it as empty, which is safe as it is.
        unframed = self.content_length is None and "wsgi.input_terminated" in self.environ
        if unframed and self.max_content_length is not None:
            return WholeBodyLimit(self.input_stream, self.max_content_length)
        return stream


class WholeBodyLimit(LimitedStream):
    """A body of at most `max_bytes`: a read that gets one byte more raises 413, whatever asked for it."""

    def __init__(self, stream, max_bytes: int) -> None:
        super().__init__(stream, max_bytes + 1, is_max=True)  # the byte after the limit tells it goes on
        self.max_bytes = max_bytes

    def readinto(self, buffer) -> int:
        size = super().readinto(buffer)
        if self.tell() > self.max_bytes:
            raise RequestEntityTooLarge()
        return size


def loads(body: bytes | str) -> Any:
    """The JSON value of `body`; anything that is not plain, finite, unambiguous JSON is a JSONDecodeError."""
    text = body.decode("utf-8") if isinstance(body, bytes) else body  # strict: bad UTF-8 is refused too
    try:
        return json.loads(
            text, object_pairs_hook=_object_without_duplicates, parse_constant=_not_json, parse_float=_finite_float
        )
    except json.JSONDecodeError:
        raise
    except (RecursionError, ValueError) as error:  # nested too deep, integer too long, or refused below
        raise json.JSONDecodeError(f"unacceptable JSON ({error})", text, 0) from None


def _object_without_duplicates(pairs: list[tuple[str, Any]]) -> dict:
    names = [name for name, _ in pairs]
    if len(set(names)) != len(names):
        raise ValueError("duplicate key in an object")
    return dict(pairs)


def _not_json(constant: str) -> float:
    raise ValueError(f"{constant} is not JSON")


def _finite_float(literal: str) -> float:
    value = float(literal)
    if not math.isfinite(value):
        raise ValueError("number out of range")
    return value


class StrictJSONProvider(DefaultJSONProvider):
    """Flask's JSON, reading as strictly as the parser does (`request.get_json` uses it)."""

    def loads(self, s: str | bytes, **kwargs: Any) -> Any:
        return loads(s)
