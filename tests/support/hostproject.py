"""
A host project, as a developer with an existing Django project would make one: the built
wheel installed (``--no-deps``) into a fresh venv that borrows this venv's packages for its
dependencies, ``startproject mysite``, and the README's "Add to an existing project" snippets
applied as they are written between their markers, so the README and the tests cannot drift.
"""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import sysconfig
import tempfile
from collections.abc import Iterator
from pathlib import Path

import psutil

from .servers import PYTHON, REPO, descendants, free_port, stop_process, wait_for_port

#: A README snippet: ``<!-- add-to-project:NAME -->``, one fenced block, the closing marker.
SNIPPET = re.compile(
    r"<!-- add-to-project:(?P<name>[\w-]+) -->\s*```\w*\n(?P<body>.*?)```\s*"
    r"<!-- /add-to-project:(?P=name) -->",
    re.S,
)
#: The line of the README's asgi.py a host replaces with its own routes.
SITE_ROUTES = "site_routes = []  # your own WebSocket routes, if any"

#: The host project's own WebSocket consumer and routes (not from the README: its own code).
HOST_ROUTING = """
from channels.generic.websocket import AsyncWebsocketConsumer
from django.urls import path


class EchoConsumer(AsyncWebsocketConsumer):
    async def connect(self):
        await self.accept()

    async def receive(self, text_data=None, bytes_data=None):
        await self.send(text_data=f"host echo: {text_data}")


websocket_urlpatterns = [path("host/echo", EchoConsumer.as_asgi())]
"""


def readme_snippets() -> dict[str, str]:
    """The README's add-to-project snippets by name."""
    readme = (REPO / "README.md").read_text()
    return {match["name"]: match["body"] for match in SNIPPET.finditer(readme)}


def build_wheel(outdir: Path) -> Path:
    """Build the project's wheel into ``outdir`` with the build tools of this venv."""
    subprocess.run(
        [PYTHON, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(outdir), str(REPO)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    (wheel,) = outdir.glob("hermes_gateway-*.whl")
    return wheel


def clean_env(**extra: str) -> dict[str, str]:
    """This environment without the demo's settings or a path back into the repository."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("HERMES_", "DJANGO_", "REDIS_URL", "OPENAI_"))
        and key not in {"PYTHONPATH", "VIRTUAL_ENV"}
    }
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


class HostProject:
    """``mysite`` in ``directory``, configured only by the README, on its own venv."""

    def __init__(self, directory: Path, wheel: Path):
        self.directory = directory
        self.venv = directory / "venv"
        self.root = directory / "host"
        self.python = str(self.venv / "bin" / "python")
        self.env = clean_env()
        self.process: subprocess.Popen | None = None
        self.port = free_port()
        self._log = tempfile.TemporaryFile()
        self._make_venv(wheel)
        self._start_project()

    def _run(self, *args: str, cwd: Path | None = None) -> str:
        result = subprocess.run(
            args,
            cwd=cwd or self.root,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=180,
        )
        assert result.returncode == 0, f"{args}: {result.stdout}\n{result.stderr}"
        return result.stdout

    def _make_venv(self, wheel: Path) -> None:
        subprocess.run([PYTHON, "-m", "venv", "--without-pip", str(self.venv)], check=True)
        site_packages = Path(
            self._run(
                self.python,
                "-c",
                "import sysconfig; print(sysconfig.get_paths()['purelib'])",
                cwd=self.directory,
            ).strip()
        )
        # Dependencies come from this venv (after the new venv's own site-packages, so the
        # installed wheel, not anything here, provides gateway_app).
        (site_packages / "borrowed.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
        self._run(
            PYTHON, "-m", "pip", "--python", self.python, "install", "--no-deps", "--no-index",
            str(wheel), cwd=self.directory,
        )  # fmt: skip

    def _start_project(self) -> None:
        self.root.mkdir()
        self._run(self.python, "-m", "django", "startproject", "mysite", str(self.root))
        snippets = readme_snippets()
        package = self.root / "mysite"
        with open(package / "settings.py", "a") as settings:
            settings.write("\n" + snippets["settings"])
        with open(package / "urls.py", "a") as urls:
            urls.write("\n" + snippets["urls"])
        asgi = snippets["asgi"]
        assert asgi.count(SITE_ROUTES) == 1, "the README's asgi.py has no site_routes line"
        own_routes = "from mysite.routing import websocket_urlpatterns as site_routes  # noqa"
        (package / "asgi.py").write_text(asgi.replace(SITE_ROUTES, own_routes))
        (package / "routing.py").write_text(HOST_ROUTING)

    def commands(self) -> list[list[str]]:
        """The README's commands, ``python`` being this venv's, on this project's port."""
        lines = [line.split() for line in readme_snippets()["commands"].splitlines() if line]
        for line in lines:
            assert line[0] == "python", line
            line[0] = self.python
        serve = lines[-1]
        serve[serve.index("8000")] = str(self.port)
        return lines

    @contextlib.contextmanager
    def serving(self) -> Iterator[HostProject]:
        """The README's commands: migrate, a token for alice in ``token``, then the server,
        stopped on exit with no process of it left running."""
        migrate, mint, serve = self.commands()
        self.run(migrate)
        self.token = self.run(mint).strip().splitlines()[-1]
        self.serve(serve)
        try:
            yield self
        finally:
            survivors = self.stop()
        assert survivors == [], f"processes left running: {survivors}"

    def run(self, command: list[str]) -> str:
        """Run one command in the project directory; its stdout."""
        return self._run(*command)

    def serve(self, command: list[str]) -> None:
        self.process = subprocess.Popen(
            command, cwd=self.root, env=self.env, stdout=self._log, stderr=subprocess.STDOUT
        )
        wait_for_port(self.port, process=self.process)

    def log(self) -> str:
        self._log.flush()
        self._log.seek(0)
        data = self._log.read().decode("utf-8", "replace")
        self._log.seek(0, os.SEEK_END)
        return data

    def stop(self) -> list[int]:
        """Stop the server; the pids of its children still alive afterwards (none, hopefully)."""
        if self.process is None:
            return []
        children = descendants(self.process.pid)
        stop_process(self.process)
        # Slash workers exit on stdin EOF once their parent is gone.
        _, alive = psutil.wait_procs(children, timeout=5)
        for child in alive:
            child.kill()
        psutil.wait_procs(alive, timeout=5)
        self._log.close()
        return [child.pid for child in alive]
