"""
The README's settings table, rendered from the option definitions and kept between two
markers, so a test can tell when the README and the definitions disagree.
"""

from __future__ import annotations

from .options import OPTIONS, Option

START = "<!-- settings-table -->"
END = "<!-- /settings-table -->"

_SIZES = (("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024))


def shown_default(option: Option) -> str:
    """The default as a reader writes it: 20 (seconds), 1 MiB, false, `echo`, empty."""
    value = option.default
    if option.shown:
        return option.shown
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, str):
        return f"`{value}`" if value else "empty"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, int) and option.name.endswith("_BYTES"):
        for unit, size in _SIZES:
            if value % size == 0:
                return f"{value // size} {unit}"
    return str(value)


def render_table(options: tuple[Option, ...] = OPTIONS) -> str:
    """The Markdown table of ``options``: option, environment variable, default, meaning."""
    lines = ["| option | env | default | meaning |", "|---|---|---|---|"]
    for option in options:
        env = f"`{option.env}`" if option.env else ""
        lines.append(f"| `{option.name}` | {env} | {shown_default(option)} | {option.doc} |")
    return "\n".join(lines)


def _bounds(text: str) -> tuple[int, int]:
    start, end = text.find(START), text.find(END)
    if start < 0 or end < start:
        raise ValueError(f"no {START} ... {END} markers")
    return start + len(START), end


def readme_table(text: str) -> str:
    """The table between the markers of ``text``, without surrounding blank lines."""
    start, end = _bounds(text)
    return text[start:end].strip("\n")


def with_table(text: str, table: str) -> str:
    """``text`` with the part between its markers replaced by ``table``."""
    start, end = _bounds(text)
    return f"{text[:start]}\n{table}\n{text[end:]}"
