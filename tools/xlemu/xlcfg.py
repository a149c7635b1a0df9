"""Parser for xl.cfg / xl.conf files, as Xen's libxlu reads them (libxlu_cfg_l.l, libxlu_cfg_y.y).

Errors and warnings are the lines libxlu prints; the getters mirror xlu_cfg_get_* in libxlu_cfg.c.
"""

from __future__ import annotations

import errno
import os
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, TextIO, TypeAlias, TypeVar

# An atom (string or number, kept as its text) or a list of values; vnuma nests lists.
Value: TypeAlias = "str | tuple[Value, ...]"
T = TypeVar("T")

# Printed after the errors when the lexer met one of + - . ( ) : outside strings and comments.
PYTHON_WARNING = (
    "warning: Config file looks like it contains Python code.",
    "warning:  Arbitrary Python is no longer supported.",
    "warning:  See https://wiki.xen.org/wiki/PythonInXlConfig",
)

_LONG_MIN, _LONG_MAX = -(2**63), 2**63 - 1
# The lexer's rules, ordered so that Python's first match is flex's longest match.
_TOKEN = re.compile(
    r"(?P<IDENT>[a-z][._0-9a-z]*)|(?P<NUMBER>[0-9][0-9a-fx]*)|(?P<SPACE>[ \t])|(?P<ADD>\+=)"
    r"|(?P<PUNCT>[,\[\]=;])|(?P<NEWLINE>\n|#.*\n)"
    r"|(?P<STRING>'(?:[^'\\\n]|\\.)*'|\"(?:[^\"\\\n]|\\.)*\")|(?P<PYTHONISH>[-+.():])|(?P<BAD>.)"
)
_WORD = re.compile(r"[^ \t\n]*")
_SIMPLE_ESCAPES = {'"': '"', "'": "'", "\\": "\\", "a": "\a", "b": "\b", "f": "\f", "n": "\n",
                   "r": "\r", "t": "\t", "v": "\v"}  # fmt: skip
_STRTOUL10 = re.compile(r"[ \t\n\v\f\r]*[+-]?[0-9]+")
_STRTOL0 = re.compile(r"[ \t\n\v\f\r]*([+-]?)(?:0[xX]([0-9a-fA-F]+)|(0[0-7]*)|([1-9][0-9]*))")
_VALUE_START = ("STRING", "NUMBER", "[")
_BAD_DIGIT = "invalid digit after backslash {}numerical character escape in quoted string"


class ConfigError(ValueError):
    """The first line libxlu prints for a bad file: "SRC:LINE: config parsing error near X: Y"."""

    def __init__(self, source: str, line: int, near: str, reason: str, likely_python: bool):
        super().__init__(f"{source}:{line}: config parsing error near {near}: {reason}")
        self.source, self.line, self.near, self.reason = source, line, near, reason
        self.likely_python = likely_python  # libxlu then also prints PYTHON_WARNING


@dataclass(frozen=True)
class Lookup(Generic[T]):
    """A getter's answer: value, or err (errno: ESRCH absent, EINVAL, ERANGE) and the warning."""

    value: T | None
    err: int = 0
    warning: str | None = None  # the line libxlu prints to its report stream (None if dont_warn)


@dataclass(frozen=True)
class _Tok:
    kind: str  # IDENT NUMBER STRING NEWLINE += = ; , [ ] $end, or LEXERR
    text: str  # what flex's yytext holds (for $end: a char left pending at end of input)
    line: int  # yylloc first_line (for LEXERR: the scanner's line when it reports)
    value: str = ""  # dequoted STRING
    error: str = ""  # LEXERR message, or a STRING's escape error


@dataclass(frozen=True)
class _Setting:
    value: Value
    added: bool  # stored with += (get_long then refuses it)
    line: int  # line of the value's first token


def _dequote(raw: str) -> tuple[str, str]:
    """A quoted token's text and its escape error, per xlu__cfgl_dequote ("" when none)."""
    out, body, i = [], raw[1:-1], 0
    while i < len(body):
        c, i = body[i], i + 1
        if c != "\\":
            out.append(c)
            continue
        nc, i = body[i], i + 1
        if nc in _SIMPLE_ESCAPES:
            out.append(_SIMPLE_ESCAPES[nc])
        elif nc == "x":  # the digit window can never hold enough digits: \x always fails
            return "", _BAD_DIGIT.format("hex")
        elif "0" <= nc <= "7":  # up to 3 more chars read as decimal, 2 needed; no char is stored
            m = _STRTOUL10.match(raw[1 + i : 4 + i])  # the window may take the closing quote
            if not m or m.end() <= 1:
                return "", _BAD_DIGIT.format("octal")
            i += m.end()
        else:
            return "", "invalid character after backlash in quoted string"
    return "".join(out), ""


class _Lexer:
    """Tokens of libxlu_cfg_l.l, lexical errors as LEXERR tokens, in the order flex finds them."""

    def __init__(self, text: str):
        self.text, self.likely_python = text, False

    def __iter__(self) -> Iterator[_Tok]:
        text, pos, line, last_line = self.text, 0, 1, 1
        while pos < len(text):
            m = _TOKEN.match(text, pos)
            assert m and m.lastgroup
            kind, word, pos = m.lastgroup, m.group(), m.end()
            if kind in ("PYTHONISH", "BAD"):
                self.likely_python |= kind == "PYTHONISH"
                if pos == len(text) and len(word.encode("utf-8", "surrogateescape")) == 1:
                    # flex meets the end of input before the error rule: no error, yytext kept
                    yield _Tok("$end", word, last_line)
                    return
                if text[pos : pos + 1] == "\n":  # error, then a NEWLINE dated to the next line
                    yield _Tok("LEXERR", word + "\n", line + 1, error="lexical error")
                    line, pos, last_line = line + 1, pos + 1, line + 1
                    yield _Tok("NEWLINE", "\n", line)
                    continue
                rest = pos + 1 if text[pos : pos + 1] in (" ", "\t") else _word_end(text, pos)
                yield _Tok("LEXERR", word + text[pos:rest], line, error="lexical error")
                pos = rest
            elif kind == "SPACE":
                continue
            elif kind == "STRING":
                value, error = _dequote(word)
                last_line = line
                yield _Tok("STRING", word, line, value, error)
            else:
                last_line = line
                yield _Tok(word if kind in ("PUNCT", "ADD") else kind, word, line)
                line += kind == "NEWLINE"
        yield _Tok("$end", "", last_line)


def _word_end(text: str, pos: int) -> int:
    """End of the run of non-blank characters at pos (what the lexer swallows after a bad one)."""
    m = _WORD.match(text, pos)
    return m.end() if m else pos


def _near(tok: _Tok) -> tuple[int, str]:
    """Line and "near ..." text of an error at tok, as libxlu's yyerror shows them."""
    if tok.kind == "$end":  # yytext ends in flex's end-of-buffer NUL, so it is never empty
        return tok.line, f"`{tok.text}'"
    text, line, newline = tok.text, tok.line, ""
    if text.endswith("\n"):  # yyerror takes a line off text ending in a newline
        text, line = text[:-1], line - 1
        newline = "" if text else "<newline>"
    text = text.rstrip(" \t")
    return line, (f"`{text}'" if text else "") + newline


def _name(tok: _Tok) -> str:
    """Bison's name for a token kind, as its verbose syntax errors spell it."""
    return tok.kind if tok.kind.isalpha() or tok.kind in ("$end", "+=") else f"'{tok.kind}'"


class _SyntaxError(Exception):
    """A syntax error; abort when bison has no state left that can shift its error token."""

    def __init__(self, abort: bool):
        self.abort = abort


class _Parser:
    """Recursive descent over libxlu_cfg_y.y's grammar, recovering from errors as bison does.

    libxlu prints every error but fails the file if there was any; we keep the first. Recovery
    matters only for how far the lexer gets, which decides the Python hint.
    """

    def __init__(self, text: str, source: str):
        self.lexer, self.source = _Lexer(text), source
        self.tokens = iter(self.lexer)
        self.settings: dict[str, _Setting] = {}
        self.ahead: _Tok | None = None
        self.last = _Tok("$end", "", 1)
        self.first_error: tuple[int, str, str] | None = None

    def error(self, tok: _Tok, reason: str) -> None:
        if self.first_error is None:
            self.first_error = (*_near(tok), reason)

    def peek(self) -> _Tok:
        while self.ahead is None:  # lexical errors are reported but leave no token
            tok = next(self.tokens)
            if tok.error:
                self.error(tok, tok.error)
            if tok.kind != "LEXERR":
                self.ahead = tok
        return self.ahead

    def take(self) -> _Tok:
        self.last, self.ahead = self.peek(), None
        return self.last

    def unexpected(self, expecting: str, abort: bool = False) -> _SyntaxError:
        tok = self.peek()
        self.error(tok, f"syntax error, unexpected {_name(tok)}, expecting {expecting}")
        return _SyntaxError(abort)

    def file(self) -> dict[str, _Setting]:
        while True:
            try:
                self.statements()
                break
            except _SyntaxError as exc:
                if exc.abort:
                    break
                while self.peek().kind not in ("NEWLINE", "$end"):  # rule `stmt: error NEWLINE`
                    self.take()
                if self.take().kind == "$end":
                    break
        if self.first_error is not None:
            line, near, reason = self.first_error
            raise ConfigError(self.source, line, near, reason, self.lexer.likely_python)
        return self.settings

    def statements(self) -> None:
        while (kind := self.peek().kind) != "$end":
            if kind in ("NEWLINE", ";"):
                self.take()
            elif kind != "IDENT":
                raise self.unexpected("$end or IDENT or NEWLINE or ';'")
            else:
                self.assignment(self.take().text)
                if self.peek().kind not in ("NEWLINE", ";", "$end"):
                    # bison has already reduced the whole file here, so it gives up
                    raise self.unexpected("$end", abort=True)

    def assignment(self, key: str) -> None:
        if self.peek().kind not in ("=", "+="):
            raise self.unexpected("+= or '='")
        added = self.take().kind == "+="
        line = self.peek().line
        value = self.value("STRING or NUMBER or '['")
        prev = self.settings.get(key)
        if added and prev is not None:  # += joins onto the previous value, same kind only
            if isinstance(prev.value, str) != isinstance(value, str):
                self.error(self.last, 'can\'t add [list] to "string" or vice versa')
                return
            value = _join(prev.value, value)
        self.settings[key] = _Setting(value, added, line)

    def value(self, expecting: str) -> Value:
        if self.peek().kind not in _VALUE_START:
            raise self.unexpected(expecting)
        tok = self.take()
        if tok.kind != "[":
            return tok.value if tok.kind == "STRING" else tok.text
        items: list[Value] = []
        self.newlines()
        while self.peek().kind != "]":  # newlines may follow '[', each value and each ','
            if self.peek().kind not in _VALUE_START:
                raise self.unexpected("']'")
            items.append(self.value("']'"))
            self.newlines()
            if self.peek().kind == ",":
                self.take()
                self.newlines()
            elif self.peek().kind != "]":
                raise self.unexpected("']'")
        self.take()
        return tuple(items)

    def newlines(self) -> None:
        while self.peek().kind == "NEWLINE":
            self.take()


def _join(prev: Value, more: Value) -> Value:
    """prev followed by more, for two strings or two lists."""
    if isinstance(prev, str) and isinstance(more, str):
        return prev + more
    assert isinstance(prev, tuple) and isinstance(more, tuple)
    return prev + more


def _strtol(text: str) -> tuple[int | None, int]:
    """C strtol(text, &end, 0) judged by libxlu: (value, 0), (None, ERANGE) or (None, EINVAL)."""
    m = _STRTOL0.match(text)
    if not m:
        return None, errno.EINVAL
    sign, hexdigits, octal, decimal = m.groups()
    n = int(hexdigits, 16) if hexdigits else int(octal, 8) if octal else int(decimal)
    n = -n if sign == "-" else n
    if not _LONG_MIN <= n <= _LONG_MAX:  # strtol's errno is looked at before the trailing text
        return None, errno.ERANGE
    return (n, 0) if m.end() == len(text) else (None, errno.EINVAL)


class Config:
    """A parsed file; the getters follow xlu_cfg_get_* (libxlu_cfg.c), warnings included."""

    def __init__(self, source: str, settings: dict[str, _Setting], report: TextIO | None = None):
        self.source, self._settings, self.report = source, settings, report

    def has(self, key: str) -> bool:
        return key in self._settings

    def _warn(self, line: int, text: str, dont_warn: bool) -> str | None:
        if dont_warn:
            return None
        warning = f"{self.source}:{line}: warning: {text}"
        if self.report is not None:
            print(warning, file=self.report)
        return warning

    def _atom(self, key: str, dont_warn: bool) -> _Setting | Lookup[Any]:
        """The setting when key holds a single value (find_atom), else the failed lookup."""
        set_ = self._settings.get(key)
        if set_ is None:
            return Lookup(None, errno.ESRCH)
        if not isinstance(set_.value, str):
            text = f"parameter `{key}' is a list but should be a single value"
            return Lookup(None, errno.EINVAL, self._warn(set_.line, text, dont_warn))
        return set_

    def get_string(self, key: str, dont_warn: bool = False) -> Lookup[str]:
        found = self._atom(key, dont_warn)
        return found if isinstance(found, Lookup) else Lookup(str(found.value))

    def get_bounded_long(self, key: str, lo: int, hi: int, dont_warn: bool = False) -> Lookup[int]:
        set_ = self._atom(key, dont_warn)
        if isinstance(set_, Lookup):
            return set_
        if set_.added:
            text = f"can't use += with numbers for parameter `{key}'"
            return Lookup(None, errno.EINVAL, self._warn(set_.line, text, dont_warn))
        n, err = _strtol(str(set_.value))
        if err == errno.ERANGE:
            text = f"parameter `{key}' could not be parsed as a number: {os.strerror(err)}"
        elif err:
            text = f"parameter `{key}' is not a valid number"
        elif n is not None and n < lo:
            err, text = errno.EINVAL, f"value `{n}' is smaller than minimum bound '{lo}'"
        elif n is not None and n > hi:
            err, text = errno.EINVAL, f"value `{n}' is greater than maximum bound '{hi}'"
        else:
            return Lookup(n)
        return Lookup(None, err, self._warn(set_.line, text, dont_warn))

    def get_long(self, key: str, dont_warn: bool = False) -> Lookup[int]:
        return self.get_bounded_long(key, _LONG_MIN, _LONG_MAX, dont_warn)

    def get_defbool(self, key: str, dont_warn: bool = False) -> Lookup[bool]:
        got = self.get_long(key, dont_warn)  # any non-zero number is true
        if got.value is None:
            return Lookup(None, got.err, got.warning)
        return Lookup(got.value != 0)

    def get_list(self, key: str, dont_warn: bool = False) -> Lookup[tuple[Value, ...]]:
        set_ = self._settings.get(key)
        if set_ is None:
            return Lookup(None, errno.ESRCH)
        if isinstance(set_.value, str):
            text = f"parameter `{key}' is a single value but should be a list"
            return Lookup(None, errno.EINVAL, self._warn(set_.line, text, dont_warn))
        return Lookup(set_.value)

    def get_list_as_string_list(self, key: str, dont_warn: bool = False) -> Lookup[list[str]]:
        got = self.get_list(key, dont_warn)
        if got.value is None:
            return Lookup(None, got.err, got.warning)
        strings: list[str] = []
        for item in got.value:  # a nested list becomes NULL, which ends libxl's string list
            if not isinstance(item, str):
                break
            strings.append(item)
        return Lookup(strings)


def parse(text: str, source_name: str, report: TextIO | None = None) -> Config:
    """Parse config text (xlu_cfg_readdata); source_name starts every error and warning line."""
    return Config(source_name, _Parser(text, source_name).file(), report)


def parse_file(path: str | Path, extra: Sequence[str] = (), report: TextIO | None = None) -> Config:
    """Parse a file named as given on the command line, plus `xl create` KEY=VALUE arguments."""
    text = Path(path).read_bytes().decode("utf-8", "surrogateescape")
    return parse(text + extra_lines(extra), os.fspath(path), report)  # "./vm.cfg" stays so


def extra_lines(args: Sequence[str]) -> str:
    """What `xl create FILE KEY=VALUE...` appends to the file: newline, a line per arg, newline.

    Later lines win, so the arguments override the file; their line numbers continue the file's.
    """
    for arg in args:
        if "=" not in arg:
            raise ValueError(f"expected KEY=VALUE, got {arg!r}")
    joined = "".join(f"{arg}\n" for arg in args)
    return f"\n{joined}\n" if joined else ""
