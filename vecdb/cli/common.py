"""Helpers every command shares: the CLI's own error type, ``KEY=VALUE`` options, JSON-safe values."""

from __future__ import annotations

import base64
import datetime as dt
import decimal
import math
from pathlib import Path
from typing import Any, Iterable

import numpy as np


class CliError(Exception):
    """Bad command-line input that the library never sees (a missing file, a bad option value)."""


def parse_scalar(text: str) -> int | float | str:
    """``"32"`` -> 32, ``"0.5"`` -> 0.5, anything else stays a string (never eval)."""
    for convert in (int, float):
        try:
            return convert(text)
        except ValueError:
            pass
    return text


def parse_key_values(items: Iterable[str] | None, option: str) -> dict[str, int | float | str]:
    """``["M=32", "ef_search=128,engine=faiss"]`` -> ``{"M": 32, "ef_search": 128, "engine": "faiss"}``."""
    out: dict[str, int | float | str] = {}
    for item in items or ():
        for part in item.split(","):
            key, sep, value = part.partition("=")
            key, value = key.strip(), value.strip()
            if not sep or not key or not value:
                raise CliError(f"{option} expects KEY=VALUE; got {part!r}")
            if key in out:
                raise CliError(f"{option} {key!r} is given twice")
            out[key] = parse_scalar(value)
    return out


def split_columns(text: str | None) -> list[str] | None:
    """``"a, b"`` -> ``["a", "b"]``; ``None`` stays ``None``."""
    if text is None:
        return None
    names = [name.strip() for name in text.split(",") if name.strip()]
    if not names:
        raise CliError("--columns names no column")
    return names


def jsonable(value: Any) -> Any:
    """A Python value from Arrow (``to_pylist``) made JSON-safe: dates as ISO strings, bytes as base64."""
    if isinstance(value, (dt.date, dt.datetime, dt.time)):
        return value.isoformat()
    if isinstance(value, dt.timedelta):
        return value.total_seconds()
    if isinstance(value, decimal.Decimal):
        return str(value)
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, np.generic):
        return jsonable(value.item())
    return value


def short_float(value: float) -> float:
    """A float32 score as the shortest decimal that reads back to the same float32."""
    return float(str(np.float32(value)))


def human_bytes(n: int) -> str:
    """``1536`` -> ``"1.5 KiB"``."""
    if n < 1024:
        return f"{n} B"
    size = float(n)
    for unit in ("KiB", "MiB", "GiB", "TiB"):
        size /= 1024
        if size < 1024 or unit == "TiB":
            break
    return f"{size:.1f} {unit}"


def load_npy(path: Any, *, mmap: bool = False, option: str = "") -> np.ndarray:
    """A ``.npy`` array from a path on the command line (never pickled objects); a missing or unreadable
    file is a ``CliError`` naming it (and ``option``, the flag that gave it)."""
    named = f"{option} {str(path)!r}" if option else repr(str(path))
    if not Path(path).is_file():
        raise CliError(f"{named} does not exist")
    try:
        return np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)
    except (ValueError, OSError) as exc:
        raise CliError(f"cannot read {named} as a .npy array: {exc}") from exc
