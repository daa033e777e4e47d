"""Typed access to environment variables for the project's settings.

Each helper raises ImproperlyConfigured on a value it cannot use, so a typo in a
deployment stops the process at start-up with the variable's name in the message.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def envstr(name: str, default: str = "") -> str:
    """The variable's value, or the content of the file named by NAME_FILE."""
    file_name = os.environ.get(f"{name}_FILE")
    if file_name:
        try:
            return Path(file_name).read_text().strip()
        except OSError as exc:
            raise ImproperlyConfigured(f"{name}_FILE: cannot read {file_name}: {exc.strerror}") from None
    return os.environ.get(name, default)


def envbool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None:
        return default
    if value.strip().lower() in _TRUE:
        return True
    if value.strip().lower() in _FALSE:
        return False
    raise ImproperlyConfigured(f"{name} must be one of 1/0, true/false, yes/no, on/off; got {value!r}.")


def envfloat(name: str, default: float, *, minimum: float = 0.0) -> float:
    value = os.environ.get(name)
    if value is None or value.strip() == "":
        return default
    try:
        number = float(value)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be a number; got {value!r}.") from None
    if number < minimum:
        raise ImproperlyConfigured(f"{name} must be at least {minimum}; got {value!r}.")
    return number


def envlist(name: str, default: str = "") -> list[str]:
    return [item.strip() for item in envstr(name, default).split(",") if item.strip()]


def instance_secret(path: Path, generate) -> str:
    """Read a secret kept in the instance folder, creating it (mode 0600) on first use.
    Raises ImproperlyConfigured naming the file when it cannot be read or created."""
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        pass
    except (OSError, UnicodeError) as exc:
        raise _unusable(path, exc) from None
    value = generate()
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        # Another process created it between our read and our write: use theirs.
        return path.read_text().strip()
    except OSError as exc:
        raise _unusable(path, exc) from None
    with os.fdopen(fd, "w") as handle:
        handle.write(value + "\n")
    return value


def _unusable(path: Path, exc: Exception) -> ImproperlyConfigured:
    reason = "it is a directory" if path.is_dir() else getattr(exc, "strerror", None) or type(exc).__name__
    return ImproperlyConfigured(f"{path}: cannot use this file ({reason}); it must be a readable file holding the key.")


def generate_django_secret_key() -> str:
    return secrets.token_urlsafe(50)
