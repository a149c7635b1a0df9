"""The shapes saved states are checked against: each kind accepts what it declares and
names the place and the reason of the first thing it does not; bulk checks of integer
lists agree with item-by-item ones; a recursive shape (a tree, as a xenstore is) stops at
its depth bound; and a document's size and counts are bounded before it is parsed."""

from __future__ import annotations

from typing import Any

import pytest

from hypervisor_model.schema import (
    MAX_DEPTH,
    Bool,
    ByLength,
    Int,
    Lazy,
    List,
    Map,
    OneOf,
    Optional,
    Record,
    Row,
    Schema,
    SchemaError,
    Str,
    parse_json,
)

RUN = Row(Int(0, 100), Int(1, 100), Optional(Int(0, 100)), Int(-1, 1))
DOC = Record(
    {
        "name": Str(8, "[a-z]+"),
        "kind": OneOf(("hvm", "pv")),
        "up": Bool(),
        "runs": List(RUN, 3),
        "by_id": Map(Str(3, "[0-9]+"), Int(0, 9), 2),
    },
    optional=frozenset({"by_id"}),
)
GOOD = {"name": "web", "kind": "pv", "up": True, "runs": [[0, 1, None, 1], [5, 2, 7, -1]]}


def error(schema: Schema, value: Any) -> str:
    with pytest.raises(SchemaError) as e:
        schema.check(value)
    return str(e.value)


def test_a_good_document_passes() -> None:
    DOC.check(GOOD)
    DOC.check({**GOOD, "by_id": {"1": 3}})


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"name": 5}, "name: expected a string, got 5"),
        ({"name": "Web"}, "name: expected [a-z]+, got 'Web'"),
        ({"name": "a" * 9}, "name: expected at most 8 characters, got 9"),
        ({"kind": "xen"}, "kind: expected one of hvm, pv, got 'xen'"),
        ({"up": 1}, "up: expected true or false, got 1"),
        ({"runs": [[0, 1, None, 1]] * 4}, "runs: expected at most 3 items, got 4"),
        ({"runs": [[0, 1, None, 1], [0, 0, None, 1]]}, "runs[1][1]: expected 1..100, got 0"),
        ({"runs": [[0, 1, "x", 1]]}, "runs[0][2]: expected an integer, got 'x'"),
        ({"runs": [[0, 1, None, True]]}, "runs[0][3]: expected an integer, got true"),
        ({"runs": [[0, 1, None]]}, "runs[0]: expected a list of 4, got a list of 3"),
        ({"by_id": {"x": 1}}, "by_id: key 'x': expected [0-9]+, got 'x'"),
        ({"by_id": {"1": 10}}, "by_id.1: expected 0..9, got 10"),
        ({"by_id": {"1": 1, "2": 2, "3": 3}}, "by_id: expected at most 2 entries, got 3"),
        ({"colour": "red"}, "unexpected key 'colour'; expected name, kind, up, runs, by_id"),
    ],
)
def test_the_first_bad_value_is_named_with_its_path(change: dict[str, Any], message: str) -> None:
    assert error(DOC, {**GOOD, **change}) == message


def test_a_missing_key_is_named() -> None:
    assert error(DOC, {k: v for k, v in GOOD.items() if k != "up"}) == "missing key 'up'"


@pytest.mark.parametrize(
    "rows",
    [
        [[i, 1, None if i % 2 else i, 1] for i in range(50)],
        [[i, 1, i, -1] for i in range(50)] + [[3, 1, 101, 1]],
        [[i, 1, i, 1] for i in range(50)] + [[3, 1, 1.0, 1]],
        [[i, 1, i, 1] for i in range(50)] + [[3, 1, 1]],
        [[i, 1, i, 1] for i in range(50)] + [(3, 1, 1, 1)],
        [],
    ],
    ids=["good", "out-of-range", "float", "short-row", "tuple", "empty"],
)
def test_bulk_checks_agree_with_item_by_item_ones(rows: list[Any]) -> None:
    """Row.fast judges a whole column at once; where it says yes, every row passes, and
    List falls back to rows one by one (naming the culprit) where it says no."""
    one_by_one = True
    for row in rows:
        try:
            RUN.check(row)
        except SchemaError:
            one_by_one = False
    assert RUN.fast(rows) == one_by_one
    if not one_by_one:
        assert error(List(RUN, 100), rows).startswith(f"[{len(rows) - 1}]")


SHORT_OR_LONG = ByLength({4: RUN, 6: Row(*RUN.items, Int(1, 9), Int(0, 9))})


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        ([[0, 1, None, 1], [2, 1, 3, 1, 9, 9]], None),
        ([[0, 1, None, 1]] * 3, None),
        ([[0, 1, None, 1], [2, 1, 3, 1, 10, 9]], "[1][4]: expected 1..9, got 10"),
        ([[0, 1, None, 1], [2, 1, 3, 1, 9]], "[1]: expected a list of 4 or 6, got a list of 5"),
        ([[0, 1, None, 1], "x"], "[1]: expected a list of 4 or 6, got 'x'"),
        ([[0, 1, None, 1], [2, 1, 3, 1, 1, 1], [0, 0, 0, 0]], "[2][1]: expected 1..100, got 0"),
    ],
)
def test_a_row_of_each_length_has_its_own_shape(rows: list[Any], message: str | None) -> None:
    """ByLength: a short row is a run, a long one a run with two more columns; checked in
    bulk, the rows of each length together, and one by one where that finds a fault."""
    assert SHORT_OR_LONG.fast(rows) == (message is None)
    if message is None:
        List(SHORT_OR_LONG, 10).check(rows)
    else:
        assert error(List(SHORT_OR_LONG, 10), rows) == message


TREE: Schema = Record(
    {"value": Str(16), "children": Map(Str(16), Lazy(lambda: TREE), 8)},
    optional=frozenset({"children"}),
)


def chain(depth: int) -> dict[str, Any]:
    node: dict[str, Any] = {"value": "leaf"}
    for _ in range(depth):
        node = {"value": "", "children": {"c": node}}
    return node


def test_a_recursive_shape_checks_a_tree_up_to_its_depth_bound() -> None:
    """A node's children hold nodes; each level adds two (the Map and the node), so a
    chain of MAX_DEPTH // 2 levels passes and a longer one is refused."""
    TREE.check(chain(MAX_DEPTH // 2))
    message = error(TREE, chain(MAX_DEPTH))
    assert message.endswith(f"expected at most {MAX_DEPTH} levels of nesting")
    bad = chain(3)
    bad["children"]["c"]["children"]["c"]["value"] = 1
    assert error(TREE, bad) == "children.c.children.c.value: expected a string, got 1"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (b"[" * 10_000 + b"]" * 10_000, "not a state: lists or objects nested too deeply"),
        (b"9" * 5000, "not a state: an integer of thousands of digits"),
        (b"[1,", "not JSON: Expecting value at line 1 column 4"),
        (b"\xc3(", "not JSON: not UTF-8 at byte 0"),
    ],
    ids=["deep", "digits", "truncated", "not-utf8"],
)
def test_parse_json_fails_in_one_line(text: bytes, message: str) -> None:
    with pytest.raises(SchemaError) as e:
        parse_json(text)
    assert str(e.value) == message
