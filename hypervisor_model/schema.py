"""The shape of a saved document, checked before anything is built from it.

A saved state may be damaged or hostile. Before it is parsed, its size, the number of values
in it and of lists and objects are bounded; after, every value is checked against a declared
shape (types, integer ranges, lengths, keys). A bad file so costs bounded time and memory
and ends in one short line saying where it went wrong. Shapes compose (``Record``, ``Map``,
``List``, ``Row``, ``ByLength``; ``Lazy`` for a recursive one such as a tree) and check large
lists of integers at C speed.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Mapping
from operator import itemgetter
from typing import IO, Any

MAX_BYTES = 64 << 20  # far beyond any host's state: 2 TiB with 1.7 TiB of guests is 160 KB
MAX_VALUES = 8_000_000  # commas: every value but the first of each list or object
MAX_CONTAINERS = 2_000_000  # lists and objects
MAX_DEPTH = 64  # nesting a recursive shape may reach


class SchemaError(ValueError):
    """A document that does not have its declared shape: where, and what is wrong there."""

    def __init__(self, problem: str) -> None:
        super().__init__(problem)
        self.problem = problem
        self.where: list[str | int] = []

    def at(self, key: str | int) -> SchemaError:
        """The same error, one level further out (paths are built only when failing)."""
        self.where.insert(0, key)
        return self

    def __str__(self) -> str:
        path = "".join(f"[{k}]" if isinstance(k, int) else f".{k}" for k in self.where)
        return f"{path.lstrip('.')}: {self.problem}" if path else self.problem


def describe(value: Any) -> str:
    """A value in a few words, whatever its size: never the value itself when it is long."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value) if abs(value) < 10**30 else "an integer of 30 digits or more"
    if isinstance(value, float):
        return f"the number {value!r}"
    if isinstance(value, str):
        return repr(value) if len(value) <= 30 else f"a string of {len(value)} characters"
    if isinstance(value, list):
        return f"a list of {len(value)}"
    if isinstance(value, dict):
        return f"an object of {len(value)} keys"
    return type(value).__name__


def read_json(f: IO[bytes]) -> Any:
    """A JSON document from a file within the bounds above, or SchemaError in one line."""
    size = os.fstat(f.fileno()).st_size
    if size > MAX_BYTES:
        raise SchemaError(f"expected at most {MAX_BYTES >> 20} MiB, got {size / (1 << 20):.0f} MiB")
    return parse_json(f.read(MAX_BYTES + 1))


def parse_json(data: bytes) -> Any:
    """JSON text within the bounds above, or SchemaError in one line."""
    if len(data) > MAX_BYTES:
        raise SchemaError(f"expected at most {MAX_BYTES >> 20} MiB")
    if data.count(b",") > MAX_VALUES:
        raise SchemaError(f"expected at most {MAX_VALUES} values")
    if data.count(b"[") + data.count(b"{") > MAX_CONTAINERS:
        raise SchemaError(f"expected at most {MAX_CONTAINERS} lists and objects")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise SchemaError(f"not JSON: not UTF-8 at byte {e.start}") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise SchemaError(f"not JSON: {e.msg} at line {e.lineno} column {e.colno}") from None
    except RecursionError:
        raise SchemaError("not a state: lists or objects nested too deeply") from None
    except ValueError:  # the only other failure: an integer of more than 4300 digits
        raise SchemaError("not a state: an integer of thousands of digits") from None


class Schema:
    """A shape. ``check`` raises SchemaError; ``fast`` checks many values at once where it
    can (False: "check them one by one", which finds the culprit). Shapes are plain slotted
    classes, not dataclasses: a state's schema is made in every process that loads one."""

    __slots__ = ()

    def check(self, value: Any, depth: int = 0) -> None:
        raise NotImplementedError

    def fast(self, values: list[Any]) -> bool:
        return False


class Int(Schema):
    """An integer (not a boolean) in ``lo..hi``."""

    __slots__ = ("hi", "lo")

    def __init__(self, lo: int, hi: int) -> None:
        self.lo, self.hi = lo, hi

    def check(self, value: Any, depth: int = 0) -> None:
        if type(value) is not int:
            raise SchemaError(f"expected an integer, got {describe(value)}")
        if not self.lo <= value <= self.hi:
            raise SchemaError(f"expected {self.lo}..{self.hi}, got {describe(value)}")

    def fast(self, values: list[Any]) -> bool:
        if not values:
            return True
        return set(map(type, values)) == {int} and self.lo <= min(values) and max(values) <= self.hi


U32, U64 = (1 << 32) - 1, (1 << 64) - 1


class Bool(Schema):
    """true or false."""

    __slots__ = ()

    def check(self, value: Any, depth: int = 0) -> None:
        if type(value) is not bool:
            raise SchemaError(f"expected true or false, got {describe(value)}")


class Str(Schema):
    """A string of at most ``max_len`` characters, matching ``pattern`` when one is given."""

    __slots__ = ("max_len", "pattern")

    def __init__(self, max_len: int, pattern: str | None = None) -> None:
        self.max_len, self.pattern = max_len, pattern

    def check(self, value: Any, depth: int = 0) -> None:
        if type(value) is not str:
            raise SchemaError(f"expected a string, got {describe(value)}")
        if len(value) > self.max_len:
            raise SchemaError(f"expected at most {self.max_len} characters, got {len(value)}")
        if self.pattern is not None and not re.fullmatch(self.pattern, value):
            raise SchemaError(f"expected {self.pattern}, got {describe(value)}")

    def fast(self, values: list[Any]) -> bool:
        if set(map(type, values)) - {str} or max(map(len, values), default=0) > self.max_len:
            return False
        return self.pattern is None or all(map(re.compile(self.pattern).fullmatch, values))


class OneOf(Schema):
    """One of a few strings."""

    __slots__ = ("choices",)

    def __init__(self, choices: tuple[str, ...]) -> None:
        self.choices = choices

    def check(self, value: Any, depth: int = 0) -> None:
        if value not in self.choices or type(value) is not str:
            raise SchemaError(f"expected one of {', '.join(self.choices)}, got {describe(value)}")


class Optional(Schema):
    """``null`` or the inner shape."""

    __slots__ = ("inner",)

    def __init__(self, inner: Schema) -> None:
        self.inner = inner

    def check(self, value: Any, depth: int = 0) -> None:
        if value is not None:
            self.inner.check(value, depth)

    def fast(self, values: list[Any]) -> bool:
        return self.inner.fast([v for v in values if v is not None])


def _check_items(item: Schema, values: list[Any], depth: int) -> None:
    if item.fast(values):
        return
    for i, value in enumerate(values):
        try:
            item.check(value, depth + 1)
        except SchemaError as e:
            raise e.at(i) from None


class List(Schema):
    """A list of up to ``max_len`` items of one shape."""

    __slots__ = ("item", "max_len")

    def __init__(self, item: Schema, max_len: int) -> None:
        self.item, self.max_len = item, max_len

    def check(self, value: Any, depth: int = 0) -> None:
        if type(value) is not list:
            raise SchemaError(f"expected a list, got {describe(value)}")
        if len(value) > self.max_len:
            raise SchemaError(f"expected at most {self.max_len} items, got {len(value)}")
        _check_items(self.item, value, depth)

    def fast(self, values: list[Any]) -> bool:
        """Many lists at once: their items all together."""
        if set(map(type, values)) - {list} or max(map(len, values), default=0) > self.max_len:
            return False
        return self.item.fast([item for value in values for item in value])


class Row(Schema):
    """A fixed-length list, one shape per position (a C struct saved as a list)."""

    __slots__ = ("items",)

    def __init__(self, *items: Schema) -> None:
        self.items = items

    def check(self, value: Any, depth: int = 0) -> None:
        if type(value) is not list or len(value) != len(self.items):
            raise SchemaError(f"expected a list of {len(self.items)}, got {describe(value)}")
        for i, (item, v) in enumerate(zip(self.items, value, strict=True)):
            try:
                item.check(v, depth + 1)
            except SchemaError as e:
                raise e.at(i) from None

    def fast(self, values: list[Any]) -> bool:
        """Many rows at once, column by column."""
        if not values:
            return True
        if set(map(type, values)) != {list} or set(map(len, values)) != {len(self.items)}:
            return False
        # a column at a time: zip(*values) would pass every row as an argument
        return all(item.fast(list(map(itemgetter(i), values))) for i, item in enumerate(self.items))


class ByLength(Schema):
    """A list whose length says which shape it has (a short row or a long one)."""

    __slots__ = ("shapes",)

    def __init__(self, shapes: Mapping[int, Schema]) -> None:
        self.shapes = shapes

    def check(self, value: Any, depth: int = 0) -> None:
        if type(value) is not list or len(value) not in self.shapes:
            lengths = " or ".join(map(str, sorted(self.shapes)))
            raise SchemaError(f"expected a list of {lengths}, got {describe(value)}")
        self.shapes[len(value)].check(value, depth)

    def fast(self, values: list[Any]) -> bool:
        """Many lists at once, those of each length together."""
        if set(map(type, values)) - {list}:
            return False
        lengths = set(map(len, values))
        if len(lengths) == 1:
            (length,) = lengths
            return length in self.shapes and self.shapes[length].fast(values)
        return lengths <= self.shapes.keys() and all(
            shape.fast([v for v in values if len(v) == length])
            for length, shape in self.shapes.items()
        )


class Record(Schema):
    """An object with known keys: ``fields``, each required unless in ``optional``."""

    __slots__ = ("fields", "optional")

    def __init__(
        self, fields: Mapping[str, Schema], optional: frozenset[str] = frozenset()
    ) -> None:
        self.fields, self.optional = fields, optional

    def check(self, value: Any, depth: int = 0) -> None:
        if type(value) is not dict:
            raise SchemaError(f"expected an object, got {describe(value)}")
        if unknown := value.keys() - self.fields.keys():
            known = f"; expected {', '.join(self.fields)}" if len(self.fields) <= 8 else ""
            raise SchemaError(f"unexpected key {describe(min(unknown))}{known}")
        if missing := self.fields.keys() - self.optional - value.keys():
            raise SchemaError(f"missing key {min(missing)!r}")
        for key, v in value.items():
            try:
                self.fields[key].check(v, depth + 1)
            except SchemaError as e:
                raise e.at(key) from None


class Map(Schema):
    """An object of up to ``max_len`` entries whose keys and values each have one shape."""

    __slots__ = ("key", "max_len", "value")

    def __init__(self, key: Str, value: Schema, max_len: int) -> None:
        self.key, self.value, self.max_len = key, value, max_len

    def check(self, value: Any, depth: int = 0) -> None:
        if type(value) is not dict:
            raise SchemaError(f"expected an object, got {describe(value)}")
        if len(value) > self.max_len:
            raise SchemaError(f"expected at most {self.max_len} entries, got {len(value)}")
        for k, v in value.items():
            try:
                self.key.check(k, depth + 1)
            except SchemaError as e:
                raise SchemaError(f"key {describe(k)}: {e.problem}") from None
            try:
                self.value.check(v, depth + 1)
            except SchemaError as e:
                raise e.at(k) from None


class Lazy(Schema):
    """A shape named before it is defined, for recursion (a tree's node holds nodes);
    nesting stops at MAX_DEPTH."""

    __slots__ = ("factory",)

    def __init__(self, factory: Callable[[], Schema]) -> None:
        self.factory = factory

    def check(self, value: Any, depth: int = 0) -> None:
        if depth > MAX_DEPTH:
            raise SchemaError(f"expected at most {MAX_DEPTH} levels of nesting")
        self.factory().check(value, depth)
