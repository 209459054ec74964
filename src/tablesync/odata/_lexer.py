"""Split OData expression text into tokens, turning every literal into an AST :class:`Literal`.

Both dialects are read: v2 typed literals (``datetime'…'``, ``datetimeoffset'…'``,
``guid'…'``, number suffixes ``L M D F``) and v4 bare literals (``2001-02-03T00:00:00Z``,
``2001-02-03``, ``12:30:00``, bare GUIDs) that appear inside ``cast(…)`` or on their own.
"""

from __future__ import annotations

import datetime as dt
import decimal
import enum
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from .._exceptions import ODataSyntaxError
from ..protocol.dates import parse_datetime
from .ast import Literal, LiteralKind

_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1


class TokenKind(enum.Enum):
    """What a token is."""

    LITERAL = "literal"
    NAME = "name"
    LPAREN = "'('"
    RPAREN = "')'"
    COMMA = "','"
    MINUS = "'-'"
    END = "end of input"


@dataclass(frozen=True, slots=True)
class Token:
    """One token and where it starts in the text."""

    kind: TokenKind
    text: str
    position: int
    literal: Literal | None = None

    def describe(self) -> str:
        """How an error message names this token."""
        if self.kind is TokenKind.END:
            return "the end of the input"
        return repr(self.text)


_SPACE = re.compile(r"[ \t\r\n]+", re.ASCII)
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*", re.ASCII)
_HEX = "[0-9A-Fa-f]"
_GUID = re.compile(
    rf"{_HEX}{{8}}-{_HEX}{{4}}-{_HEX}{{4}}-{_HEX}{{4}}-{_HEX}{{12}}(?![\w-])", re.ASCII
)
# A bare v4 DateTimeOffset must carry an offset. The offset's "+" may arrive as "%2B" (an
# extra round of percent-encoding) or as a space (a "+" decoded as form data); both mean "+".
_OFFSET = r"(?:Z|z|[+-]\d{2}:?\d{2}|%2[Bb]\d{2}:?\d{2}| \d{2}:\d{2}(?=\s*[,)]))"
_DATETIME = re.compile(
    rf"\d{{4}}-\d{{2}}-\d{{2}}T\d{{2}}:\d{{2}}(?::\d{{2}}(?:\.\d+)?)?{_OFFSET}", re.ASCII
)
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}(?![\w:.-])", re.ASCII)
_TIME = re.compile(r"\d{2}:\d{2}(?::\d{2}(?:\.\d{1,12})?)?(?![\w:.-])", re.ASCII)
_NUMBER = re.compile(
    r"-?\d+(?P<frac>\.\d+)?(?P<exp>[eE][+-]?\d+)?(?P<suffix>[LlMmDdFf])?(?!\w)", re.ASCII
)
_KEYWORD_LITERALS = {
    "null": Literal(None, LiteralKind.NULL),
    "true": Literal(True, LiteralKind.BOOL),
    "false": Literal(False, LiteralKind.BOOL),
}
_DIGITS = frozenset("0123456789")
_SIMPLE = {"(": TokenKind.LPAREN, ")": TokenKind.RPAREN, ",": TokenKind.COMMA}
#: Names that are operators, never properties.
OPERATOR_WORDS = frozenset(
    {
        "eq",
        "ne",
        "gt",
        "ge",
        "lt",
        "le",
        "and",
        "or",
        "not",
        "in",
        "add",
        "sub",
        "mul",
        "div",
        "mod",
    }
)


def tokenize(text: str) -> list[Token]:
    """Split ``text`` into tokens, ending with an ``END`` token.

    Raises:
        ODataSyntaxError: at the first character that cannot start a token, or a malformed
            literal.
    """
    lexer = _Lexer(text)
    return lexer.run()


class _Lexer:
    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0
        self.tokens: list[Token] = []

    def run(self) -> list[Token]:
        while True:
            space = _SPACE.match(self.text, self.pos)
            if space:
                self.pos = space.end()
            if self.pos >= len(self.text):
                self.tokens.append(Token(TokenKind.END, "", len(self.text)))
                return self.tokens
            self.tokens.append(self._next())

    def error(self, message: str, position: int | None = None) -> ODataSyntaxError:
        where = self.pos if position is None else position
        return ODataSyntaxError(message, text=self.text, position=where)

    def _next(self) -> Token:
        char = self.text[self.pos]
        if char in _SIMPLE:
            return self._take(_SIMPLE[char], 1)
        if char == "'":
            return self._string()
        if char in _DIGITS or (char == "-" and self._starts_negative_number()):
            return self._number_like()
        if char == "-":
            return self._take(TokenKind.MINUS, 1)
        if char.isascii() and (char.isalpha() or char == "_"):
            return self._name_like()
        if char == "/":
            raise self.error("unexpected character '/': property paths are not supported")
        raise self.error(f"unexpected character {char!r}")

    def _take(self, kind: TokenKind, length: int, literal: Literal | None = None) -> Token:
        token = Token(kind, self.text[self.pos : self.pos + length], self.pos, literal)
        self.pos += length
        return token

    def _starts_negative_number(self) -> bool:
        # After an operand ("x -5", "f() -5") a "-" can only be a misplaced operator; after
        # an operator word, "(", "," or at the start it is the sign of a number.
        if self.text[self.pos + 1 : self.pos + 2] not in _DIGITS:
            return False
        if not self.tokens:
            return True
        previous = self.tokens[-1]
        if previous.kind is TokenKind.NAME:
            return previous.text.lower() in OPERATOR_WORDS
        return previous.kind not in (TokenKind.LITERAL, TokenKind.RPAREN)

    def _string(self) -> Token:
        value, end = read_quoted(self.text, self.pos, self.error)
        literal = Literal(value, LiteralKind.STRING)
        return self._take(TokenKind.LITERAL, end - self.pos, literal)

    def _number_like(self) -> Token:
        for pattern, convert in _BARE_LITERALS:
            match = pattern.match(self.text, self.pos)
            if match:
                return self._take(
                    TokenKind.LITERAL, match.end() - self.pos, self._convert(convert, match[0])
                )
        match = _NUMBER.match(self.text, self.pos)
        if match is None:
            raise self.error(f"malformed number {self._word()!r}")
        literal = self._number(match)
        return self._take(TokenKind.LITERAL, match.end() - self.pos, literal)

    def _convert(self, convert: Callable[[str], Literal], raw: str) -> Literal:
        try:
            return convert(raw)
        except (ValueError, OverflowError) as exc:
            raise self.error(f"invalid literal {raw!r} ({exc})") from None

    def _number(self, match: re.Match[str]) -> Literal:
        raw, suffix = match[0], (match["suffix"] or "").lower()
        digits = raw[:-1] if suffix else raw
        if match["exp"] or suffix in ("d", "f"):
            value = float(digits)
            if value in (float("inf"), float("-inf")):
                raise self.error(f"number out of range: {raw!r}")
            return Literal(value, LiteralKind.FLOAT)
        if match["frac"] or suffix == "m":
            return Literal(decimal.Decimal(digits), LiteralKind.DECIMAL)
        number = int(digits)
        if not _INT64_MIN <= number <= _INT64_MAX:
            raise self.error(f"integer out of range (64-bit): {raw!r}")
        return Literal(number, LiteralKind.INT)

    def _word(self) -> str:
        end = self.pos + 1
        while end < len(self.text) and (self.text[end].isalnum() or self.text[end] in "._-:"):
            end += 1
        return self.text[self.pos : end]

    def _name_like(self) -> Token:
        guid = _GUID.match(self.text, self.pos)
        if guid:
            literal = Literal(uuid.UUID(guid[0]), LiteralKind.GUID)
            return self._take(TokenKind.LITERAL, guid.end() - self.pos, literal)
        match = _NAME.match(self.text, self.pos)
        assert match is not None  # the caller saw a letter or "_"
        name = match[0]
        if self.text.startswith("'", match.end()):
            return self._typed_literal(name)
        keyword = _KEYWORD_LITERALS.get(name.lower())
        if keyword is not None:
            return self._take(TokenKind.LITERAL, len(name), keyword)
        return self._take(TokenKind.NAME, len(name))

    def _typed_literal(self, prefix: str) -> Token:
        convert = _TYPED_PREFIXES.get(prefix.lower())
        if convert is None:
            raise self.error(f"unsupported typed literal {prefix}'…'")
        quote = self.pos + len(prefix)
        raw, end = read_quoted(self.text, quote, self.error)
        try:
            literal = convert(raw)
        except (ValueError, OverflowError):
            raise self.error(f"invalid {prefix.lower()} literal {raw!r}", quote + 1) from None
        return self._take(TokenKind.LITERAL, end - self.pos, literal)


def read_quoted(
    text: str, start: int, error: Callable[[str, int], ODataSyntaxError]
) -> tuple[str, int]:
    """Read the single-quoted string at ``start`` (``''`` is a quote); return it and its end."""
    parts: list[str] = []
    pos = start + 1
    while True:
        close = text.find("'", pos)
        if close < 0:
            raise error("unterminated string: missing closing quote", start)
        parts.append(text[pos:close])
        if text.startswith("'", close + 1):
            parts.append("'")
            pos = close + 2
            continue
        return "".join(parts), close + 1


def datetime_literal(raw: str) -> Literal:
    """Read a date/time in any offset form the two dialects use (see ``_OFFSET``)."""
    text = raw.strip().replace("%2B", "+").replace("%2b", "+")
    # "T…00:00:00.000 01:00": a "+" that was decoded as a space.
    text = re.sub(r"(T[\d:.]+) (\d{2}:?\d{2})$", r"\1+\2", text)
    return Literal(parse_datetime(text), LiteralKind.DATETIME)


def date_literal(raw: str) -> Literal:
    """Read ``YYYY-MM-DD``."""
    return Literal(dt.date.fromisoformat(raw), LiteralKind.DATE)


def time_literal(raw: str) -> Literal:
    """Read ``hh:mm[:ss[.fffffff]]``; digits beyond the microsecond are dropped."""
    head, _, frac = raw.partition(".")
    parts = [int(part) for part in head.split(":")] + [0]
    micro = int((frac + "000000")[:6]) if frac else 0
    return Literal(dt.time(parts[0], parts[1], parts[2], micro), LiteralKind.TIME)


def guid_literal(raw: str) -> Literal:
    """Read a GUID in its dashed form."""
    if not _GUID.fullmatch(raw.strip()):
        raise ValueError(f"not a GUID: {raw!r}")
    return Literal(uuid.UUID(raw.strip()), LiteralKind.GUID)


_TYPED_PREFIXES: dict[str, Callable[[str], Literal]] = {
    "datetime": datetime_literal,
    "datetimeoffset": datetime_literal,
    "guid": guid_literal,
    "date": date_literal,
}
_BARE_LITERALS: tuple[tuple[re.Pattern[str], Callable[[str], Literal]], ...] = (
    (_GUID, guid_literal),
    (_DATETIME, datetime_literal),
    (_DATE, date_literal),
    (_TIME, time_literal),
)
