"""
The embedded default SECRET_KEY: random, made on first start in a private file, reused after.

A key published in the repository would let anyone forge session cookies, signed messages
and inter-worker messages, so none is ever used. Several workers that start at once on one
machine must end up with the same key: each writes its candidate to a temporary file and
links it into place (which fails if another got there first), then reads what is there.
"""

from __future__ import annotations

import os
import secrets
import stat
import tempfile
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured

#: Characters of randomness in a generated key (check --deploy wants at least 50).
KEY_BYTES = 48
#: Keys this repository has ever shipped as a default: refused wherever they come from.
PUBLISHED_KEYS = frozenset({"hermes-gateway-insecure-development-key-change-me-in-production"})


def refuse_published(key: str, source: str) -> str:
    """Return ``key`` unless it is one the repository published."""
    if key.strip() in PUBLISHED_KEYS:
        raise ImproperlyConfigured(
            f"{source} is the key published in hermes-gateway's repository; set a random one "
            "or unset it to use a generated key file"
        )
    return key


def load_or_create(path: Path) -> str:
    """The key stored at ``path``, created there (mode 0600) when the file does not exist."""
    try:
        return _read(path)
    except FileNotFoundError:
        pass
    _create(path)
    try:
        return _read(path)
    except OSError as exc:  # a symlink put in its place, say
        raise ImproperlyConfigured(f"cannot read the secret key file {path}: {exc}") from None


def _create(path: Path) -> None:
    """Put a new key at ``path`` unless another process already did; never a partial file."""
    try:
        # mkstemp opens with O_CREAT|O_EXCL and mode 0600.
        fd, temp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    except OSError as exc:
        raise ImproperlyConfigured(f"cannot create the secret key file {path}: {exc}") from None
    try:
        with os.fdopen(fd, "w") as file:
            file.write(secrets.token_urlsafe(KEY_BYTES) + "\n")
            file.flush()
            os.fsync(file.fileno())
        try:
            # Atomic and exclusive: the file appears whole, and the first worker's key wins.
            os.link(temp, path)
        except FileExistsError:
            pass
        except OSError as exc:
            raise ImproperlyConfigured(f"cannot create the secret key file {path}: {exc}") from None
    finally:
        os.unlink(temp)


def _read(path: Path) -> str:
    """Read the key, refusing a file others can read or write, and an empty one."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except FileNotFoundError:
        raise
    except OSError as exc:  # a symlink (O_NOFOLLOW), no permission
        raise ImproperlyConfigured(f"cannot read the secret key file {path}: {exc}") from None
    with os.fdopen(fd) as file:
        mode = os.fstat(file.fileno()).st_mode
        if not stat.S_ISREG(mode):
            raise ImproperlyConfigured(f"the secret key file {path} is not a regular file")
        if mode & 0o077:
            raise ImproperlyConfigured(
                f"the secret key file {path} has mode {stat.S_IMODE(mode):04o}: others may read "
                f"it; run chmod 600 {path} (and make a new key if it was exposed)"
            )
        key = file.read().strip()
    if not key:
        raise ImproperlyConfigured(
            f"the secret key file {path} is empty; delete it to have a new key generated"
        )
    return refuse_published(key, f"the secret key file {path}")
