"""Make the OpenAPI document say what the server enforces.

Litestar generates the document from the declared types, but two rules the server applies are
not in them: request structs forbid unknown fields (`forbid_unknown_fields=True`, a 422 at
runtime) and text fields are trimmed and must not be blank or hold control characters (a 422
from `server.rest.clean_text`). `tighten` writes both into the generated document once, so
clients and schema-driven tools (schemathesis runs in CI) see the real contract.
"""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Litestar
from litestar.openapi.spec import Schema

NOT_BLANK = r"^[^\x00-\x08\x0a-\x1f\x7f]*[^\s\x00-\x1f\x7f][^\x00-\x08\x0a-\x1f\x7f]*$"
"""One line of text with at least one visible character and no control characters."""


def _structs(base: type[msgspec.Struct] = msgspec.Struct) -> dict[str, type[msgspec.Struct]]:
    found: dict[str, type[msgspec.Struct]] = {}
    for sub in base.__subclasses__():
        found[sub.__name__] = sub
        found.update(_structs(sub))
    return found


def tighten(app: Litestar, text_rules: dict[str, dict[str, dict[str, Any]]] | None = None) -> None:
    """Close every request object that forbids unknown fields, and add `text_rules`
    (`{"MeetingCreate": {"title": {"min_length": 1, ...}}}`) to the named properties."""
    document = app.openapi_schema
    schemas = document.components.schemas if document.components and document.components.schemas else {}
    structs = _structs()
    for name, schema in schemas.items():
        struct = structs.get(name)
        if isinstance(schema, Schema) and struct is not None and struct.__struct_config__.forbid_unknown_fields:
            schema.additional_properties = False
        for field, rules in (text_rules or {}).get(name, {}).items():
            target = (schema.properties or {}).get(field) if isinstance(schema, Schema) else None
            for option in (target.one_of or [target]) if isinstance(target, Schema) else []:
                if isinstance(option, Schema) and option.type is not None and "string" in str(option.type):
                    for key, value in rules.items():
                        setattr(option, key, value)
