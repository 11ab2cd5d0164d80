"""
Validation kinds: an option's type, how a value is converted to it, and the rules the
system checks apply (each rule with its check id). No Django: hermes_site.settings imports
the definitions before Django is set up.
"""

from __future__ import annotations

import ipaddress
import math
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlparse


def is_number(value: Any) -> bool:
    """A finite int or float; booleans (ints to Python) and NaN/infinity are not."""
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


@dataclass(frozen=True)
class Rule:
    """One test a value must pass; ``what`` completes "must be ..." in the check's error."""

    what: str
    check_id: str
    test: Callable[[Any], bool]


@dataclass(frozen=True)
class Kind:
    """An option's type and its rules, checked in order (the first failing one is reported)."""

    type: type
    rules: tuple[Rule, ...]

    def coerce(self, value: Any) -> Any:
        """``value`` as this kind's type when that loses nothing (an int duration, a numeric
        string), else unchanged so that the checks report it instead of a crash or a guess."""
        if isinstance(value, bool) or self.type not in (int, float):
            return value
        try:
            if isinstance(value, str):
                converted = self.type(value.strip())
            elif self.type is float and isinstance(value, int):
                converted = float(value)
            else:
                return value
        except (ValueError, OverflowError):
            return value
        # "inf" stays the string it was, for the check to show what was written.
        return converted if math.isfinite(converted) else value

    def first_failure(self, value: Any) -> Rule | None:
        """The first rule ``value`` fails, or None when it is valid."""
        return next((rule for rule in self.rules if not rule.test(value)), None)


IS_STRING = Rule("a string", "gateway_app.E005", lambda v: isinstance(v, str))

#: Durations and rates where 0 means "off" or "at once".
NON_NEGATIVE = Kind(
    float, (Rule("a number >= 0", "gateway_app.E001", lambda v: is_number(v) and v >= 0),)
)
#: Timeouts and periods where 0 would fail everything at once or spin the event loop.
POSITIVE = Kind(
    float, (Rule("a number > 0", "gateway_app.E004", lambda v: is_number(v) and v > 0),)
)
#: Counts and sizes.
POSITIVE_INT = Kind(
    int,
    (
        Rule(
            "an integer >= 1",
            "gateway_app.E002",
            lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 1,
        ),
    ),
)
#: Counts where 0 means "no limit".
NON_NEGATIVE_INT = Kind(
    int,
    (
        Rule(
            "an integer >= 0",
            "gateway_app.E080",
            lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 0,
        ),
    ),
)
STRING = Kind(str, (IS_STRING,))
FLAG = Kind(bool, (Rule("True or False", "gateway_app.E012", lambda v: isinstance(v, bool)),))
MAPPING = Kind(
    dict, (Rule("a dict (a JSON object)", "gateway_app.E007", lambda v: isinstance(v, dict)),)
)


#: Validated by the system checks from what the value names (an importable class, say):
#: gateway_app.checks reports it with the ids of ``gateway_app.agents.loading``.
BACKEND = Kind(str, ())
DOTTED_PATHS = Kind(list, ())


def one_of(*choices: str, check_id: str) -> Kind:
    """A string from ``choices``."""
    what = " or ".join(repr(choice) for choice in choices)
    return Kind(str, (Rule(what, check_id, lambda v: isinstance(v, str) and v in choices),))


#: Empty (the system temp dir) or an absolute directory.
ABSOLUTE_PATH = Kind(
    str,
    (IS_STRING, Rule("an absolute path", "gateway_app.E013", lambda v: not v or os.path.isabs(v))),
)

#: One URL path segment of unreserved characters (RFC 3986), not "." or "..".
_SEGMENT = re.compile(r"[A-Za-z0-9._~-]+")


def _relative_url_path(value: str) -> bool:
    segments = value.split("/")
    return all(_SEGMENT.fullmatch(s) and s not in (".", "..") for s in segments)


#: A path Django's path() and the chat page can both use: no leading slash, no query.
URL_PATH = Kind(
    str,
    (
        IS_STRING,
        Rule(
            "a relative URL path (segments of letters, digits and -._~ joined by '/', "
            "no leading slash)",
            "gateway_app.E041",
            _relative_url_path,
        ),
    ),
)


def _redis_url_or_empty(value: str) -> bool:
    try:
        return not value or urlparse(value).scheme in ("redis", "rediss", "unix")
    except ValueError:  # an unbalanced "[" in the host, say
        return False


REDIS_URL = Kind(
    str,
    (
        IS_STRING,
        Rule(
            "empty or a redis://, rediss:// or unix:// URL", "gateway_app.E042", _redis_url_or_empty
        ),
    ),
)


_DOTTED = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*")


def _module_paths(value: Any) -> bool:
    return isinstance(value, list | tuple) and all(
        isinstance(item, str) and _DOTTED.fullmatch(item) for item in value
    )


#: Extension modules to import: a list of dotted module paths.
MODULE_LIST = Kind(
    tuple,
    (Rule("a list of dotted module paths", "gateway_app.E055", _module_paths),),
)


def parse_networks(value: str) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    """The networks of a comma-separated list (a bare address is one host); ValueError
    names the first that is not one."""
    return tuple(
        ipaddress.ip_network(part.strip(), strict=False)
        for part in value.split(",")
        if part.strip()
    )


def _networks(value: Any) -> bool:
    if not isinstance(value, str):
        return False
    try:
        parse_networks(value)
    except ValueError:
        return False
    return True


#: Comma-separated IP networks (CIDR; a bare address is one host); empty for none.
NETWORKS = Kind(
    str,
    (IS_STRING, Rule("comma-separated IP networks (CIDR)", "gateway_app.E070", _networks)),
)
