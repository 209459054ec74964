"""The batch id check gives what the one-id check gives, for every list of values."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from tablesync.protocol import all_valid_ids, is_valid_id

# Mostly plausible ids, with the characters and lengths the rules are about mixed in.
_AWKWARD = st.sampled_from(["", ".", "..", "\n", "\x00", "\x7f", "\x85", '"', "+", "?", "\\", "/"])
_TEXT = st.one_of(
    st.text(alphabet=st.characters(codec="utf-8"), max_size=8),
    st.builds(lambda a, b, c: a + b + c, st.text(max_size=3), _AWKWARD, st.text(max_size=3)),
    st.integers(254, 257).map(lambda n: "x" * n),
    _AWKWARD,
)
_VALUE = st.one_of(_TEXT, st.none(), st.integers())


@settings(max_examples=400, deadline=None)
@given(st.lists(_VALUE, max_size=6))
def test_all_valid_ids_agrees_with_is_valid_id(values: list[object]) -> None:
    assert all_valid_ids(values) == (bool(values) and all(is_valid_id(v) for v in values))


def test_all_valid_ids_on_a_page_of_ids() -> None:
    ids = [f"id-{n:06d}" for n in range(1000)]
    assert all_valid_ids(ids)
    assert not all_valid_ids([*ids, "a\nb"])
    assert not all_valid_ids([*ids[:-1], ".."])


def test_each_character_is_judged_alike_by_both_checks() -> None:
    forbidden = {*map(chr, range(0x20)), *map(chr, range(0x7F, 0xA0)), *'"+?\\/`'}
    for code in range(0x3000):
        character = chr(code)
        allowed = character not in forbidden
        assert is_valid_id(f"a{character}b") is allowed, hex(code)
        assert all_valid_ids(["x", f"a{character}b"]) is allowed, hex(code)
