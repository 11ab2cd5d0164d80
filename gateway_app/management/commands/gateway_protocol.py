"""``manage.py gateway_protocol``: the protocol reference generated from the method registry
(docs/protocol.md and docs/openrpc.json); ``--write`` updates them, ``--check`` compares."""

from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from gateway_app.rpc.openrpc import reference_files


def docs_dir() -> Path:
    """Where the generated reference is committed: docs/ at the project root."""
    return Path(settings.BASE_DIR) / "docs"


def stale_files(directory: Path) -> list[str]:
    """The generated files that are missing from ``directory`` or differ from it."""
    stale = []
    for name, text in reference_files().items():
        path = directory / name
        if not path.exists() or path.read_text(encoding="utf-8") != text:
            stale.append(name)
    return stale


class Command(BaseCommand):
    help = (
        "Print the protocol reference (Markdown) generated from the JSON-RPC method registry; "
        "--write updates docs/protocol.md and docs/openrpc.json, --check fails when they differ."
    )

    def add_arguments(self, parser):
        action = parser.add_mutually_exclusive_group()
        action.add_argument("--write", action="store_true", help="write the files in docs/")
        action.add_argument(
            "--check", action="store_true", help="exit non-zero when docs/ is out of date"
        )

    def handle(self, *args, write=False, check=False, **options):
        directory = docs_dir()
        if check:
            stale = stale_files(directory)
            if stale:
                raise CommandError(
                    f"out of date in {directory}: {', '.join(stale)}; "
                    "run `manage.py gateway_protocol --write`"
                )
            self.stdout.write("docs are up to date")
            return
        if not write:
            self.stdout.write(reference_files()["protocol.md"], ending="")
            return
        directory.mkdir(exist_ok=True)
        for name, text in reference_files().items():
            (directory / name).write_text(text, encoding="utf-8")
            self.stdout.write(f"wrote {directory / name}")
