"""chat.safejson: JSON that cannot hurt the server, refused with a sentence."""

import json

import pytest

from chat.safejson import MAX_DEPTH, NotJSON, loads


def nested(depth: int, opener: str = "[", closer: str = "]") -> bytes:
    return (opener * depth + closer * depth).encode()


def test_it_parses_ordinary_json():
    text = {"a": [1, 2.5, None, True, "ünïcode 😀", {"b": "\\u0000 [not a bracket]"}]}
    assert loads(json.dumps(text).encode()) == text
    assert loads(json.dumps(text, ensure_ascii=False).encode()) == text


def test_it_accepts_nesting_up_to_the_limit():
    assert loads(nested(MAX_DEPTH))


@pytest.mark.parametrize("depth", [MAX_DEPTH + 1, 100_000])
def test_it_refuses_deeper_nesting(depth):
    with pytest.raises(NotJSON, match="nested more than"):
        loads(nested(depth))
    with pytest.raises(NotJSON, match="nested more than"):
        loads(b'{"a":' * depth + b"1" + b"}" * depth)


def test_it_does_not_count_brackets_inside_strings():
    assert loads(json.dumps(["[" * 1000 + '\\"{' * 100]).encode())
    assert loads(json.dumps({"k\\": "[[[["}).encode()) == {"k\\": "[[[["}


@pytest.mark.parametrize(
    "raw, why",
    [
        (b'"a\\u0000b"', "NUL"),
        (b'"\\ud800"', "lone surrogate"),
        (b'"\\udc00"', "lone surrogate"),
        (b'"\\ud83d\\ud83d\\ude00"', "lone surrogate"),
        (b'"\xed\xa0\x80"', "not UTF-8"),
        (b'"\xff"', "not UTF-8"),
        (b"[NaN]", "NaN"),
        (b"[-Infinity]", "Infinity"),
        (b"1" * 5000, "digits"),
        (b"{not json", "Expecting"),
    ],
)
def test_it_refuses_what_is_not_text_or_not_a_number(raw, why):
    with pytest.raises(NotJSON, match=why):
        loads(raw)


def test_it_takes_escaped_backslashes_for_what_they_are():
    assert loads(b'"\\\\u0000"') == "\\u0000"
    assert loads(b'"\\ud83d\\ude00"') == "😀"
