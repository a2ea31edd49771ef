"""Capture the process environment without its secrets.

:func:`detect_env` returns ``os.environ`` with every value that may be a credential
replaced by ``"<redacted>"``; the variable's name is kept, so you can still see that it
was set. A value is redacted whole when the variable's name is a secret name
(:func:`is_secret_name`):

- it has (case-insensitively) one of :data:`SECRET_WORDS` (``PASSWORD``, ``PASS``, ``PWD``,
  ``SECRET``, ``TOKEN``, ``KEY``, ``CREDENTIAL``, ``AUTH``, ``COOKIE`` …) as a word part
  (snake, kebab, dotted or camelCase): ``AWS_SECRET_ACCESS_KEY``, ``HF_TOKEN``,
  ``GITHUB_PAT``, ``DB_PASS``, ``MYSQL_PWD``, ``SSHPASS``, ``LDAP_BINDPW``, ``apiKey``;
- or ``PASSWORD``, ``PASSWD``, ``PASSPHRASE``, ``SECRET``, ``TOKEN``, ``CREDENTIAL`` or
  ``APIKEY`` inside a word (``PGPASSWORD``, ``NGROK_AUTHTOKEN``), but not in the word
  ``TOKENIZER(S)``;
- or its last word is ``PIN`` (``--pin``, ``PKCS11_PIN``; not ``PIN_MEMORY``);
- and it is not ``PWD`` or ``OLDPWD`` (the working directory), ``SSH_AUTH_SOCK`` or
  ``I_MPI_PIN``. So ``KEYBOARD``, ``SSH_ASKPASS`` (a program), ``PGPASSFILE`` (a path: the
  secret is in the file) and ``TOKENIZERS_PARALLELISM`` are not secret names.

Otherwise only the secret parts of the value are replaced (by :func:`redact_text`, also
used for artifact URIs and error messages):

- a URL's userinfo, split from the host at the last ``@`` of the authority (which ends
  at the first ``/``, ``?`` or ``#`` after ``://``), so ``postgres://u:p@ss@db/x`` gives
  ``postgres://u:<redacted>@db/x``; a password with an unencoded ``/`` is still redacted
  up to the next ``@``. Its password is always redacted. Its user name is redacted when
  the URL has no password and a web scheme (``http``, ``https``, ``ws``, ``wss``, and
  ``git+https`` and the like): there a lone user is how tokens are passed
  (``https://TOKEN@host/simple``, Sentry DSNs), and a token cannot be told from a name by
  its shape; whatever the scheme, also when it looks like a token: a known token prefix
  (``ghp_``, ``github_pat_``, ``glpat-``, ``hf_``, ``sk-``, ``xoxb-`` …), 32 or more hex
  digits, or 40 or more characters. ``ssh://git@host/x``, ``postgresql://alice@db/x`` and
  ``git@github.com:x/y`` (no scheme) keep their user;
- the value of a secret-named query parameter (``?token=...``, ``&sig=...``), with or
  without a ``?`` (an Azure SAS ``sv=...&sig=...``);
- the value of a secret-named ``Name=value`` part of a ``;``-separated connection string
  (``AccountKey``, ``SharedAccessSignature``, ``SharedAccessKey``, ``Password``, and
  ``Pwd`` here too), whole, up to the ``;`` that starts the next part; a part is one that
  follows a ``;`` or is followed by ``;Name=`` or a last ``;``. ``SharedAccessKeyName``
  (any name whose last word is ``NAME``) is kept;
- ``password=...`` in a libpq connection string (up to a space, or quoted).

The same rules apply to env dicts that you pass yourself, and to run arguments
(:func:`redact_args`): text values (also in lists and tuples) of secret-named arguments are
redacted whole, others by :func:`redact_text`; numbers of secret-named arguments too
(``--token 314159``, ``--pin 1234``), unless the name also has a word of a count, a size
or an id (``MAX``, ``NUM``, ``N``, ``SIZE``, ``DIM``, ``LEN``, ``RATE``, ``K``, ``ID``,
``TIMEOUT``, plural ``TOKENS`` …: :data:`QUANTITY_WORDS`), so ``--max-tokens 512``,
``--key-dim 64``, ``--pad-token-id 0`` and ``--pass-rate 0.5`` stay; ``True`` and
``False`` always stay (``--use-auth``). ``--num-passes 3`` is not secret-named.
"""

from __future__ import annotations

import bisect
import os
import re
from collections.abc import Mapping

REDACTED = "<redacted>"
SECRET_WORDS = (
    "PASSWORD",
    "PASSWD",
    "PASSPHRASE",
    "PASS",
    "PW",
    "PWD",
    "BINDPW",
    "ROOTPW",
    "SSHPASS",
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
QUANTITY_WORDS = frozenset(
    {
        *("MAX", "MIN", "NUM", "N", "NB", "COUNT", "TOTAL", "SIZE", "DIM", "DIMS", "LEN"),
        *("LENGTH", "RATE", "RATIO", "FRAC", "PCT", "PROB", "TOP", "K", "BUDGET", "LIMIT"),
        *("PER", "ID", "IDS", "IDX", "INDEX", "HEADS", "LAYERS", "STEPS", "TTL", "TIMEOUT"),
        *("RETRIES", "LEVEL", "THRESHOLD", "WEIGHT", "SCALE", "SEED", "LR", "TOKENS", "KEYS"),
    }
)
_WORDS = frozenset(SECRET_WORDS)
_INNER = ("PASSWORD", "PASSWD", "PASSPHRASE", "SECRET", "TOKEN", "CREDENTIAL", "APIKEY")
_NOT_SECRET_WORDS = frozenset({"TOKENIZER", "TOKENIZERS", "TOKENIZE", "TOKENIZED"})
_SAFE_NAMES = frozenset(
    {"PWD", "OLDPWD", "SSH_AUTH_SOCK", "GPG_AGENT_INFO", "KEYTAB_DIR", "I_MPI_PIN"}
)
# userinfo@ of a URL: up to the last @ before the first / ? # of the authority
_URL_USERINFO = re.compile(r"([A-Za-z][\w+.-]{0,31}://)([^/?#\s]*)@")
# user:password@ with a / in the password (no @ before the first /): up to the next @
_URL_PASSWORD = re.compile(r"(\w[\w+.-]{0,31}://[^:/@\s]*:)([^@\s]+)(@)")
_WEB_SCHEMES = frozenset({"http", "https", "ws", "wss"})
_TOKEN_PREFIXES = (
    *("ghp_", "gho_", "ghu_", "ghs_", "ghr_", "github_pat_", "glpat-", "gldt-", "glrt-"),
    *("hf_", "sk-", "sk_", "xoxa-", "xoxb-", "xoxp-", "xoxr-", "xoxs-", "xapp-", "pypi-"),
    *("npm_", "dop_v1_"),
)
_TOKEN_SHAPE = re.compile(r"[0-9a-fA-F]{32,}|.{40,}", re.DOTALL)
_NOT_REDACTED = "(?!" + re.escape(REDACTED) + ")"
_CONNINFO_PASSWORD = re.compile(
    r"(\bpassword\s*=\s*)" + _NOT_REDACTED + r"('(?:[^'\\]|\\.)*'|\S+)", re.IGNORECASE
)
_QUERY_VALUE = re.compile(r"(^|[?&])([^=&#?/:;\s]+)=([^&#\s]*)", re.MULTILINE)
_KEY = r"[A-Za-z][\w.-]*"
# Name= of a part of a ;-separated string, whose value runs to the next _PART_END: the ;
# that starts the next part, a last ;, or the end of the line
_PART_NAME = re.compile(rf"(?:(;)\s*|^|(?<=\s))({_KEY})[ \t]*=[ \t]*", re.MULTILINE)
_PART_END = re.compile(rf";(?=\s*{_KEY}[ \t]*=|[ \t]*$)|$", re.MULTILINE)


def _words(name: str) -> list[str]:
    # split snake, kebab, dotted and camelCase names into upper-case word parts
    spaced = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", name)
    return [w for w in re.split(r"[^A-Za-z0-9]+", spaced.upper()) if w]


def is_secret_name(name: str) -> bool:
    """Whether a variable of this name may hold a credential (see the module doc)."""
    if name.upper() in _SAFE_NAMES:
        return False
    words = _words(name)
    joined = "".join(w for w in words if w not in _NOT_SECRET_WORDS)
    return (
        any(w in _WORDS for w in words) or any(s in joined for s in _INNER) or words[-1:] == ["PIN"]
    )


def _is_secret_number(name: str) -> bool:
    return is_secret_name(name) and QUANTITY_WORDS.isdisjoint(_words(name))


def _is_token(user: str) -> bool:
    return user.startswith(_TOKEN_PREFIXES) or bool(_TOKEN_SHAPE.fullmatch(user))


def _redact_userinfo(m: re.Match[str]) -> str:
    scheme, userinfo = m.group(1), m.group(2)
    user, colon, password = userinfo.partition(":")
    web = not _WEB_SCHEMES.isdisjoint(scheme[:-3].lower().split("+"))
    if user and (_is_token(user) or (web and not password)):
        user = REDACTED
    return f"{scheme}{user}{colon}{REDACTED if password else ''}@"


def _redact_parts(text: str) -> str:
    if ";" not in text:
        return text
    ends = [m.start() for m in _PART_END.finditer(text)]  # the last is len(text)
    out, end = [], 0
    for m in _PART_NAME.finditer(text):
        stop = ends[bisect.bisect_left(ends, m.end())]
        name, value = m.group(2), text[m.end() : stop]
        if (
            m.start() < end
            or not value
            or value.startswith(REDACTED)
            or not (m.group(1) or text.startswith(";", stop))
            or _words(name)[-1] == "NAME"
            or not (is_secret_name(name) or name.upper() == "PWD")  # ODBC's password
        ):
            continue
        out += [text[end : m.end()], REDACTED]
        end = stop
    return "".join(out) + text[end:]


def redact_text(value: str) -> str:
    """``value`` with the secret parts of URLs, query strings and connection strings
    replaced by :data:`REDACTED` (see the module doc)."""
    value = _URL_USERINFO.sub(_redact_userinfo, value)
    value = _URL_PASSWORD.sub(lambda m: m.group(1) + REDACTED + m.group(3), value)
    value = _redact_parts(value)
    value = _CONNINFO_PASSWORD.sub(lambda m: m.group(1) + REDACTED, value)
    return _QUERY_VALUE.sub(
        lambda m: (
            m.group(0)
            if m.group(3).startswith(REDACTED) or not is_secret_name(m.group(2))
            else f"{m.group(1)}{m.group(2)}={REDACTED}"
        ),
        value,
    )


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
    values (also in lists and tuples) of secret-named arguments, their numbers unless
    the name is also that of a count, size or id, and secrets inside any text."""

    def clean(name: str, value: object) -> object:
        if isinstance(value, str):
            return REDACTED if is_secret_name(name) else redact_text(value)
        if isinstance(value, (list, tuple)):
            return [clean(name, item) for item in value]
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return REDACTED if _is_secret_number(name) else value
        return value

    return {name: clean(str(name), value) for name, value in args.items()}


def detect_env() -> dict[str, object]:
    """The current process environment with secrets redacted."""
    return redact_env(os.environ)
