"""The body checks of the strict JSON parser: a NUL anywhere, nesting too deep.

`raw_json_problem` skips the walk over a parsed body when its bytes show there is
nothing to find; these cases are the ones where the bytes could mislead it.
"""

import orjson
import pytest

from core.parsers import MAX_DEPTH, json_problem, raw_json_problem

NUL = "JSON strings must not contain NUL characters (\\u0000)."


@pytest.mark.parametrize(
    "raw",
    [
        b'{"content": "a\\u0000b"}',
        b'{"tool_calls": [{"key\\u0000": 1}]}',
        b'[[[{"deep": ["\\u0000"]}]]]',
    ],
)
def test_a_nul_anywhere_is_found(raw):
    assert raw_json_problem(raw, orjson.loads(raw)) == NUL


def test_an_escaped_backslash_before_u0000_is_text_not_a_nul():
    raw = b'{"content": "C:\\\\u0000"}'
    data = orjson.loads(raw)
    assert data["content"] == "C:\\u0000"
    assert raw_json_problem(raw, data) is None


def test_nesting_deeper_than_the_limit_is_found():
    raw = b"[" * (MAX_DEPTH + 1) + b"]" * (MAX_DEPTH + 1)
    assert "nested" in raw_json_problem(raw, orjson.loads(raw))


def test_brackets_inside_strings_do_not_fool_it():
    raw = orjson.dumps({"content": "[" * (MAX_DEPTH + 5), "ok": [1, {"a": None}]})
    assert raw_json_problem(raw, orjson.loads(raw)) is None


@pytest.mark.parametrize("raw", [b'{"a": "b"}', b"[1, 2, 3]", b'"text"', b"null"])
def test_it_agrees_with_the_full_walk(raw):
    data = orjson.loads(raw)
    assert raw_json_problem(raw, data) == json_problem(data) is None
