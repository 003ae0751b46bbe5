"""Make the OpenAPI document say what the server enforces.

Litestar generates the document from the declared types, but two rules the server applies are
not in them: request structs forbid unknown fields (`forbid_unknown_fields=True`, a 422 at
runtime), and the rules of a list's items (`list[Annotated[str, Meta(...)]]`) are dropped.
`tighten` writes both into the generated document once, so clients and schema-driven tools
(schemathesis runs in CI) see the real contract. Text rules themselves live in the types
(`server.rest.one_line`), so the schema and the check are one declaration.
"""

from __future__ import annotations

from typing import Any

import msgspec
import msgspec.inspect
from litestar import Litestar
from litestar.openapi.spec import Schema


def _structs(base: type[msgspec.Struct] = msgspec.Struct) -> dict[str, type[msgspec.Struct]]:
    found: dict[str, type[msgspec.Struct]] = {}
    for sub in base.__subclasses__():
        found[sub.__name__] = sub
        found.update(_structs(sub))
    return found


def _string_rules(info: Any) -> dict[str, Any]:
    rules: dict[str, Any] = {}
    if isinstance(info, msgspec.inspect.StrType):
        for key in ("min_length", "max_length", "pattern"):
            if getattr(info, key) is not None:
                rules[key] = getattr(info, key)
    return rules


def _options(schema: Any) -> list[Schema]:
    if not isinstance(schema, Schema):
        return []
    return [o for o in (schema.one_of or [schema]) if isinstance(o, Schema)]


def _list_item_rules(struct: type[msgspec.Struct], schema: Schema) -> None:
    """Litestar drops the constraints of a list's items (`list[Annotated[str, Meta(...)]]`): restore them."""
    info = msgspec.inspect.type_info(struct)
    if not isinstance(info, msgspec.inspect.StructType):
        return
    for field in info.fields:
        types = field.type.types if isinstance(field.type, msgspec.inspect.UnionType) else (field.type,)
        for member in types:
            if isinstance(member, msgspec.inspect.ListType) and (rules := _string_rules(member.item_type)):
                for option in _options((schema.properties or {}).get(field.encode_name)):
                    if isinstance(option.items, Schema):
                        for key, value in rules.items():
                            setattr(option.items, key, value)


def tighten(app: Litestar) -> None:
    """Close every request object that forbids unknown fields and restore its list items' rules."""
    document = app.openapi_schema
    schemas = document.components.schemas if document.components and document.components.schemas else {}
    structs = _structs()
    for name, schema in schemas.items():
        struct = structs.get(name)
        if isinstance(schema, Schema) and struct is not None and struct.__struct_config__.forbid_unknown_fields:
            schema.additional_properties = False
            _list_item_rules(struct, schema)
