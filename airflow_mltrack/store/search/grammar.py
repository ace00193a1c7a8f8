"""The search language's grammar: MLflow's ``search_runs`` syntax, read into typed nodes.

A filter is comparisons joined by ``AND`` / ``OR`` (``AND`` binds tighter; parentheses group)::

    metrics.validation.accuracy > 0.9 and params.optimizer = 'adam'
    (tags.baseline IS NOT NULL or attributes.status IN ('Completed', 'Running')) and params.lr < 0.05

An order-by is ``<key> [ASC|DESC]`` clauses, comma-separated (or one per list item). Keys are
``<entity>.<name>``, or a bare attribute name as in MLflow (``start_time DESC``); a name with spaces or dots is quoted with backticks or double quotes
(``metrics.`val.acc```). Strings take single or double quotes (a quote inside is doubled or
backslash-escaped). What each entity accepts is checked here too (:mod:`.keys`), so every mistake is a
:class:`SearchError` naming the token and its position, before any SQL exists.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from airflow_mltrack.errors import MLTrackError
from airflow_mltrack.store.search import keys as k

MAX_EXPRESSION = 4000  # characters of a filter or an order-by
MAX_COMPARISONS = 100
MAX_DEPTH = 20  # nested parentheses
MAX_IN_VALUES = 1000

SYNTAX_HINT = "metrics.validation.accuracy > 0.9 and params.optimizer = 'adam' and tags.baseline IS NOT NULL"


class SearchError(MLTrackError):
    """A filter or order-by that cannot be read: names the token and its 0-based position."""

    def __init__(self, field: str, expression: str, position: int | None, token: str, reason: str) -> None:
        self.expression = expression
        self.position = position
        self.token = token
        where = f" at position {position}" if position is not None else ""
        super().__init__(field, token, f"{reason}{where}")


@dataclass(frozen=True)
class Comparison:
    """``key op value``. ``op``: = != < <= > >= LIKE ILIKE NOT LIKE NOT ILIKE IN NOT IN IS NULL IS NOT NULL;
    ``value``: a str, int or float, a tuple of them (IN), or None (IS NULL)."""

    key: k.Key
    op: str
    value: Any
    position: int


@dataclass(frozen=True)
class BoolOp:
    """``AND`` or ``OR`` of two or more nodes."""

    op: str
    parts: tuple[Comparison | BoolOp, ...]


Node = Comparison | BoolOp


@dataclass(frozen=True)
class OrderKey:
    """One order-by clause: a sortable key and its direction."""

    key: k.Key
    descending: bool


@dataclass(frozen=True)
class Token:
    kind: str  # word, number, string, quoted (a backtick name), op, punct, end
    text: str  # as written
    value: Any  # the word / number / unquoted string
    position: int


_NUMBER = re.compile(r"-?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")
_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_\-/:@]*")
_OPS = ("!=", "<>", ">=", "<=", "==", "=", "<", ">")
KEYWORDS = frozenset({"AND", "OR", "NOT", "IN", "LIKE", "ILIKE", "IS", "NULL", "ASC", "DESC"})


def tokenize(text: str, field: str) -> list[Token]:
    """The tokens of ``text`` followed by an ``end`` token."""
    if len(text) > MAX_EXPRESSION:
        raise SearchError(
            field, text, MAX_EXPRESSION, text[:20] + "...", f"longer than {MAX_EXPRESSION} characters"
        )
    tokens: list[Token] = []
    i, n = 0, len(text)
    while i < n:
        char = text[i]
        if char.isspace():
            i += 1
        elif char in "(),.":
            tokens.append(Token("punct", char, char, i))
            i += 1
        elif char in "'\"`":
            end, value = _quoted(text, i, field)
            kind = "quoted" if char == "`" else "string"
            tokens.append(Token(kind, text[i:end], value, i))
            i = end
        elif text.startswith(_OPS, i):
            op = next(o for o in _OPS if text.startswith(o, i))
            tokens.append(Token("op", op, {"<>": "!=", "==": "="}.get(op, op), i))
            i += len(op)
        elif (match := _NUMBER.match(text, i)) and not (tokens and tokens[-1].text == "."):
            number = match.group()
            value: Any = float(number) if any(c in number for c in ".eE") else int(number)
            tokens.append(Token("number", number, value, i))
            i = match.end()
        elif match := (_WORD.match(text, i) or re.compile(r"\d+").match(text, i)):
            tokens.append(Token("word", match.group(), match.group(), i))
            i = match.end()
        else:
            raise SearchError(field, text, i, char, "unexpected character")
    tokens.append(Token("end", "", None, n))
    return tokens


def _quoted(text: str, start: int, field: str) -> tuple[int, str]:
    """(index after the closing quote, the unquoted text) of the quoted token at ``start``."""
    quote, out, i = text[start], [], start + 1
    while i < len(text):
        char = text[i]
        if char == "\\" and i + 1 < len(text):
            out.append(text[i + 1])
            i += 2
        elif char == quote and text[i + 1 : i + 2] == quote:
            out.append(quote)
            i += 2
        elif char == quote:
            return i + 1, "".join(out)
        else:
            out.append(char)
            i += 1
    raise SearchError(field, text, start, text[start : start + 20], f"unterminated {quote} quote")


class _Parser:
    def __init__(self, text: str, field: str) -> None:
        self.text, self.field = text, field
        self.tokens = tokenize(text, field)
        self.i = 0
        self.comparisons = 0

    # -- tokens ------------------------------------------------------------------------------------
    @property
    def tok(self) -> Token:
        return self.tokens[self.i]

    def error(self, reason: str, token: Token | None = None) -> SearchError:
        token = token or self.tok
        shown = token.text or "end of expression"
        return SearchError(self.field, self.text, token.position, shown, reason)

    def keyword(self, *words: str) -> bool:
        """Consume the next token if it is one of ``words`` (case-insensitive)."""
        if self.tok.kind == "word" and self.tok.text.upper() in words:
            self.i += 1
            return True
        return False

    def expect_punct(self, char: str) -> Token:
        if self.tok.kind != "punct" or self.tok.text != char:
            raise self.error(f"expected '{char}'")
        token = self.tok
        self.i += 1
        return token

    # -- filter ------------------------------------------------------------------------------------
    def expression(self, depth: int = 0) -> Node:
        if depth > MAX_DEPTH:
            raise self.error(f"parentheses nested deeper than {MAX_DEPTH}")
        parts = [self.conjunction(depth)]
        while self.keyword("OR"):
            parts.append(self.conjunction(depth))
        return parts[0] if len(parts) == 1 else BoolOp("OR", tuple(parts))

    def conjunction(self, depth: int) -> Node:
        parts = [self.primary(depth)]
        while self.keyword("AND"):
            parts.append(self.primary(depth))
        return parts[0] if len(parts) == 1 else BoolOp("AND", tuple(parts))

    def primary(self, depth: int) -> Node:
        if self.tok.kind == "punct" and self.tok.text == "(":
            self.i += 1
            node = self.expression(depth + 1)
            self.expect_punct(")")
            return node
        if self.tok.kind == "word" and self.tok.text.upper() == "NOT":
            raise self.error("NOT is written in the comparison: !=, NOT LIKE, NOT IN, IS NOT NULL")
        return self.comparison()

    def key(self) -> k.Key:
        start = self.tok
        if start.kind != "word" or start.text.upper() in KEYWORDS:
            raise self.error(
                "expected a key such as metrics.<name>, params.<name>, tags.<name>, attributes.<name>"
            )
        self.i += 1
        segments: list[str] = []
        while self.tok.kind == "punct" and self.tok.text == ".":
            self.i += 1
            if self.tok.kind in ("word", "quoted", "string", "number") and str(self.tok.value) != "":
                segments.append(str(self.tok.value) if self.tok.kind != "number" else self.tok.text)
                self.i += 1
            else:
                raise self.error("expected a name after '.'")
        end = self.tokens[self.i - 1]
        text = self.text[start.position : end.position + len(end.text)]
        try:
            return k.make_key(start.text, segments, text)
        except k.KeyProblem as problem:
            raise SearchError(self.field, self.text, start.position, text, str(problem)) from None

    def comparison(self) -> Comparison:
        self.comparisons += 1
        if self.comparisons > MAX_COMPARISONS:
            raise self.error(f"more than {MAX_COMPARISONS} comparisons")
        position = self.tok.position
        key = self.key()
        op_token = value_token = self.tok
        if self.keyword("IS"):
            negated = self.keyword("NOT")
            if not self.keyword("NULL"):
                raise self.error("expected NULL after IS" + (" NOT" if negated else ""))
            op, value = ("IS NOT NULL" if negated else "IS NULL"), None
        else:
            negated = self.keyword("NOT")
            if self.keyword("IN"):
                op, value = ("NOT IN" if negated else "IN"), self.value_list()
            elif self.keyword("LIKE", "ILIKE"):
                word = self.tokens[self.i - 1].text.upper()
                op = f"NOT {word}" if negated else word
                value_token = self.tok
                value = self.literal()
                if not isinstance(value, str):
                    raise self.error(f"{word} needs a quoted pattern", self.tokens[self.i - 1])
            elif negated:
                raise self.error("expected IN, LIKE or ILIKE after NOT")
            elif self.tok.kind == "op":
                op = self.tok.value
                self.i += 1
                value_token = self.tok
                value = self.literal()
            else:
                raise self.error("expected a comparison: = != < <= > >= LIKE ILIKE IN IS NULL")
        try:
            value = k.check_comparison(key, op, value)
        except k.KeyProblem as problem:
            at = op_token if op in ("IS NULL", "IS NOT NULL") or key.entity == "tags" else value_token
            raise SearchError(self.field, self.text, at.position, at.text or op, str(problem)) from None
        return Comparison(key, op, value, position)

    def literal(self) -> Any:
        token = self.tok
        if token.kind in ("string", "number"):
            self.i += 1
            return token.value
        if token.kind == "word" and token.text.upper() in ("TRUE", "FALSE"):
            self.i += 1
            return token.text.lower()
        if token.kind == "word" and token.text.upper() == "NULL":
            raise self.error("compare with NULL using IS NULL or IS NOT NULL")
        raise self.error("expected a value: a number or a quoted string")

    def value_list(self) -> tuple[Any, ...]:
        self.expect_punct("(")
        values = [self.literal()]
        while self.tok.kind == "punct" and self.tok.text == ",":
            self.i += 1
            values.append(self.literal())
            if len(values) > MAX_IN_VALUES:
                raise self.error(f"more than {MAX_IN_VALUES} values in IN")
        self.expect_punct(")")
        return tuple(values)

    # -- order by ----------------------------------------------------------------------------------
    def order_clauses(self) -> list[OrderKey]:
        clauses: list[OrderKey] = []
        while True:
            start = self.tok
            key = self.key()
            try:
                k.check_sortable(key)
            except k.KeyProblem as problem:
                raise SearchError(self.field, self.text, start.position, key.text, str(problem)) from None
            descending = False
            if self.keyword("DESC"):
                descending = True
            else:
                self.keyword("ASC")
            clauses.append(OrderKey(key, descending))
            if self.tok.kind == "punct" and self.tok.text == ",":
                self.i += 1
                continue
            if self.tok.kind != "end":
                raise self.error("expected ASC, DESC, ',' or the end of the clause")
            return clauses


def parse_filter(text: str | None, field: str = "filter") -> Node | None:
    """The filter ``text`` as nodes; None for an empty one."""
    if text is None or not text.strip():
        return None
    parser = _Parser(text, field)
    node = parser.expression()
    if parser.tok.kind != "end":
        raise parser.error("expected AND, OR or the end of the filter")
    return node


def parse_order_by(
    clauses: str | list[str] | tuple[str, ...] | None, field: str = "order_by"
) -> list[OrderKey]:
    """Order-by clauses (a string, or a list of them) as keys; empty ones are skipped."""
    if clauses is None:
        return []
    if isinstance(clauses, str):
        clauses = [clauses]
    found: list[OrderKey] = []
    for clause in clauses:
        if clause and clause.strip():
            found.extend(_Parser(clause, field).order_clauses())
    if len(found) > MAX_COMPARISONS:
        raise SearchError(
            field, ", ".join(clauses), None, f"{len(found)} clauses", f"at most {MAX_COMPARISONS}"
        )
    return found


def parse_columns(columns: list[str] | tuple[str, ...] | None, field: str = "columns") -> list[k.Key]:
    """Column keys (``metrics.<split>.<name>``, ``params.<key>``, ``attributes.<name>``), each read as a
    key; a comma inside one item separates several."""
    found: list[k.Key] = []
    for item in columns or ():
        for part in _split_commas(item):
            parser = _Parser(part, field)
            key = parser.key()
            if parser.tok.kind != "end":
                raise parser.error("expected one key per column")
            if key.entity == "tags":
                raise SearchError(field, part, 0, part, "tags are shown in every row; not a column")
            found.append(key)
    return found


def _split_commas(text: str) -> list[str]:
    """``text`` split at commas outside quotes."""
    parts, current, quote = [], [], None
    for char in text:
        if quote:
            current.append(char)
            if char == quote:
                quote = None
        elif char in "'\"`":
            quote = char
            current.append(char)
        elif char == ",":
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    parts.append("".join(current))
    return [p.strip() for p in parts if p.strip()]


__all__ = [
    "MAX_EXPRESSION",
    "SYNTAX_HINT",
    "BoolOp",
    "Comparison",
    "Node",
    "OrderKey",
    "SearchError",
    "parse_columns",
    "parse_filter",
    "parse_order_by",
    "tokenize",
]
