"""The one JSON decoding path for request bodies.

Every JSON body goes through :func:`decode`, which turns what is wrong with it into a
400 :class:`~core.errors.ValidationError` (never a 5xx):

- not JSON, or nested deeper than the decoder's recursion limit;
- not of the route's type — decoded *strictly*: an ``int`` field takes a JSON integer only
  (``1.0``, ``"100"`` and ``1e3`` are refused; Litestar itself converts bodies with
  ``strict=False``, which would accept them);
- a string holding a NUL character (``\\u0000``), which no Postgres text column can store.

:class:`JsonRequest` is the app's request class: its ``json()`` decodes the body into the
handler's ``data`` type with :func:`decode`, so Litestar's own (lenient) conversion gets an
already-typed value and keeps it as is. :func:`loads` is the same guard for code that
parses bodies with the standard library (the providers' webhook parsers).
"""

from __future__ import annotations

import json
from typing import Any

import msgspec
from litestar import Request
from litestar.types import Empty

from core.errors import ValidationError

_NUL_ESCAPE = b"\\u0000"


class JsonTooDeep(ValueError):
    """A JSON document nested deeper than the decoder allows (a ``ValueError``, like
    :class:`json.JSONDecodeError`, so parsers that refuse bad JSON refuse this too)."""


def decode(body: bytes, type_: Any = Any) -> Any:
    """``body`` decoded strictly into ``type_``; a 400 ``ValidationError`` otherwise."""
    try:
        value = msgspec.json.decode(body, type=type_, strict=True)
    except RecursionError:
        raise ValidationError("the JSON body is nested too deeply",
                              code="invalid_json") from None
    except msgspec.ValidationError as exc:
        message, _, where = str(exc).partition(" - at `$")
        param = where.rstrip("`").lstrip(".") or None
        if param:
            message = f"{message} (at '{param}')"
        raise ValidationError(message, param=param) from None
    except msgspec.DecodeError:
        raise ValidationError("the request body is not valid JSON",
                              code="invalid_json") from None
    if _NUL_ESCAPE in body:
        where = nul_path(value)
        if where is not None:
            raise ValidationError("strings must not contain NUL characters (\\u0000)",
                                  param=where or None)
    return value


def loads(body: bytes | str, **kwargs: Any) -> Any:
    """:func:`json.loads` that raises :class:`JsonTooDeep` (a ``ValueError``) instead of
    ``RecursionError`` for a deeply nested document."""
    try:
        return json.loads(body, **kwargs)
    except RecursionError:
        raise JsonTooDeep("the JSON document is nested too deeply") from None


def nul_path(value: Any, path: str = "") -> str | None:
    """The path of the first string (or key) holding ``\\x00`` in ``value``, else None."""
    if isinstance(value, str):
        return path if "\x00" in value else None
    if isinstance(value, dict):
        for key, item in value.items():
            here = f"{path}.{key}" if path else str(key)
            if isinstance(key, str) and "\x00" in key:
                return here
            found = nul_path(item, here)
            if found is not None:
                return found
        return None
    if isinstance(value, list | tuple):
        for index, item in enumerate(value):
            found = nul_path(item, f"{path}[{index}]")
            if found is not None:
                return found
        return None
    if isinstance(value, msgspec.Struct):
        return nul_path(msgspec.structs.asdict(value), path)
    return None


class JsonRequest(Request[Any, Any, Any]):
    """Litestar's request, whose JSON body is decoded by :func:`decode` into the
    handler's ``data`` type (``Any`` for a handler without one)."""

    async def json(self) -> Any:
        if self._json is Empty:
            if (cached := self._connection_state.json) is not Empty:
                self._json = cached
            else:
                body = await self.body()
                self._json = self._connection_state.json = decode(
                    body or b"null", _data_type(self.route_handler))
        return self._json


def _data_type(handler: Any) -> Any:
    field = handler.parsed_fn_signature.parameters.get("data")
    if field is None or handler.resolve_data_dto() is not None:
        return Any
    return field.annotation
