"""The SQL-like WHERE language: a hand-written tokenizer and a recursive-descent parser.

Grammar (keywords and function names are case-insensitive)::

    filter     := or_expr EOF
    or_expr    := and_expr ("OR" and_expr)*
    and_expr   := not_expr ("AND" not_expr)*
    not_expr   := "NOT" not_expr | "(" or_expr ")" | predicate
    predicate  := column cmp_op (literal | column)      -- column op column compares two columns
                | column ["NOT"] "BETWEEN" ["SYMMETRIC"] literal "AND" literal
                | column ["NOT"] "IN" "(" [literal ("," literal)*] ")"
                | column "IS" ["NOT"] ("NULL" | "TRUE" | "FALSE")
                | column ["NOT"] ("LIKE" | "ILIKE") 'pattern' ["ESCAPE" 'c']
                | column                                 -- a boolean column: column = TRUE
                | literal cmp_op (column | length)       -- normalised to column op' literal
                | literal ["NOT"] "IN" column            -- list membership
                | length cmp_op literal | length ["NOT"] "BETWEEN" literal "AND" literal
                | contains "(" column "," literal ")"
                | (any | all) "(" column "," list ")"
    length     := ("len" | "length" | "array_length") "(" column ")"   -- elements of a list column
    contains   := "array_contains" | "list_contains" | "array_has" | "list_has"
    any        := "array_contains_any" | "list_has_any" | "array_has_any"
    all        := "array_contains_all" | "list_has_all" | "array_has_all"
    list       := "(" [literal ("," literal)*] ")" | "[" [literal ("," literal)*] "]"
    cmp_op     := "=" | "==" | "!=" | "<>" | "<" | "<=" | ">" | ">="
    literal    := 'string' | number | "TRUE" | "FALSE" | "DATE" 'YYYY-MM-DD'
                | "TIMESTAMP" 'YYYY-MM-DD HH:MM:SS[.ffffff]'
    column     := [A-Za-z_][A-Za-z0-9_]* (not a keyword) | "double-quoted"

Strings use ``''`` for a quote inside; double quotes name columns (``title = "a"`` compares two
columns). Numbers are ASCII digits only, may be negative and have a fraction and an exponent (a
number with ``.`` or ``e`` is a float); integer literals have at most 4,000 digits. ``--`` starts a
comment that runs to the end of the line.

Limits: a tree at most ``MAX_DEPTH`` (2,000) nodes deep (NOT, and AND / OR nested in one another)
and at most 4,000 nested parentheses and NOTs; long flat AND / OR chains have no limit. Every rejected input raises ``FilterError`` (a
``ValueError``) carrying the character offset where the parser stopped and what it expected there.

Semantics (SQL's, as DuckDB and PostgreSQL implement them): a comparison with NULL is NULL, AND /
OR are Kleene, the row passes only when the filter is TRUE. ``x IN ()`` is FALSE and ``x NOT IN ()``
TRUE for a non-NULL ``x``, NULL for a NULL one (DuckDB's answer). Integers are compared exactly with
integer and float literals of any size (``big < 9223372036854775808`` holds for every int64, an
int64 column is never rounded to a float). NaN is greater than every number and equal to itself
(``f > 1e308`` and ``f != 1`` hold for NaN, ``f < 1`` does not). LIKE has no escape character
unless ESCAPE names one.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import NamedTuple

from vecdb.errors import FilterError
from vecdb.filters.ast import (
    FLIPPED_OPS,
    KEYWORDS,
    MAX_DEPTH,
    MAX_INT_DIGITS,
    And,
    Between,
    ColumnCompare,
    Compare,
    Contains,
    ContainsAll,
    ContainsAny,
    Expr,
    In,
    IsBool,
    IsNull,
    Length,
    Like,
    Not,
    Or,
    Scalar,
    deep_recursion,
)

_FUNCTIONS = {
    "ARRAY_CONTAINS": Contains,
    "LIST_CONTAINS": Contains,
    "ARRAY_HAS": Contains,
    "LIST_HAS": Contains,
    "ARRAY_CONTAINS_ANY": ContainsAny,
    "LIST_HAS_ANY": ContainsAny,
    "ARRAY_HAS_ANY": ContainsAny,
    "ARRAY_CONTAINS_ALL": ContainsAll,
    "LIST_HAS_ALL": ContainsAll,
    "ARRAY_HAS_ALL": ContainsAll,
}
_LENGTH = frozenset({"LEN", "LENGTH", "ARRAY_LENGTH"})
_PUNCTUATION = {"(": "LPAREN", ")": "RPAREN", ",": "COMMA", "[": "LBRACKET", "]": "RBRACKET"}
_DIGITS = frozenset("0123456789")


class Token(NamedTuple):
    """One token: kind is IDENT, QIDENT, KEYWORD, STRING, NUMBER, OP, LPAREN, RPAREN, LBRACKET,
    RBRACKET, COMMA or EOF. (A named tuple: a filter seen for the first time is tokenized on the
    query's path.)"""

    kind: str
    text: str  # source text, or for KEYWORD the upper-cased word, for STRING/QIDENT the unquoted value
    pos: int
    value: int | float | None = None

    def describe(self) -> str:
        return "the end of the filter" if self.kind == "EOF" else repr(self.text)


_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")  # an identifier or keyword (ASCII only)


def _is_ident_char(c: str) -> bool:
    return c.isascii() and (c.isalnum() or c == "_")


def _quoted(text: str, start: int, quote: str, what: str) -> tuple[str, int]:
    """Read a quoted string starting at ``text[start] == quote``; return (value, end)."""
    parts: list[str] = []
    i = start + 1
    while True:
        j = text.find(quote, i)
        if j < 0:
            raise FilterError(f"unterminated {what} (no closing {quote})", position=start, text=text)
        parts.append(text[i:j])
        if text.startswith(quote, j + 1):  # doubled quote = one literal quote
            parts.append(quote)
            i = j + 2
            continue
        value = "".join(parts)
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise FilterError(f"{what} is not valid Unicode ({exc.reason})", position=start,
                              text=text) from None
        return value, j + 1


def _number(text: str, start: int) -> tuple[Token, int]:
    """Read ``-?digits[.digits][e[+-]digits]`` (or ``.digits...``) starting at ``start``; ASCII digits only."""
    i = start + 1 if text[start] == "-" else start
    n = len(text)
    digits_start = i
    while i < n and text[i] in _DIGITS:
        i += 1
    is_float = False
    if i < n and text[i] == ".":
        is_float = True
        i += 1
        while i < n and text[i] in _DIGITS:
            i += 1
    if i == digits_start or text[digits_start:i] == ".":
        raise FilterError(f"invalid number {text[start:i + 1]!r}", position=start, text=text)
    if i < n and text[i] in "eE":
        is_float = True
        i += 1
        if i < n and text[i] in "+-":
            i += 1
        if i >= n or text[i] not in _DIGITS:
            raise FilterError("expected digits in the exponent of a number", position=i, text=text)
        while i < n and text[i] in _DIGITS:
            i += 1
    if i < n and (_is_ident_char(text[i]) or text[i] == "." or text[i].isdigit()):
        end = i
        while end < n and (_is_ident_char(text[end]) or text[end] == "." or text[end].isdigit()):
            end += 1
        raise FilterError(f"invalid number {text[start:end]!r} (only ASCII digits 0-9 make numbers)",
                          position=start, text=text)
    raw = text[start:i]
    if not is_float and i - digits_start > MAX_INT_DIGITS:
        raise FilterError(f"integer literal longer than {MAX_INT_DIGITS} digits", position=start, text=text)
    value: int | float = float(raw) if is_float else int(raw)
    if isinstance(value, float) and value in (float("inf"), float("-inf")):
        raise FilterError(f"number {raw[:40]} is out of range", position=start, text=text)
    return Token("NUMBER", raw, start, value), i


def tokenize(text: str) -> list[Token]:
    """Split ``text`` into tokens, ending with an EOF token."""
    tokens: list[Token] = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c.isspace():
            i += 1
        elif c == "-" and text.startswith("--", i):  # a comment, to the end of the line
            end = text.find("\n", i)
            i = n if end < 0 else end + 1
        elif c == "'":
            value, end = _quoted(text, i, "'", "string literal")
            tokens.append(Token("STRING", value, i))
            i = end
        elif c == '"':
            value, end = _quoted(text, i, '"', "quoted column name")
            if not value:
                raise FilterError("empty quoted column name", position=i, text=text)
            tokens.append(Token("QIDENT", value, i))
            i = end
        elif c in _DIGITS or (c in "-." and i + 1 < n and (text[i + 1] in _DIGITS or text[i + 1] == ".")):
            token, i = _number(text, i)
            tokens.append(token)
        elif (word_match := _WORD.match(text, i)) is not None:
            word = word_match.group()
            upper = word.upper()
            if upper in KEYWORDS:
                tokens.append(Token("KEYWORD", upper, i))
            else:
                tokens.append(Token("IDENT", word, i))
            i = word_match.end()
        elif c in _PUNCTUATION:
            tokens.append(Token(_PUNCTUATION[c], c, i))
            i += 1
        elif c in "=<>!":
            two = text[i:i + 2]
            op = two if two in ("!=", "<>", "<=", ">=", "==") else c
            if op == "!":
                raise FilterError("unexpected character '!' (did you mean '!='?)", position=i, text=text)
            tokens.append(Token("OP", "=" if op == "==" else op, i))
            i += len(op)
        else:
            raise FilterError(f"unexpected character {c!r}", position=i, text=text)
    tokens.append(Token("EOF", "", n))
    return tokens


class _Parser:
    """Recursive descent over the token list; one instance per parse."""

    def __init__(self, text: str):
        self.text = text
        self.tokens = tokenize(text)
        self.i = 0
        self.last = len(self.tokens) - 1  # the EOF token, where ``i`` stops
        self.depth = 0  # open parentheses and NOTs around the current token

    # -- token helpers -------------------------------------------------------------------
    def peek(self, ahead: int = 0) -> Token:
        if ahead:
            return self.tokens[min(self.i + ahead, self.last)]
        return self.tokens[self.i]

    def advance(self) -> Token:
        token = self.tokens[self.i]
        if self.i < self.last:
            self.i += 1
        return token

    def at_keyword(self, *words: str) -> bool:
        token = self.tokens[self.i]
        return token.kind == "KEYWORD" and token.text in words

    def error(self, message: str, token: Token | None = None) -> FilterError:
        token = token or self.peek()
        return FilterError(f"{message}, found {token.describe()}", position=token.pos, text=self.text)

    def expect(self, kind: str, what: str) -> Token:
        if self.peek().kind != kind:
            raise self.error(f"expected {what}")
        return self.advance()

    def expect_keyword(self, word: str, context: str) -> None:
        if not self.at_keyword(word):
            raise self.error(f"expected {word} {context}")
        self.advance()

    # -- grammar -------------------------------------------------------------------------
    def parse(self) -> Expr:
        try:
            expr = self.or_expr()
        except FilterError as exc:
            if exc.position is None:  # from a node (a tree too deep, a bad ESCAPE): say where
                raise FilterError(str(exc), position=self.peek().pos, text=self.text) from None
            raise
        token = self.peek()
        if token.kind == "RPAREN":
            raise self.error("unbalanced parentheses: ')' without a matching '('")
        if token.kind != "EOF":
            raise self.error("expected AND, OR or the end of the filter")
        return expr

    def or_expr(self) -> Expr:
        operands = [self.and_expr()]
        while self.at_keyword("OR"):
            self.advance()
            operands.append(self.and_expr())
        return operands[0] if len(operands) == 1 else Or(tuple(operands))

    def and_expr(self) -> Expr:
        operands = [self.not_expr()]
        while self.at_keyword("AND"):
            self.advance()
            operands.append(self.not_expr())
        return operands[0] if len(operands) == 1 else And(tuple(operands))

    def nest(self) -> None:
        self.depth += 1
        if self.depth > 2 * MAX_DEPTH:  # NOT (...) is two levels here, one node
            raise self.error(f"filter too deeply nested (at most {2 * MAX_DEPTH} nested parentheses and NOTs)")

    def not_expr(self) -> Expr:
        if self.at_keyword("NOT"):
            self.nest()
            self.advance()
            expr: Expr = Not(self.not_expr())
            self.depth -= 1
            return expr
        token = self.peek()
        if token.kind == "LPAREN":
            self.nest()
            self.advance()
            expr = self.or_expr()
            if self.peek().kind != "RPAREN":
                raise self.error(
                    f"unbalanced parentheses: expected ')' to close the '(' at offset {token.pos}"
                )
            self.advance()
            self.depth -= 1
            return expr
        return self.predicate()

    def predicate(self) -> Expr:
        token = self.peek()
        if token.kind == "IDENT" and self.peek(1).kind == "LPAREN":
            return self.function_call()
        if token.kind in ("IDENT", "QIDENT"):
            return self.column_predicate(self.advance().text)
        if token.kind in ("STRING", "NUMBER") or self.at_keyword("TRUE", "FALSE", "DATE", "TIMESTAMP"):
            return self.literal_predicate()
        if self.at_keyword("NULL"):
            raise self.error("NULL can only be used as 'column IS NULL' or 'column IS NOT NULL'")
        raise self.error("expected a column, a value, NOT or '('")

    def column_predicate(self, column: str) -> Expr:
        token = self.peek()
        if token.kind == "OP":
            self.advance()
            if self.peek().kind in ("IDENT", "QIDENT") and self.peek(1).kind != "LPAREN":
                return ColumnCompare(column, token.text, self.advance().text)
            return Compare(column, token.text, self.literal(f"after '{token.text}'"))
        if token.kind in ("EOF", "RPAREN") or self.at_keyword("AND", "OR"):
            return Compare(column, "=", True)  # a bare boolean column
        negated = self.at_keyword("NOT")
        if negated:
            self.advance()
            if not self.at_keyword("BETWEEN", "IN", "LIKE", "ILIKE"):
                raise self.error(f"expected BETWEEN or IN (or LIKE, ILIKE) after '{column} NOT'")
        if self.at_keyword("BETWEEN"):
            expr: Expr = self.between(column)
            return Not(expr) if negated else expr
        if self.at_keyword("IN"):
            self.advance()
            return In(column, self.literal_list("after IN"), negated)
        if self.at_keyword("LIKE", "ILIKE"):
            insensitive = self.advance().text == "ILIKE"
            pattern = self.expect("STRING", "a quoted pattern after LIKE").text
            escape = None
            if self.at_keyword("ESCAPE"):
                self.advance()
                escape = self.expect("STRING", "a quoted character after ESCAPE").text
            return Like(column, pattern, negated, insensitive, escape)
        if self.at_keyword("IS"):
            self.advance()
            is_not = self.at_keyword("NOT")
            if is_not:
                self.advance()
            if self.at_keyword("TRUE", "FALSE"):
                return IsBool(column, self.advance().text == "TRUE", is_not)
            self.expect_keyword("NULL", "(or TRUE / FALSE) after IS" + (" NOT" if is_not else ""))
            return IsNull(column, is_not)
        raise self.error(
            f"expected a comparison operator, BETWEEN, IN, LIKE, IS, AND, OR or the end after column '{column}'"
        )

    def between(self, column: str) -> Between:
        self.expect_keyword("BETWEEN", "")
        symmetric = self.at_keyword("SYMMETRIC")
        if symmetric:
            self.advance()
        low = self.literal("after BETWEEN")
        self.expect_keyword("AND", "between the two bounds of BETWEEN")
        return Between(column, low, self.literal("after BETWEEN ... AND"), symmetric)

    def literal_predicate(self) -> Expr:
        start = self.peek()
        value = self.literal("")
        token = self.peek()
        if token.kind == "OP":
            self.advance()
            if self.peek().kind == "IDENT" and self.peek(1).kind == "LPAREN":
                return Length(self.length_call(), FLIPPED_OPS[token.text if token.text != "<>" else "!="], value)
            op = "!=" if token.text == "<>" else token.text
            return Compare(self.column(f"after '{token.text}'"), FLIPPED_OPS[op], value)
        negated = self.at_keyword("NOT")
        if negated:
            self.advance()
        if self.at_keyword("IN"):
            self.advance()
            expr: Expr = Contains(self.column("after IN (list membership: 'value' IN list_column)"), value)
            return Not(expr) if negated else expr
        raise self.error(f"expected a comparison operator or IN after the value {start.text!r}")

    def length_call(self) -> str:
        name = self.advance()
        if name.text.upper() not in _LENGTH:
            raise FilterError(f"unknown function {name.text!r} here; expected len(column)", position=name.pos,
                              text=self.text)
        self.expect("LPAREN", f"'(' after {name.text}")
        column = self.column(f"as the argument of {name.text}")
        self.expect("RPAREN", f"')' to close {name.text}(")
        return column

    def function_call(self) -> Expr:
        name = self.peek()
        upper = name.text.upper()
        if upper in _LENGTH:
            column = self.length_call()
            token = self.peek()
            if token.kind == "OP":
                self.advance()
                return Length(column, token.text, self.literal(f"after '{token.text}'"))
            negated = self.at_keyword("NOT")
            if negated:
                self.advance()
            if self.at_keyword("BETWEEN"):
                between = self.between(column)
                low, high = between.low, between.high
                if between.symmetric:
                    raise self.error("BETWEEN SYMMETRIC is not supported on len()")
                expr: Expr = And((Length(column, ">=", low), Length(column, "<=", high)))
                return Not(expr) if negated else expr
            raise self.error(f"expected a comparison operator or BETWEEN after {name.text}({column})")
        node = _FUNCTIONS.get(upper)
        if node is None:
            raise FilterError(
                f"unknown function {name.text!r}; expected one of "
                "array_contains, array_contains_any, array_contains_all, len (or DuckDB's list_* / array_has* names)",
                position=name.pos,
                text=self.text,
            )
        self.advance()
        self.expect("LPAREN", f"'(' after {name.text}")
        column = self.column(f"as the first argument of {name.text}")
        self.expect("COMMA", f"',' after the column of {name.text}")
        if node is Contains:
            expr = Contains(column, self.literal(f"as the second argument of {name.text}"))
        else:
            expr = node(column, self.literal_list(f"as the second argument of {name.text}", brackets=True))
        self.expect("RPAREN", f"')' to close {name.text}(")
        return expr

    def column(self, context: str) -> str:
        token = self.peek()
        if token.kind in ("IDENT", "QIDENT"):
            return self.advance().text
        raise self.error(f"expected a column name {context}")

    def literal_list(self, context: str, brackets: bool = False) -> tuple[Scalar, ...]:
        close = "RPAREN"
        if brackets and self.peek().kind == "LBRACKET":
            close = "RBRACKET"
            self.advance()
        else:
            self.expect("LPAREN", f"'(' and a list of values {context}")
        symbol = ")" if close == "RPAREN" else "]"
        values: list[Scalar] = []
        if self.peek().kind == close:
            self.advance()
            return ()
        while True:
            values.append(self.literal("in the list"))
            if self.peek().kind == "COMMA":
                self.advance()
                continue
            self.expect(close, f"',' or '{symbol}' in the list of values")
            return tuple(values)

    def literal(self, context: str) -> Scalar:
        token = self.peek()
        where = f" {context}" if context else ""
        if token.kind == "STRING":
            self.advance()
            return token.text
        if token.kind == "NUMBER":
            self.advance()
            return token.value if token.value is not None else 0
        if self.at_keyword("TRUE", "FALSE"):
            self.advance()
            return token.text == "TRUE"
        if self.at_keyword("DATE", "TIMESTAMP"):
            self.advance()
            text = self.expect("STRING", f"a quoted {token.text.lower()} after {token.text}")
            try:
                if token.text == "DATE":
                    return dt.date.fromisoformat(text.text)
                return dt.datetime.fromisoformat(text.text)
            except ValueError:
                shape = "'YYYY-MM-DD'" if token.text == "DATE" else "'YYYY-MM-DD HH:MM:SS'"
                raise FilterError(
                    f"invalid {token.text} literal {text.text!r}; expected {shape}",
                    position=text.pos,
                    text=self.text,
                ) from None
        if self.at_keyword("NULL"):
            raise self.error(f"NULL is not a value{where}; use 'column IS NULL' or 'column IS NOT NULL'")
        if token.kind == "QIDENT":
            raise self.error(f"expected a value{where} (double quotes name a column; write a string in "
                             f"single quotes: '{token.text}')")
        raise self.error(f"expected a value{where}")


def parse_sql(text: str) -> Expr:
    """Parse a SQL-like WHERE clause into an expression (raises ``FilterError``)."""
    with deep_recursion():
        return _Parser(text).parse()


__all__ = ["Token", "tokenize", "parse_sql"]
