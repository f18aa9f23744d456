"""JSON from the outside world, parsed so that no input can hurt the server.

Python's own parser recurses once per nesting level (100,000 levels is a
RecursionError), reads bytes with 'surrogatepass', accepts NaN and 4,301-digit
numbers and `\\u0000`. Every request body and every imported file goes through
`loads`, which refuses all of those with `NotJSON` and a sentence saying why.
"""

from __future__ import annotations

import json
import re

MAX_DEPTH = 64

_BRACKETS = bytes.maketrans(b"{}", b"[]")
_NOT_STRUCTURE = bytes(b for b in range(256) if b not in b'"[]{}')
# \u escapes that may decode to what is not text: NUL, or half of a surrogate pair.
_SUSPECT = re.compile(r"\\u(0000|[dD][89a-fA-F][0-9a-fA-F]{2})")
_LOW_SURROGATE = re.compile(r"\\u[dD][c-fC-F][0-9a-fA-F]{2}")


class NotJSON(ValueError):
    """The input is not JSON this site accepts; str() is a sentence for the client."""


def loads(raw: bytes | str, max_depth: int = MAX_DEPTH):
    """Parse `raw` (UTF-8), refusing deep nesting, non-text strings and non-finite numbers."""
    try:
        text = raw.decode("utf-8") if isinstance(raw, bytes) else raw
    except UnicodeDecodeError as exc:
        raise NotJSON(f"it is not UTF-8 text (byte {exc.start})") from None
    if _too_deep(text.encode("utf-8") if isinstance(raw, str) else raw, max_depth):
        raise NotJSON(f"it is nested more than {max_depth} levels deep")
    _check_escapes(text)
    try:
        return json.loads(text, parse_constant=_refuse_constant)
    except json.JSONDecodeError as exc:
        raise NotJSON(f"{exc.msg} (line {exc.lineno}, column {exc.colno})") from None
    except (ValueError, RecursionError) as exc:  # e.g. an integer of over 4,300 digits
        raise NotJSON(str(exc)) from None


def _too_deep(raw: bytes, max_depth: int) -> bool:
    """Whether the brackets outside strings nest deeper than `max_depth`, at C speed.

    With escaped backslashes and quotes gone, every remaining quote opens or closes a
    string, so every other piece of a split on quotes is outside strings. Splitting only
    the quotes and brackets, not the whole text, leaves pieces of a byte or none, which
    Python does not allocate: a body of many short strings costs a fifth of the time.
    With only brackets left, each replace(b"[]", b"") peels one level off every innermost
    pair: what still holds "[]" after `max_depth` passes was deeper. Unbalanced brackets
    are left for the parser to name.
    """
    unescaped = raw.replace(b"\\\\", b"").replace(b'\\"', b"")
    structure = unescaped.translate(_BRACKETS, _NOT_STRUCTURE)
    brackets = b"".join(structure.split(b'"')[::2])
    for _ in range(max_depth):
        peeled = brackets.replace(b"[]", b"")
        if len(peeled) == len(brackets):
            return False
        brackets = peeled
    return b"[]" in brackets


def _check_escapes(text: str) -> None:
    position = 0
    while match := _SUSPECT.search(text, position):
        position = match.end()
        if _escaped(text, match.start()):
            continue  # "\\u0000" is an escaped backslash and the letters u0000
        escape = match.group(1)
        if escape == "0000":
            raise NotJSON("a string holds a NUL character (\\u0000)")
        low = escape[1].lower() in "89ab" and _LOW_SURROGATE.match(text, position)
        if not low:
            raise NotJSON(f"a string holds a lone surrogate (\\u{escape}), which is not text")
        position = low.end()


def _escaped(text: str, index: int) -> bool:
    """Whether the backslash at `index` is itself escaped (an odd run of them before it)."""
    before = index
    while before > 0 and text[before - 1] == "\\":
        before -= 1
    return (index - before) % 2 == 1


def _refuse_constant(name: str):
    raise NotJSON(f"{name} is not a JSON number")
