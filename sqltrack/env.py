"""Capture the process environment without its secrets.

:func:`detect_env` returns ``os.environ`` with every value that may be a credential
replaced by ``"<redacted>"``; the variable's name is kept, so you can still see that it
was set. A value is redacted when

- the variable's name contains (case-insensitively) one of :data:`SECRET_WORDS`
  (``PASSWORD``, ``SECRET``, ``TOKEN``, ``KEY``, ``CREDENTIAL``, ``AUTH``, ``COOKIE`` …) as a
  word part: ``AWS_SECRET_ACCESS_KEY``, ``HF_TOKEN``, ``GITHUB_PAT``, ``DB_PASS``,
  ``OPENAI_API_KEY``, ``apiKey``; but not ``KEYBOARD`` or ``PWD`` (the working directory);
- or its value is a URL with a password (``postgres://user:pw@host/db``: only the
  password is replaced), a URL with a secret-named query parameter (``?token=...``: only
  its value), or a connection string with ``password=...``.

The same rule is applied to env dicts that you pass yourself, and to run arguments
(:func:`redact_args`), where only text values are redacted by name: ``--api-key sk-1``
is, ``--num-passes 3`` is not.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping

__all__ = [
    "REDACTED",
    "SECRET_WORDS",
    "detect_env",
    "is_secret_name",
    "redact_args",
    "redact_env",
    "redact_text",
]

REDACTED = "<redacted>"
SECRET_WORDS = (
    "PASSWORD",
    "PASSWD",
    "PASSPHRASE",
    "PASS",
    "PW",
    "SECRET",
    "SECRETS",
    "TOKEN",
    "TOKENS",
    "KEY",
    "KEYS",
    "APIKEY",
    "PRIVATE",
    "CREDENTIAL",
    "CREDENTIALS",
    "CREDS",
    "AUTH",
    "AUTHORIZATION",
    "COOKIE",
    "SIGNATURE",
    "SIG",
    "PAT",
    "JWT",
    "BEARER",
    "SALT",
    "OTP",
    "WEBHOOK",
    "WEBHOOKS",
)
_WORDS = frozenset(SECRET_WORDS)
_SAFE_NAMES = frozenset({"PWD", "OLDPWD", "SSH_AUTH_SOCK", "GPG_AGENT_INFO", "KEYTAB_DIR"})
_URL_PASSWORD = re.compile(r"(\w[\w+.-]*://[^:/@\s]*:)([^@\s]+)(@)")
_CONNINFO_PASSWORD = re.compile(r"(\bpassword\s*=\s*)('(?:[^'\\]|\\.)*'|\S+)", re.IGNORECASE)
_QUERY_VALUE = re.compile(r"([?&])([^=&#\s]+)=([^&#\s]*)")


def _words(name: str) -> list[str]:
    # split snake, kebab, dotted and camelCase names into upper-case word parts
    spaced = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", name)
    return [w for w in re.split(r"[^A-Za-z0-9]+", spaced.upper()) if w]


def is_secret_name(name: str) -> bool:
    """Whether a variable of this name may hold a credential (see the module doc)."""
    if name.upper() in _SAFE_NAMES:
        return False
    words = _words(name)
    joined = "".join(words)
    return any(w in _WORDS for w in words) or any(
        s in joined for s in ("PASSWORD", "PASSWD", "SECRET", "TOKEN", "CREDENTIAL", "APIKEY")
    )


def redact_text(value: str) -> str:
    """``value`` with the passwords of URLs and connection strings, and the values of
    secret-named URL query parameters, replaced by :data:`REDACTED`."""
    value = _URL_PASSWORD.sub(lambda m: m.group(1) + REDACTED + m.group(3), value)
    if "?" in value:
        value = _QUERY_VALUE.sub(
            lambda m: m.group(0) if not is_secret_name(m.group(2)) else
            f"{m.group(1)}{m.group(2)}={REDACTED}",
            value,
        )  # fmt: skip
    return _CONNINFO_PASSWORD.sub(lambda m: m.group(1) + REDACTED, value)


def redact_env(env: Mapping[str, object]) -> dict[str, object]:
    """Return a copy of ``env`` with secret values replaced by :data:`REDACTED`."""
    out: dict[str, object] = {}
    for name, value in env.items():
        if is_secret_name(str(name)):
            out[name] = REDACTED
        elif isinstance(value, str):
            out[name] = redact_text(value)
        else:
            out[name] = value
    return out


def redact_args(args: Mapping[str, object]) -> dict[str, object]:
    """Return a copy of run arguments with secrets replaced by :data:`REDACTED`: text
    values (also in lists) of secret-named arguments, and passwords inside any text."""

    def clean(name: str, value: object) -> object:
        if isinstance(value, str):
            return REDACTED if is_secret_name(name) else redact_text(value)
        if isinstance(value, list):
            return [clean(name, item) for item in value]
        return value

    return {name: clean(str(name), value) for name, value in args.items()}


def detect_env() -> dict[str, object]:
    """The current process environment with secrets redacted."""
    return redact_env(os.environ)
