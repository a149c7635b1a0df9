"""Tests for xlemu.xlcfg against libxlu's rules (libxlu_cfg_l.l, libxlu_cfg_y.y, libxlu_cfg.c).

Every expected value is worked out by hand from those files; the comment on each case says how.
"""

from __future__ import annotations

import errno
import io
from pathlib import Path

import pytest
import xlemu.xlcfg as xlcfg
from xlemu.xlcfg import ConfigError, Lookup, Value

SRC = "vm.cfg"


def value_of(text: str, key: str) -> Value | None:
    """The stored value of key, whichever kind it is (no warnings)."""
    cfg = xlcfg.parse(text, SRC)
    listed = cfg.get_list(key, dont_warn=True).value
    return listed if listed is not None else cfg.get_string(key, dont_warn=True).value


# (text, key, expected stored value); numbers are kept as the text of their token
VALUES = [
    ("decimal", "memory = 512\n", "memory", "512"),
    ("hex-number-token", "memory = 0x200\n", "memory", "0x200"),
    ("number-token-takes-a-f-and-x", "a = 1e5\n", "a", "1e5"),  # [0-9][0-9a-fx]*
    ("double-quoted", 'name = "vm1"\n', "name", "vm1"),
    ("single-quoted", "name = 'vm1'\n", "name", "vm1"),
    ("quotes-of-other-kind-need-no-escape", "a = 'say \"hi\"'\n", "a", 'say "hi"'),
    ("escaped-quotes", r"a = 'it\'s \"x\"'" + "\n", "a", 'it\'s "x"'),
    ("escaped-backslash", r"a = 'c:\\d'" + "\n", "a", "c:\\d"),
    ("letter-escapes", r'a = "\a\b\f\n\r\t\v"' + "\n", "a", "\a\b\f\n\r\t\v"),
    # \1 reads the next 3 chars "01x" as decimal: "01" (2 chars) are eaten, no char is stored
    ("octal-escape-is-dropped", r'a = "\101x"' + "\n", "a", "x"),
    # the window after \1 is " 5y": strtoul skips the blank and reads 5, 2 chars eaten
    ("octal-escape-window-skips-blanks", r'a = "\1 5y"' + "\n", "a", "y"),
    ("hash-inside-string-is-text", "a = 'x#y' # note\n", "a", "x#y"),
    ("empty-string", "a = ''\n", "a", ""),
    ("non-ascii-string", "a = 'é'\n", "a", "é"),
    ("list", "disk = ['a', \"b\"]\n", "disk", ("a", "b")),
    ("empty-list", "disk = []\n", "disk", ()),
    ("list-of-numbers", "cpus = [0, 0x3]\n", "cpus", ("0", "0x3")),
    ("trailing-comma", "disk = ['a', 'b',]\n", "disk", ("a", "b")),
    ("newlines-inside-list", "disk = [\n  'a' ,\n\n  'b'\n  ,\n]\n", "disk", ("a", "b")),
    ("comments-inside-list", "disk = [ # first\n 'a', # second\n]\n", "disk", ("a",)),
    (
        "nested-lists",
        "vnuma = [ ['pnode=0', 'size=512'], [ [] ] ]\n",
        "vnuma",
        (("pnode=0", "size=512"), ((),)),
    ),
    ("semicolons", "a = 1; b = 2;\n", "b", "2"),
    ("no-final-newline", "a = 1\nb = 'x'", "b", "x"),
    ("blank-lines-tabs-and-comments", "\n# head\n\t\n  a\t=\t7 # tail\n", "a", "7"),
    ("dotted-key", "device_model.args_2 = 'x'\n", "device_model.args_2", "x"),
    ("last-assignment-wins", "a = 1\nb = 2\na = 3\n", "a", "3"),
    ("assignment-replaces-kind", "a = [1]\na = 'x'\n", "a", "x"),
    # xlu__cfg_set_store + concat_vals: += appends to the previous value of the same kind
    ("append-strings", "a = 'ab'\na += \"cd\"\n", "a", "abcd"),
    ("append-numbers-as-text", "a = 1\na += 2\n", "a", "12"),
    ("append-lists", "a = ['x']\na += ['y', 'z']\n", "a", ("x", "y", "z")),
    ("append-empty-list", "a = ['x']\na += []\n", "a", ("x",)),
    ("append-to-absent-key", "a += 'x'\n", "a", "x"),
    ("append-list-to-absent-key", "a += ['x']\n", "a", ("x",)),
    ("append-after-reassignment", "a = 'p'\na = 'q'\na += 'r'\n", "a", "qr"),
]


@pytest.mark.parametrize(
    ("text", "key", "expected"), [v[1:] for v in VALUES], ids=[v[0] for v in VALUES]
)
def test_syntax_forms_store_the_libxlu_value(text: str, key: str, expected: Value) -> None:
    assert value_of(text, key) == expected


# (text, key, expected long): xlu_cfg_get_long is strtol(s, &end, 0) with the whole string used
LONGS = [
    ("decimal", "memory = 512\n", 512),
    ("hex", "memory = 0x10\n", 16),
    ("octal-leading-zero", "memory = 010\n", 8),
    ("zero", "memory = 0\n", 0),
    ("quoted-hex-with-sign", "memory = '+0x1f'\n", 31),
    ("quoted-negative-with-leading-blank", "memory = ' -12'\n", -12),
    ("long-min", "memory = '-9223372036854775808'\n", -(2**63)),
    ("long-max", "memory = 9223372036854775807\n", 2**63 - 1),
    ("last-wins", "memory = 1\nmemory = 2\n", 2),
    ("assignment-after-append-is-a-number-again", "memory += 1\nmemory = 2\n", 2),
]


@pytest.mark.parametrize(("text", "expected"), [v[1:] for v in LONGS], ids=[v[0] for v in LONGS])
def test_get_long_reads_strtol_base_0(text: str, expected: int) -> None:
    assert xlcfg.parse(text, SRC).get_long("memory") == Lookup(expected)


def bad_number(line: int) -> str:
    return f"vm.cfg:{line}: warning: parameter `memory' is not a valid number"


# (text, expected Lookup): the warning line is the line of the value's first token
LONG_WARNINGS: list[tuple[str, str, Lookup[int]]] = [
    ("absent-is-silent", "name = 'x'\n", Lookup(None, errno.ESRCH)),
    ("not-digits", "\nmemory = 'lots'\n", Lookup(None, errno.EINVAL, bad_number(2))),
    ("empty", "memory = ''\n", Lookup(None, errno.EINVAL, bad_number(1))),
    ("eight-is-not-octal", "memory = 08\n", Lookup(None, errno.EINVAL, bad_number(1))),
    ("hex-prefix-only", "memory = 0x\n", Lookup(None, errno.EINVAL, bad_number(1))),
    ("no-exponents", "memory = 1e5\n", Lookup(None, errno.EINVAL, bad_number(1))),
    ("trailing-blank", "memory = '12 '\n", Lookup(None, errno.EINVAL, bad_number(1))),
    (
        "overflow",
        "memory = 9223372036854775808\n",
        Lookup(
            None,
            errno.ERANGE,
            "vm.cfg:1: warning: parameter `memory' could not be parsed as a number:"
            " Numerical result out of range",
        ),
    ),
    (
        "list",
        "x = 1\nmemory = [\n512]\n",
        Lookup(
            None,
            errno.EINVAL,
            "vm.cfg:2: warning: parameter `memory' is a list but should be a single value",
        ),
    ),
    # an appended value refuses numbers even when nothing was there to append to
    (
        "appended",
        "memory += 512\n",
        Lookup(
            None,
            errno.EINVAL,
            "vm.cfg:1: warning: can't use += with numbers for parameter `memory'",
        ),
    ),
    (
        "appended-line-is-the-last-append",
        "memory = 5\n\nmemory += 12\n",
        Lookup(
            None,
            errno.EINVAL,
            "vm.cfg:3: warning: can't use += with numbers for parameter `memory'",
        ),
    ),
]


@pytest.mark.parametrize(
    ("text", "expected"), [v[1:] for v in LONG_WARNINGS], ids=[v[0] for v in LONG_WARNINGS]
)
def test_get_long_failures_warn_like_libxlu(text: str, expected: Lookup[int]) -> None:
    assert xlcfg.parse(text, SRC).get_long("memory") == expected


def test_dont_warn_keeps_the_errno_but_prints_nothing() -> None:
    report = io.StringIO()
    cfg = xlcfg.parse("memory = 'lots'\n", SRC, report=report)
    assert cfg.get_long("memory", dont_warn=True) == Lookup(None, errno.EINVAL)
    assert report.getvalue() == ""


def test_warnings_go_to_the_report_stream_in_order() -> None:
    # xlu_cfg_init(report, source): each warning is one line on the report stream
    report = io.StringIO()
    cfg = xlcfg.parse("memory = 'lots'\ncpus = [1]\n", SRC, report=report)
    cfg.get_long("memory")
    cfg.get_string("cpus")
    assert report.getvalue() == (
        f"{bad_number(1)}\n"
        "vm.cfg:2: warning: parameter `cpus' is a list but should be a single value\n"
    )


# (text, lo, hi, expected Lookup): xlu_cfg_get_bounded_long checks bounds after parsing
BOUNDED = [
    ("inside", "n = 5\n", 0, 10, Lookup(5)),
    ("at-bounds", "n = 10\n", 10, 10, Lookup(10)),
    (
        "below",
        "n = '-1'\n",
        0,
        10,
        Lookup(
            None, errno.EINVAL, "vm.cfg:1: warning: value `-1' is smaller than minimum bound '0'"
        ),
    ),
    (
        "above",
        "n = 0x10\n",
        0,
        10,
        Lookup(
            None, errno.EINVAL, "vm.cfg:1: warning: value `16' is greater than maximum bound '10'"
        ),
    ),
]


@pytest.mark.parametrize(
    ("text", "lo", "hi", "expected"), [v[1:] for v in BOUNDED], ids=[v[0] for v in BOUNDED]
)
def test_get_bounded_long(text: str, lo: int, hi: int, expected: Lookup[int]) -> None:
    assert xlcfg.parse(text, SRC).get_bounded_long("n", lo, hi) == expected


@pytest.mark.parametrize(
    ("text", "expected"), [("b = 0\n", False), ("b = 2\n", True), ("b = 0x0\n", False)]
)
def test_get_defbool_is_non_zero(text: str, expected: bool) -> None:
    assert xlcfg.parse(text, SRC).get_defbool("b") == Lookup(expected)


def test_get_string_of_a_list_warns_and_absent_is_silent() -> None:
    cfg = xlcfg.parse("disk = ['a']\n", SRC)
    assert cfg.get_string("disk") == Lookup(
        None,
        errno.EINVAL,
        "vm.cfg:1: warning: parameter `disk' is a list but should be a single value",
    )
    assert cfg.get_string("name") == Lookup(None, errno.ESRCH)


def test_get_string_of_a_number_is_its_text() -> None:
    assert xlcfg.parse("memory = 0x10\n", SRC).get_string("memory") == Lookup("0x10")


# (text, expected get_list Lookup): xlu_cfg_get_list never turns a single value into a list
LISTS = [
    ("list", "cpus = ['0', 1]\n", Lookup(("0", "1"))),
    ("nested", "cpus = [[1], 2]\n", Lookup((("1",), "2"))),
    ("absent", "name = 'x'\n", Lookup(None, errno.ESRCH)),
    (
        "single-value",
        "\ncpus = '0-3'\n",
        Lookup(
            None,
            errno.EINVAL,
            "vm.cfg:2: warning: parameter `cpus' is a single value but should be a list",
        ),
    ),
]


@pytest.mark.parametrize(("text", "expected"), [v[1:] for v in LISTS], ids=[v[0] for v in LISTS])
def test_get_list(text: str, expected: Lookup[tuple[Value, ...]]) -> None:
    assert xlcfg.parse(text, SRC).get_list("cpus") == expected


STRING_LISTS = [
    ("strings", "args = ['-a', 'b']\n", Lookup(["-a", "b"])),
    ("numbers-too", "args = [1, 0x2]\n", Lookup(["1", "0x2"])),
    ("empty", "args = []\n", Lookup([])),
    # a nested list becomes a NULL entry, and NULL ends a libxl_string_list
    ("cut-at-nested-list", "args = ['a', ['b'], 'c']\n", Lookup(["a"])),
    (
        "single-value",
        "args = 'a b'\n",
        Lookup(
            None,
            errno.EINVAL,
            "vm.cfg:1: warning: parameter `args' is a single value but should be a list",
        ),
    ),
]


@pytest.mark.parametrize(
    ("text", "expected"), [v[1:] for v in STRING_LISTS], ids=[v[0] for v in STRING_LISTS]
)
def test_get_list_as_string_list(text: str, expected: Lookup[list[str]]) -> None:
    assert xlcfg.parse(text, SRC).get_list_as_string_list("args") == expected


def test_has() -> None:
    cfg = xlcfg.parse("a = 1\nb += []\n", SRC)
    assert (cfg.has("a"), cfg.has("b"), cfg.has("c")) == (True, True, False)


def syntax(unexpected: str, expecting: str) -> str:
    return f"syntax error, unexpected {unexpected}, expecting {expecting}"


STMT = "$end or IDENT or NEWLINE or ';'"
VALUE = "STRING or NUMBER or '['"

# (text, line, near, reason): the first line libxlu's yyerror prints. Lines come from the token's
# line; a NEWLINE token is dated one line early and then yyerror takes one more off.
ERRORS = [
    ("missing-equals", "name = 'x'\nmemory 512\n", 2, "`512'", syntax("NUMBER", "+= or '='")),
    (
        "missing-equals-at-newline",
        "a = 1\n\nname\n",
        2,
        "<newline>",
        syntax("NEWLINE", "+= or '='"),
    ),
    ("missing-equals-at-comment", "name # why\n", 0, "`# why'", syntax("NEWLINE", "+= or '='")),
    ("missing-equals-at-end", "a = 1\nname", 2, "`'", syntax("$end", "+= or '='")),
    ("missing-value", "a = 1\nmemory =\n", 1, "<newline>", syntax("NEWLINE", VALUE)),
    ("missing-value-first-line", "memory =\n", 0, "<newline>", syntax("NEWLINE", VALUE)),
    ("equals-at-start", "\n\n= 1\n", 3, "`='", syntax("'='", STMT)),
    ("value-at-start", "'x'\n", 1, "`'x''", syntax("STRING", STMT)),
    ("append-op-at-start", "+= 1\n", 1, "`+='", syntax("+=", STMT)),
    ("key-starts-with-digit", "9lives = 1\n", 1, "`9'", syntax("NUMBER", STMT)),
    ("ident-as-value", "type = hvm\n", 1, "`hvm'", syntax("IDENT", VALUE)),
    ("two-values", "a = 1 2\n", 1, "`2'", syntax("NUMBER", "$end")),
    ("unit-suffix-is-an-ident", "memory = 1g\n", 1, "`g'", syntax("IDENT", "$end")),
    ("two-statements-on-a-line", "a = [1] b = 2\n", 1, "`b'", syntax("IDENT", "$end")),
    ("list-missing-comma", "a = [1 2]\n", 1, "`2'", syntax("NUMBER", "']'")),
    ("list-double-comma", "a = [1,,2]\n", 1, "`,'", syntax("','", "']'")),
    ("list-lone-comma", "a = [,]\n", 1, "`,'", syntax("','", "']'")),
    ("list-with-equals", "a = [b=1]\n", 1, "`b'", syntax("IDENT", "']'")),
    # at the end of input the line is the last token's, here the NEWLINE ending line 2
    ("unterminated-list", "name = 'x'\ndisk = [ 'a',\n", 2, "`'", syntax("$end", "']'")),
    ("unterminated-nested-list", "v = [[1],\n [2\n\n", 3, "`'", syntax("$end", "']'")),
    # a quote with no partner on its line is a stray character: the rest of the word goes with it
    ("unterminated-string", 'a = 1\nname = "vm 1\nb = 2\n', 2, "`\"vm'", "lexical error"),
    ("unterminated-string-at-end", 'name = "vm', 1, "`\"vm'", "lexical error"),
    ("escaped-closing-quote", r"a = 'x\'" + "\n", 1, r"`'x\''", "lexical error"),
    ("uppercase-key", "Memory = 1\n", 1, "`Memory'", "lexical error"),
    ("uppercase-inside-key", "memOry = 1\n", 1, "`Ory'", "lexical error"),
    ("underscore-key", "a = 1\n_x = 1\n", 2, "`_x'", "lexical error"),
    ("unit-suffix-uppercase", "memory = 512M\n", 1, "`M'", "lexical error"),
    ("hex-uppercase-digit", "memory = 0x1F\n", 1, "`F'", "lexical error"),
    ("crlf", "a = 1\r\nb = 2\r\n", 1, "`\r'", "lexical error"),
    ("comment-without-final-newline", "a = 1\n# end", 2, "`#'", "lexical error"),
    ("non-ascii-outside-strings", "a = é\n", 1, "`é'", "lexical error"),
    (
        "unknown-escape",
        r'a = "\q"' + "\n",
        1,
        r'`"\q"' + "'",
        "invalid character after backlash in quoted string",
    ),
    (
        "eight-is-no-escape",
        r'a = "\8"' + "\n",
        1,
        r'`"\8"' + "'",
        "invalid character after backlash in quoted string",
    ),
    # \x skips one char and then demands more than the 2 it can read: it always fails
    (
        "hex-escape",
        r'a = "\x41"' + "\n",
        1,
        r'`"\x41"' + "'",
        "invalid digit after backslash hexnumerical character escape in quoted string",
    ),
    # after \1 the window is `2"`: only 1 char is read as a number, 2 are needed
    (
        "short-octal-escape",
        r'a = "\12"' + "\n",
        1,
        r'`"\12"' + "'",
        "invalid digit after backslash octalnumerical character escape in quoted string",
    ),
    (
        "append-string-to-list",
        "a = [1]\na += 'x'\n",
        2,
        "`'x''",
        'can\'t add [list] to "string" or vice versa',
    ),
    # reported when the value ends: the line and text are those of its closing ']'
    (
        "append-list-to-string",
        "a = 'x'\na += [1,\n2\n]\n",
        4,
        "`]'",
        'can\'t add [list] to "string" or vice versa',
    ),
    ("first-error-wins", "a = [1 2]\nB = 1\n", 1, "`2'", syntax("NUMBER", "']'")),
]


@pytest.mark.parametrize(
    ("text", "line", "near", "reason"), [v[1:] for v in ERRORS], ids=[v[0] for v in ERRORS]
)
def test_syntax_errors_match_libxlu(text: str, line: int, near: str, reason: str) -> None:
    with pytest.raises(ConfigError) as caught:
        xlcfg.parse(text, SRC)
    assert str(caught.value) == f"vm.cfg:{line}: config parsing error near {near}: {reason}"
    assert (caught.value.line, caught.value.reason) == (line, reason)


def test_config_error_is_a_value_error() -> None:
    assert issubclass(ConfigError, ValueError)


# The Python hint follows any error if the lexer saw one of + - . ( ) : outside strings before
# bison stopped; bison recovers at the next newline but gives up after a complete assignment.
PYTHON = [
    ("arithmetic", "memory = 512 + 1\n", True),
    ("negative-number", "memory = -1\n", True),
    ("call", "disk = f(1)\n", True),
    ("inside-string-does-not-count", "a = '1.5'\nb = \n", False),
    ("inside-comment-does-not-count", "a = 1 # x: y\nb = \n", False),
    ("later-line-after-recovery", "a =\nb = 1.5\n", True),
    ("not-reached-after-abort", "a = 1 b\nc = 1.5\n", False),
]


@pytest.mark.parametrize(("text", "hint"), [v[1:] for v in PYTHON], ids=[v[0] for v in PYTHON])
def test_python_hint(text: str, hint: bool) -> None:
    with pytest.raises(ConfigError) as caught:
        xlcfg.parse(text, SRC)
    assert caught.value.likely_python is hint


@pytest.mark.parametrize("text", ["a = 1 +", "a = 1\n#", "a = 'x';("])
def test_one_stray_char_at_the_very_end_is_ignored(text: str) -> None:
    # flex hits the end of input before its error rule runs, so nothing is reported
    assert xlcfg.parse(text, SRC).has("a")


def test_python_warning_text() -> None:
    assert xlcfg.PYTHON_WARNING[0] == "warning: Config file looks like it contains Python code."


EXTRA = [
    ("none", [], ""),
    (
        "each-arg-a-line-between-newlines",
        ["memory=1024", "name='b'"],
        "\nmemory=1024\nname='b'\n\n",
    ),
]


@pytest.mark.parametrize(("args", "expected"), [v[1:] for v in EXTRA], ids=[v[0] for v in EXTRA])
def test_extra_lines_as_xl_create_appends_them(args: list[str], expected: str) -> None:
    # create_domain: "\n%s\n" around the args, each already followed by "\n"
    assert xlcfg.extra_lines(args) == expected


def test_extra_lines_rejects_an_arg_without_equals() -> None:
    with pytest.raises(ValueError, match="expected KEY=VALUE"):
        xlcfg.extra_lines(["vm.cfg"])


def test_parse_file_with_extra_args_overrides_the_file(tmp_path: Path) -> None:
    path = tmp_path / "vm.cfg"
    path.write_text("name = 'a'\nmemory = 512\n")
    cfg = xlcfg.parse_file(path, ["memory=1024"])
    assert (cfg.get_string("name"), cfg.get_long("memory")) == (Lookup("a"), Lookup(1024))


def test_extra_arg_lines_follow_the_file_after_a_blank_line(tmp_path: Path) -> None:
    # file lines 1-2, the appended "\n" makes an empty line 3, the arg is line 4
    path = tmp_path / "vm.cfg"
    path.write_text("name = 'a'\nmemory = 512\n")
    got = xlcfg.parse_file(path, ["memory=12x"]).get_long("memory")
    assert got == Lookup(
        None, errno.EINVAL, f"{path}:4: warning: parameter `memory' is not a valid number"
    )


def test_extra_args_end_a_file_without_final_newline(tmp_path: Path) -> None:
    # "b = 1" + "\nx=2\n\n": the arg is line 2, and the file's last statement is closed
    path = tmp_path / "vm.cfg"
    path.write_text("b = 1")
    cfg = xlcfg.parse_file(path, ["x=2", "b=3"])
    assert (cfg.get_long("b"), cfg.get_long("x")) == (Lookup(3), Lookup(2))


def test_parse_file_names_errors_after_the_path_as_given(tmp_path: Path) -> None:
    path = tmp_path / "bad.cfg"
    path.write_text("memory 1\n")
    with pytest.raises(ConfigError, match=rf"^{path}:1: config parsing error near `1'"):
        xlcfg.parse_file(path)
