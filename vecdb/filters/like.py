"""LIKE patterns: translation to an anchored RE2 regular expression, and the literal prefix a sorted
index can serve. ``%`` matches any run of characters (newlines too), ``_`` exactly one character;
there is no escape character unless ESCAPE names one (SQL standard, DuckDB)."""

from __future__ import annotations

from vecdb.errors import FilterError


def _parts(pattern: str, escape: str | None) -> list[tuple[str, str]]:
    """The pattern as ("lit", char) / ("any", "%") / ("one", "_") items."""
    out: list[tuple[str, str]] = []
    i, n = 0, len(pattern)
    while i < n:
        c = pattern[i]
        if escape is not None and c == escape:
            if i + 1 >= n:
                raise FilterError(f"LIKE pattern {pattern!r} ends with its escape character {escape!r}")
            out.append(("lit", pattern[i + 1]))
            i += 2
            continue
        out.append(("any", c) if c == "%" else ("one", c) if c == "_" else ("lit", c))
        i += 1
    return out


def _literal(c: str) -> str:
    if c.isascii() and not c.isalnum():
        return "\\x{%02x}" % ord(c)  # every ASCII symbol and control character, escaped
    return c


def like_regex(pattern: str, escape: str | None) -> str:
    """An RE2 expression matching exactly the strings ``LIKE pattern`` matches."""
    body = []
    for kind, c in _parts(pattern, escape):
        body.append(".*" if kind == "any" else "." if kind == "one" else _literal(c))
    return "(?s)^" + "".join(body) + "$"


def like_prefix(pattern: str, escape: str | None) -> tuple[str, bool] | None:
    """``(prefix, exact)`` when the pattern is a literal (``exact``) or a literal followed by one
    trailing ``%``; None for any other pattern."""
    parts = _parts(pattern, escape)
    exact = not parts or parts[-1][0] != "any"
    body = parts if exact else parts[:-1]
    if any(kind != "lit" for kind, _ in body):
        return None
    return "".join(c for _, c in body), exact


def successor(prefix: str) -> str | None:
    """The least string greater than every string starting with ``prefix`` (None: no bound)."""
    stripped = prefix.rstrip("\U0010ffff")
    if not stripped:
        return None
    code = ord(stripped[-1]) + 1
    if 0xD800 <= code <= 0xDFFF:
        code = 0xE000
    return stripped[:-1] + chr(code)


__all__ = ["like_prefix", "like_regex", "successor"]
