"""Recognising credentials so that they are never logged: by name, by value, and inside source text.

A name like ``api_key`` or ``db_password`` is withheld whatever its value; a value that looks like a known
token (``sk-...``, ``ghp_...``, ``AKIA...``, a JWT, a private key, ``user:pass@`` in a URL) is withheld
whatever its name. Source code and tracebacks are logged with such values replaced by ``***``.
"""

from __future__ import annotations

import re

REDACTED = "***"

_SECRET_NAME = re.compile(
    r"(passw(or)?d|passwd|pwd|secret|token|api[_-]?key|apikey|access[_-]?key|private[_-]?key|"
    r"credential|auth|session[_-]?key|signature|cookie|bearer|"
    r"(openai|aws|azure|gcp|google|hf|huggingface|wandb|comet|neptune|stripe|slack|github|gitlab|anthropic|"
    r"cohere|mistral|groq|replicate|pinecone|db|database|encryption|signing|ssh)[_-]?key)",
    re.IGNORECASE,
)
# Names that contain one of the words above but are ordinary ML vocabulary.
_HARMLESS_NAMES = re.compile(
    r"^(max|min|num|n|total|vocab|special|pad|bos|eos|unk|sep|cls|mask|new)_tokens?(_\w+)?$|^tokens$|tokeniz|author",
    re.IGNORECASE,
)

_SECRET_VALUE_PATTERNS = [
    r"sk-(proj-|ant-)?[A-Za-z0-9_\-]{16,}",  # OpenAI / Anthropic style keys
    r"gh[pousr]_[A-Za-z0-9]{30,}",  # GitHub tokens
    r"github_pat_[A-Za-z0-9_]{30,}",
    r"glpat-[A-Za-z0-9_\-]{20,}",  # GitLab
    r"xox[abprs]-[A-Za-z0-9\-]{10,}",  # Slack
    r"AKIA[0-9A-Z]{16}",  # AWS access key id
    r"ASIA[0-9A-Z]{16}",
    r"AIza[0-9A-Za-z_\-]{35}",  # Google API key
    r"hf_[A-Za-z0-9]{30,}",  # Hugging Face
    r"(sk|rk|pk)_(live|test)_[A-Za-z0-9]{16,}",  # Stripe
    r"npm_[A-Za-z0-9]{36}",
    r"SG\.[A-Za-z0-9_\-]{16,}\.[A-Za-z0-9_\-]{16,}",  # SendGrid
    r"eyJ[A-Za-z0-9_\-]{8,}\.eyJ[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,}",  # JWT
    r"-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*?(-----END [A-Z ]*PRIVATE KEY-----|$)",
]
_SECRET_VALUE = re.compile("|".join(f"(?:{pattern})" for pattern in _SECRET_VALUE_PATTERNS))
_URL_CREDENTIALS = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.\-]*://)(?P<user>[^/\s:@'\"]*):(?P<password>[^/\s@'\"]+)@")

# `api_key = "..."`, `password: str = '...'`, `token="..."` (also as a keyword argument) in source text.
_ASSIGNED_SECRET = re.compile(
    r"""(?P<name>\b[A-Za-z_][A-Za-z0-9_]*)(?P<sep>\s*(?::\s*[A-Za-z_][\w\[\], .]*)?\s*=\s*|\s*:\s*)"""
    r"""(?P<prefix>[rbuRBU]{0,2})(?P<quote>'''|\"\"\"|'|")(?P<value>.*?)(?P=quote)""",
    re.DOTALL,
)


def is_secret_name(name: str) -> bool:
    """True for names that look like they hold a credential (``api_key``, ``DB_PASSWORD``, ``auth.token``)."""
    last = name.rsplit(".", 1)[-1]
    for part in (last, name):
        if _SECRET_NAME.search(part) and not _HARMLESS_NAMES.search(part):
            return True
    return False


def is_secret_value(value: object) -> bool:
    """True for strings that look like a token, a private key or a URL with a password."""
    if not isinstance(value, str) or len(value) < 8:
        return False
    return bool(_SECRET_VALUE.search(value) or _URL_CREDENTIALS.search(value))


def redact_text(text: str) -> str:
    """``text`` with secret-looking values, URL passwords and values assigned to secret-like names replaced."""

    def assigned(match: re.Match) -> str:
        if not is_secret_name(match.group("name")) or not match.group("value"):
            return match.group(0)
        return f"{match.group('name')}{match.group('sep')}{match.group('prefix')}{match.group('quote')}{REDACTED}{match.group('quote')}"

    text = _ASSIGNED_SECRET.sub(assigned, text)
    text = _SECRET_VALUE.sub(REDACTED, text)
    return _URL_CREDENTIALS.sub(lambda m: f"{m.group('scheme')}{m.group('user')}:{REDACTED}@", text)
