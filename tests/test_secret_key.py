"""The SECRET_KEY is never one published in the repository, and a production deploy is clean."""

import os
import re
import secrets
import stat
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured

from hermes_site import secret_key

REPO = Path(__file__).resolve().parents[1]
PUBLISHED = "hermes-gateway-insecure-development-key-change-me-in-production"


def clean_environment(**extra: str) -> dict[str, str]:
    """This process's environment without any setting of the gateway, plus ``extra``."""
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("DJANGO_", "HERMES_", "AXES_")) and name != "REDIS_URL"
    }
    return {**env, **extra}


def settings_secret_key(env: dict[str, str]) -> subprocess.CompletedProcess:
    """Import the deployment settings in a fresh interpreter and print their SECRET_KEY."""
    code = "from hermes_site import settings; print(settings.SECRET_KEY)"
    return subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True
    )


def test_embedded_default_key_is_random_in_a_private_file_reused_after(tmp_path):
    """Tests that without DJANGO_SECRET_KEY the key is generated into a 0600 file, then reused."""
    env = clean_environment(HERMES_DB_PATH=str(tmp_path / "db.sqlite3"))
    first = settings_secret_key(env)
    assert first.returncode == 0, first.stderr
    key = first.stdout.strip()
    assert key != PUBLISHED and len(key) >= 50
    key_file = tmp_path / "db.sqlite3.secret_key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert key_file.read_text().strip() == key
    again = settings_secret_key(env)
    assert again.stdout.strip() == key


def test_published_key_in_the_environment_is_refused(tmp_path):
    """Tests that DJANGO_SECRET_KEY set to the key the repository once shipped stops the start."""
    env = clean_environment(DJANGO_SECRET_KEY=PUBLISHED, HERMES_DB_PATH=str(tmp_path / "db"))
    result = settings_secret_key(env)
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr and "published" in result.stderr


def test_key_file_readable_by_others_is_refused(tmp_path):
    """Tests that a key file with group or other permissions is refused, naming the fix."""
    path = tmp_path / "key"
    path.write_text(secrets.token_urlsafe(48))
    path.chmod(0o644)
    with pytest.raises(ImproperlyConfigured, match="chmod 600"):
        secret_key.load_or_create(path)


def test_empty_key_file_is_refused(tmp_path):
    """Tests that an empty key file is refused rather than used as an empty key."""
    path = tmp_path / "key"
    path.write_text("\n")
    path.chmod(0o600)
    with pytest.raises(ImproperlyConfigured, match="is empty"):
        secret_key.load_or_create(path)


def test_key_file_that_is_a_symlink_is_refused(tmp_path):
    """Tests that a symlink in place of the key file is not followed."""
    target = tmp_path / "elsewhere"
    target.write_text(secrets.token_urlsafe(48))
    target.chmod(0o600)
    (tmp_path / "key").symlink_to(target)
    with pytest.raises(ImproperlyConfigured, match="cannot read"):
        secret_key.load_or_create(tmp_path / "key")


def test_workers_starting_at_once_share_one_key(tmp_path):
    """Tests that concurrent first starts all end up with the same, complete key."""
    path = tmp_path / "key"
    start = threading.Barrier(8)
    keys: list[str] = []

    def worker() -> None:
        start.wait()
        keys.append(secret_key.load_or_create(path))

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(keys) == 8 and len(set(keys)) == 1
    assert keys[0] == path.read_text().strip() and len(keys[0]) >= 50
    assert [p.name for p in tmp_path.iterdir()] == ["key"]  # no temporary file left


def readme_production_environment() -> dict[str, str]:
    """The variables of the README's production block, placeholders filled in."""
    readme = (REPO / "README.md").read_text()
    block = re.search(r"<!-- production-environment -->\s*```sh\n(.*?)```", readme, re.S)
    assert block, "the README has no production environment block"
    env: dict[str, str] = {}
    for line in block.group(1).splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, _, value = line.partition("=")
            env[name] = value
    placeholders = {name for name, value in env.items() if value.startswith("<")}
    assert placeholders == {"DJANGO_SECRET_KEY"}
    env["DJANGO_SECRET_KEY"] = secrets.token_urlsafe(50)
    return env


def test_readme_production_environment_passes_check_deploy(tmp_path):
    """Tests that `check --deploy` reports nothing on exactly the README's production list."""
    env = clean_environment(**readme_production_environment())
    env.setdefault("HERMES_DB_PATH", str(tmp_path / "db.sqlite3"))
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout
