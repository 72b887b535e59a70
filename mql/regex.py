"""Regular expressions: MongoDB ($regex, bson.Regex, /.../ options) on top of Python's ``re``."""

from __future__ import annotations

import functools
import re

from bson import Regex

from .errors import FilterCompileError

_FLAG_MAP = {"i": re.IGNORECASE, "m": re.MULTILINE, "s": re.DOTALL, "x": re.VERBOSE, "u": 0}


def _pcre_to_python(pattern: str) -> str:
    # named groups (?<name>...) → (?P<name>...), but not look-behinds (?<= / (?<!
    return re.sub(r"\(\?<(?![=!])", "(?P<", pattern)


def flags_from_options(options: str, where: str = "$regex") -> int:
    flags = 0
    for ch in options or "":
        if ch not in _FLAG_MAP:
            raise FilterCompileError(f"invalid flag in regex options: {ch}", operator=where)
        flags |= _FLAG_MAP[ch]
    return flags


def options_from_flags(flags) -> str:
    if isinstance(flags, str):
        return flags
    s = ""
    for ch, f in (("i", re.I), ("m", re.M), ("s", re.S), ("x", re.X)):
        if flags & f:
            s += ch
    return s


@functools.lru_cache(maxsize=4096)
def compile_regex(pattern: str, options: str = "") -> re.Pattern:
    try:
        return re.compile(_pcre_to_python(pattern), flags_from_options(options))
    except re.error as exc:
        raise FilterCompileError(f"invalid regular expression {pattern!r}: {exc}", operator="$regex") from None


def to_pattern(value, options: str | None = None) -> re.Pattern:
    """A compiled pattern from a string, a bson.Regex or a re.Pattern (+ optional options)."""
    if isinstance(value, re.Pattern):
        opts = options_from_flags(value.flags & (re.I | re.M | re.S | re.X))
        if options:
            opts = options
        return compile_regex(value.pattern, opts)
    if isinstance(value, Regex):
        opts = options if options else options_from_flags(value.flags)
        return compile_regex(value.pattern, opts)
    if isinstance(value, str):
        return compile_regex(value, options or "")
    raise FilterCompileError("$regex has to be a string", operator="$regex")


def is_regex(value) -> bool:
    return isinstance(value, (Regex, re.Pattern))
