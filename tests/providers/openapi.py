"""Validate payloads against Paystack's published OpenAPI 3.0 description.

Used only by the conformance checks: every function here skips the calling test when the
published file is not available (see :mod:`tests.providers.published`).

OpenAPI 3.0 schemas are JSON Schema plus ``nullable``; turning ``nullable: true`` into a
``"null"`` type lets the stock ``jsonschema`` validator check both the requests our
provider sends and the responses our fake returns.
"""

from __future__ import annotations

from functools import cache
from typing import Any

import yaml
from jsonschema import Draft7Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT7

from tests.providers.published import PAYSTACK_FILE, published_file

_URI = "urn:paystack-openapi"


def _with_nulls(node: Any) -> Any:
    if isinstance(node, list):
        return [_with_nulls(item) for item in node]
    if not isinstance(node, dict):
        return node
    out = {key: _with_nulls(value) for key, value in node.items()}
    if out.pop("nullable", False):
        kind = out.get("type")
        if isinstance(kind, str):
            out["type"] = [kind, "null"]
        if "enum" in out:
            out["enum"] = [*out["enum"], None]
    return out


def document() -> dict[str, Any]:
    return _load(str(published_file(PAYSTACK_FILE)))


@cache
def _load(path: str) -> dict[str, Any]:
    with open(path, encoding="utf-8") as handle:
        return yaml.safe_load(handle)


@cache
def _registry() -> Registry:
    resource = Resource(contents=_with_nulls(document()), specification=DRAFT7)
    return Registry().with_resource(_URI, resource)


def validator(pointer: str) -> Draft7Validator:
    """A validator for ``#/components/...`` in the Paystack document."""
    return Draft7Validator({"$ref": f"{_URI}#{pointer}"}, registry=_registry())


def schema(name: str) -> Draft7Validator:
    return validator(f"/components/schemas/{name}")


def request_schema(path: str, method: str) -> Draft7Validator:
    """The JSON request body schema of one operation."""
    body = document()["paths"][path][method]["requestBody"]["content"]["application/json"]
    ref = body["schema"]["$ref"]
    return validator(ref.removeprefix("#"))


def example(kind: str, name: str) -> Any:
    """A documented example: ``kind`` is ``schemas`` or ``responses``."""
    node = document()["components"][kind][name]
    if kind == "responses":
        return node["content"]["application/json"]["example"]
    return node["example"]
