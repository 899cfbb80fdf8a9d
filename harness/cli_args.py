"""Parsing of ``key=value,key=value`` argument strings (``--model-args``, trainer args)."""

from __future__ import annotations

import json
from typing import Any


def parse_value(text: str) -> Any:
    """Turn ``"3"`` into 3, ``"0.5"`` into 0.5, ``"true"`` into True, JSON lists/objects into
    Python; anything else stays a string."""
    lowered = text.strip().lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    if lowered in ("none", "null"):
        return None
    try:
        return json.loads(text)
    except ValueError:
        return text.strip()


def parse_kv(spec: str | None) -> dict[str, Any]:
    """Parse ``"a=1,b=x,c=[1,2]"`` (commas inside brackets or quotes do not split), or a JSON object.

    Raises ``ValueError`` naming the bad part when a part has no ``=``.
    """
    if not spec:
        return {}
    if spec.strip().startswith("{"):  # lm-eval's JSON form: --model_args '{"pretrained": "..."}'
        try:
            parsed = json.loads(spec)
        except ValueError as exc:
            raise ValueError(f"not valid JSON: {spec!r} ({exc})") from None
        if not isinstance(parsed, dict):
            raise ValueError(f"expected a JSON object, got {spec!r}")
        return parsed
    parts: list[str] = []
    current: list[str] = []
    depth, quote = 0, ""
    for ch in spec:
        if quote:
            quote = "" if ch == quote else quote
        elif ch in "\"'":
            quote = ch
        elif ch in "[{(":
            depth += 1
        elif ch in "]})":
            depth -= 1
        elif ch == "," and depth == 0:
            parts.append("".join(current))
            current = []
            continue
        current.append(ch)
    parts.append("".join(current))
    result: dict[str, Any] = {}
    for part in (p.strip() for p in parts):
        if not part:
            continue
        if "=" not in part:
            raise ValueError(f"expected key=value, got {part!r} in {spec!r}")
        key, value = part.split("=", 1)
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
            result[key.strip()] = value[1:-1]
        else:
            result[key.strip()] = parse_value(value)
    return result


def merged_kv(specs: list[str] | str | None, flag: str) -> dict[str, Any]:
    """Several ``K=V,...`` values of one flag, merged (``--model-args a=1 --model-args b=2``); a key given in two
    of them is an error naming it, never a silent replacement."""
    if specs is None or isinstance(specs, str):
        return parse_kv(specs)
    merged: dict[str, Any] = {}
    for spec in specs:
        parsed = parse_kv(spec)
        twice = sorted(set(parsed) & set(merged))
        if twice:
            raise ValueError(f"{flag}: {', '.join(twice)} given twice")
        merged.update(parsed)
    return merged
