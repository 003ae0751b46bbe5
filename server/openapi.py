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


_RULES: dict[type, tuple[str, ...]] = {
    msgspec.inspect.StrType: ("min_length", "max_length", "pattern"),
    msgspec.inspect.IntType: ("ge", "le", "gt", "lt"),
    msgspec.inspect.FloatType: ("ge", "le", "gt", "lt"),
}
_KINDS: dict[type, str] = {
    msgspec.inspect.StrType: "string",
    msgspec.inspect.IntType: "integer",
    msgspec.inspect.FloatType: "number",
}
_SCHEMA_NAMES = {
    "ge": "minimum",
    "le": "maximum",
    "gt": "exclusive_minimum",
    "lt": "exclusive_maximum",
    "min_length": "min_length",
    "max_length": "max_length",
    "pattern": "pattern",
}


def _rules(info: Any) -> dict[str, Any]:
    """The constraints msgspec enforces on a scalar, as OpenAPI `Schema` attribute names."""
    names = _RULES.get(type(info), ())
    return {_SCHEMA_NAMES[name]: getattr(info, name) for name in names if getattr(info, name, None) is not None}


def _options(schema: Any) -> list[Schema]:
    if not isinstance(schema, Schema):
        return []
    return [o for o in (schema.one_of or [schema]) if isinstance(o, Schema)]


def _restore_rules(struct: type[msgspec.Struct], schema: Schema) -> None:
    """Litestar drops the constraints of a field inside a union (`Annotated[int, Meta(ge=0)] | UnsetType`)
    and of a list's items (`list[Annotated[str, Meta(...)]]`): copy them from msgspec's own view."""
    info = msgspec.inspect.type_info(struct)
    if not isinstance(info, msgspec.inspect.StructType):
        return
    for field in info.fields:
        types = field.type.types if isinstance(field.type, msgspec.inspect.UnionType) else (field.type,)
        options = _options((schema.properties or {}).get(field.encode_name))
        for member in types:
            if rules := _rules(member):
                targets = [o for o in options if o.type is not None and _same_kind(o, member)]
            elif isinstance(member, msgspec.inspect.ListType) and (rules := _rules(member.item_type)):
                targets = [o.items for o in options if isinstance(o.items, Schema)]
            else:
                continue
            for target in targets:
                for key, value in rules.items():
                    if getattr(target, key, None) is None:
                        setattr(target, key, value)


def _same_kind(schema: Schema, info: Any) -> bool:
    kind = getattr(schema.type, "value", schema.type)
    return isinstance(kind, str) and _KINDS.get(type(info)) == kind


def tighten(app: Litestar) -> None:
    """Close every request object that forbids unknown fields and restore the rules Litestar dropped."""
    document = app.openapi_schema
    schemas = document.components.schemas if document.components and document.components.schemas else {}
    structs = _structs()
    for name, schema in schemas.items():
        struct = structs.get(name)
        if isinstance(schema, Schema) and struct is not None and struct.__struct_config__.forbid_unknown_fields:
            schema.additional_properties = False
            _restore_rules(struct, schema)
