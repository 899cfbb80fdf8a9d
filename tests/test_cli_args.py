"""--model-args parsing."""

import pytest

from harness.cli_args import parse_kv


def test_values_are_typed():
    assert parse_kv("a=1,b=0.5,c=true,d=none,e=text") == {"a": 1, "b": 0.5, "c": True, "d": None, "e": "text"}


def test_commas_inside_brackets_and_quotes_do_not_split():
    parsed = parse_kv('anchors=["fake","Fake"],prompt="a, b",path=/x/y')
    assert parsed == {"anchors": ["fake", "Fake"], "prompt": "a, b", "path": "/x/y"}


def test_empty_and_bad_input():
    assert parse_kv("") == {} and parse_kv(None) == {}
    with pytest.raises(ValueError, match="expected key=value, got 'oops'"):
        parse_kv("a=1,oops")
