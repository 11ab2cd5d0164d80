"""
``python -m gateway_app.conf`` prints the settings table rendered from the option
definitions; ``--write README.md`` replaces the table between that file's markers.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from .table import render_table, with_table


def main(argv: list[str] | None = None) -> None:
    """Print the table, or write it into the file ``--write`` names."""
    parser = argparse.ArgumentParser(prog="python -m gateway_app.conf", description=__doc__)
    parser.add_argument("--write", type=Path, metavar="README", help="rewrite this file's table")
    args = parser.parse_args(argv)
    if args.write is None:
        print(render_table())
        return
    args.write.write_text(with_table(args.write.read_text(), render_table()))


if __name__ == "__main__":
    main()
