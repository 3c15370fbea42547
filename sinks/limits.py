"""What DynamoDB refuses and what it bills: its documented item rules, checked on our side.

The emulators are lenient (moto takes a lone surrogate, a 3,000-character key, a number with
50 digits); DynamoDB refuses each with a ``ValidationException``, and a refused write would stop
the shard on every replay. ``refusals`` states the rules for an item in DynamoDB's wire form
(``{"S": ...}``, ``{"N": ...}``, ``{"M": ...}``, ...), so tests can prove that nothing a box
sends becomes such an item. ``item_size_bytes`` sizes an item by DynamoDB's rules: a write is
billed per started kilobyte of it.

Sources: DynamoDB Developer Guide, "Service, account, and table quotas" and "Supported data
types and naming rules" (number precision and range, key lengths, nesting, item size).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

MAX_ITEM_BYTES = 400 * 1024
MAX_PARTITION_KEY_BYTES = 2048
MAX_SORT_KEY_BYTES = 1024
MAX_NUMBER_DIGITS = 38
MAX_DEPTH = 32
_MAX_MAGNITUDE = Decimal("9.9999999999999999999999999999999999999E+125")
_MIN_MAGNITUDE = Decimal("1E-130")


def _utf8_len(text: str) -> int | None:
    try:
        return len(text.encode("utf-8"))
    except UnicodeEncodeError:
        return None  # a lone surrogate: not UTF-8, DynamoDB refuses it


def _number_problem(text: str) -> str | None:
    try:
        value = Decimal(text)
    except InvalidOperation:
        return f"not a number: {text[:40]!r}"
    if not value.is_finite():
        return f"not finite: {text[:40]!r}"
    if value == 0:
        return None
    digits = value.normalize().as_tuple().digits
    if len(digits) > MAX_NUMBER_DIGITS:
        return f"{len(digits)} significant digits (at most {MAX_NUMBER_DIGITS})"
    if not _MIN_MAGNITUDE <= abs(value) <= _MAX_MAGNITUDE:
        return f"magnitude out of range: {text[:40]!r}"
    return None


def _value_problems(where: str, value: Mapping[str, Any], depth: int) -> Iterator[str]:
    if depth > MAX_DEPTH:
        yield f"{where}: nested deeper than {MAX_DEPTH}"
        return
    if len(value) != 1:
        yield f"{where}: not one typed value"
        return
    ((kind, inner),) = value.items()
    if kind == "S":
        if not isinstance(inner, str) or _utf8_len(inner) is None:
            yield f"{where}: string is not valid UTF-8"
    elif kind == "N":
        problem = _number_problem(inner) if isinstance(inner, str) else "number not sent as text"
        if problem:
            yield f"{where}: {problem}"
    elif kind == "M":
        for name, element in inner.items():
            if not name or _utf8_len(name) is None:
                yield f"{where}: attribute name {name!r} empty or not UTF-8"
            yield from _value_problems(f"{where}.{name}", element, depth + 1)
    elif kind == "L":
        for i, element in enumerate(inner):
            yield from _value_problems(f"{where}[{i}]", element, depth + 1)
    elif kind == "SS":
        if not isinstance(inner, list) or not inner:
            yield f"{where}: a string set must hold at least one string"
        elif any(not isinstance(s, str) or _utf8_len(s) is None for s in inner):
            yield f"{where}: a set member is not valid UTF-8"
        elif len(set(inner)) != len(inner):
            yield f"{where}: a string set holds duplicates"
    elif kind not in ("BOOL", "NULL", "B"):
        yield f"{where}: type {kind} not used by wattstream"


def refusals(item: Mapping[str, Mapping[str, Any]], *, partition_key: str, sort_key: str | None = None) -> list[str]:
    """Why DynamoDB would refuse to store ``item`` (empty when it would take it)."""
    problems: list[str] = []
    for name, limit in ((partition_key, MAX_PARTITION_KEY_BYTES), (sort_key, MAX_SORT_KEY_BYTES)):
        if name is None:
            continue
        key = item.get(name, {}).get("S")
        size = _utf8_len(key) if isinstance(key, str) else None
        if size is None or not 1 <= size <= limit:
            problems.append(f"key {name}: must be a UTF-8 string of 1 to {limit} bytes")
    for name, value in item.items():
        if not name or _utf8_len(name) is None:
            problems.append(f"attribute name {name!r} empty or not UTF-8")
        problems.extend(_value_problems(name, value, 1))
    if not problems and (size := item_size_bytes(item)) > MAX_ITEM_BYTES:
        problems.append(f"item of {size} bytes (at most {MAX_ITEM_BYTES})")
    return problems


def _number_size(text: str) -> int:
    # About one byte per two significant digits, plus one (the documented approximation).
    digits = Decimal(text).normalize().as_tuple().digits
    return (len(digits) + 1) // 2 + 1


def value_size_bytes(value: Mapping[str, Any]) -> int:
    """Size of one attribute value, by DynamoDB's rules (names of map members included)."""
    ((kind, inner),) = value.items()
    if kind == "S":
        return len(inner.encode("utf-8"))
    if kind == "N":
        return _number_size(inner)
    if kind == "B":
        return len(inner)
    if kind in ("BOOL", "NULL"):
        return 1
    if kind == "SS":
        return sum(len(member.encode("utf-8")) for member in inner)
    if kind == "M":
        return 3 + sum(len(k.encode("utf-8")) + value_size_bytes(v) + 1 for k, v in inner.items())
    if kind == "L":
        return 3 + sum(value_size_bytes(v) + 1 for v in inner)
    raise ValueError(f"attribute type {kind} is not sized here")


def item_size_bytes(item: Mapping[str, Mapping[str, Any]]) -> int:
    """The item's size as DynamoDB bills it: attribute names plus values, in bytes."""
    return sum(len(name.encode("utf-8")) + value_size_bytes(value) for name, value in item.items())
