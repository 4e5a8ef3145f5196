"""Typed reads of environment variables that fail loudly.

Every helper names the variable in its error, so a bad deployment stops at
start-up with a message a person can act on instead of a stack trace later.
"""

from __future__ import annotations

import os
from urllib.parse import urlparse

from django.core.exceptions import ImproperlyConfigured

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def _raw(name: str) -> str | None:
    value = os.environ.get(name)
    if value is None or value.strip() == "":
        return None
    return value.strip()


def env_str(name: str, default: str | None = None, *, required: bool = False) -> str | None:
    value = _raw(name)
    if value is None:
        if required:
            raise ImproperlyConfigured(f"{name} must be set.")
        return default
    return value


def env_bool(name: str, default: bool = False) -> bool:
    value = _raw(name)
    if value is None:
        return default
    lowered = value.lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ImproperlyConfigured(f"{name}={value!r} is not a boolean; use true or false.")


def env_int(name: str, default: int, *, minimum: int | None = None, maximum: int | None = None) -> int:
    value = _raw(name)
    if value is None:
        return default
    try:
        number = int(value)
    except ValueError:
        raise ImproperlyConfigured(f"{name}={value!r} is not an integer.") from None
    if minimum is not None and number < minimum:
        raise ImproperlyConfigured(f"{name}={number} is below the minimum of {minimum}.")
    if maximum is not None and number > maximum:
        raise ImproperlyConfigured(f"{name}={number} is above the maximum of {maximum}.")
    return number


def env_choice(name: str, default: str, choices: tuple[str, ...]) -> str:
    value = _raw(name) or default
    if value not in choices:
        raise ImproperlyConfigured(f"{name}={value!r} is not one of {', '.join(choices)}.")
    return value


def env_list(name: str, default: list[str] | None = None) -> list[str]:
    value = _raw(name)
    if value is None:
        return list(default or [])
    return [item.strip() for item in value.split(",") if item.strip()]


def env_url(name: str, default: str | None = None, *, schemes: tuple[str, ...]) -> str | None:
    value = _raw(name)
    if value is None:
        return default
    parsed = urlparse(value)
    if parsed.scheme not in schemes:
        allowed = ", ".join(schemes)
        raise ImproperlyConfigured(f"{name}={value!r} has scheme {parsed.scheme!r}; expected one of {allowed}.")
    if parsed.scheme not in {"unix", "sqlite"} and not parsed.hostname:
        raise ImproperlyConfigured(f"{name}={value!r} has no host.")
    return value


def database_config(name: str, default_sqlite_path: str) -> dict:
    """DATABASE_URL → Django DATABASES entry (PostgreSQL or SQLite)."""
    import environ  # django-environ parses the URL forms people already use

    url = env_url(name, schemes=("postgres", "postgresql", "pgsql", "sqlite"))
    if url is None:
        return {"ENGINE": "django.db.backends.sqlite3", "NAME": default_sqlite_path}
    try:
        config = environ.Env.db_url_config(url)
    except Exception as exc:  # django-environ raises several types for odd URLs
        raise ImproperlyConfigured(f"{name} could not be parsed: {exc}") from None
    if config["ENGINE"] == "django.db.backends.postgresql" and not config.get("NAME"):
        raise ImproperlyConfigured(f"{name} must name a database, e.g. postgres://user@host:5432/modelfactory.")
    return config


def redis_urls(redis_url: str) -> tuple[str, str]:
    """Return (redis-py URL, Celery broker URL) for a REDIS_URL.

    Celery spells unix sockets redis+socket:///path while redis-py and
    channels_redis use unix:///path; both accept redis:// and rediss://.
    """
    parsed = urlparse(redis_url)
    if parsed.scheme == "unix":
        return redis_url, "redis+socket://" + redis_url[len("unix://") :]
    return redis_url, redis_url
