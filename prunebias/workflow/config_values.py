"""Typed values from ``snakemake --config``.

Snakemake parses a top-level ``--config seed=7`` into a number, but the values inside a
nested override (``--config "model={allow_download: true}"``) arrive as strings, which
the schema then rejects ('true' is not of type 'boolean'). ``coerce_strings`` reads such
strings as YAML scalars wherever the schema wants a boolean, an integer, a number or
null, before validation; a string that does not parse to the wanted type is left for
the schema to reject with its own message.
"""

from __future__ import annotations

from typing import Any

import yaml

_WANTED = {"boolean": lambda v: isinstance(v, bool),
           "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
           "number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
           "null": lambda v: v is None}


def _types(schema: dict[str, Any]) -> list[str]:
    t = schema.get("type", [])
    out = [t] if isinstance(t, str) else list(t)
    for alt in schema.get("oneOf", []) + schema.get("anyOf", []):
        out += _types(alt)
    return out


def _branches(schema: dict[str, Any]) -> list[dict[str, Any]]:
    return [schema] + [b for alt in schema.get("oneOf", []) + schema.get("anyOf", []) for b in _branches(alt)]


def _string_fits(value: str, schema: dict[str, Any]) -> bool:
    """Whether some string branch of ``schema`` takes ``value`` as it is (any string, or one of
    its enum): ``"auto"`` stays a string where the schema allows it, ``"8000"`` does not."""
    for branch in _branches(schema):
        t = branch.get("type", [])
        if "string" in ([t] if isinstance(t, str) else t) and ("enum" not in branch or value in branch["enum"]):
            return True
    return False


def _coerce(value: Any, schema: dict[str, Any], path: str, changed: list[str]) -> Any:
    if isinstance(value, str):
        wanted = [t for t in _types(schema) if t in _WANTED]
        if wanted and not _string_fits(value, schema):
            try:
                parsed = yaml.safe_load(value)
            except yaml.YAMLError:
                return value
            if any(_WANTED[t](parsed) for t in wanted):
                changed.append(path)
                return parsed
        return value
    for branch in _branches(schema):
        if isinstance(value, dict):
            props = branch.get("properties", {})
            extra = branch.get("additionalProperties")
            for key in list(value):
                sub = props.get(key, extra if isinstance(extra, dict) else None)
                if sub is not None:
                    value[key] = _coerce(value[key], sub, f"{path}.{key}" if path else str(key), changed)
        elif isinstance(value, list) and isinstance(branch.get("items"), dict):
            for i, item in enumerate(value):
                value[i] = _coerce(item, branch["items"], f"{path}[{i}]", changed)
    return value


def coerce_strings(config: dict[str, Any], schema: dict[str, Any]) -> list[str]:
    """Replace, in place, strings where ``schema`` wants a boolean, integer, number or null by
    their YAML value; returns the dotted paths changed."""
    changed: list[str] = []
    _coerce(config, schema, "", changed)
    return changed
