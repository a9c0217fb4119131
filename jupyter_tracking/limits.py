"""Making keys and values acceptable to MLflow: allowed characters, length limits, truncation markers.

MLflow rejects keys over 250 characters or with characters outside letters, digits and ``_ - . space / :``
(and path-like keys such as ``../x``), and truncates long values with a warning. We fix them up front and
let the recorder tell the user once.
"""

from __future__ import annotations

import re

MAX_KEY_LENGTH = 250
MAX_PARAM_LENGTH = 6000
MAX_TAG_LENGTH = 8000
TRUNCATION_MARKER = "...[truncated]"

_INVALID_KEY_CHARACTERS = re.compile(r"[^A-Za-z0-9_\-. /:]")


def clean_key(key: str) -> str:
    """``key`` with invalid characters replaced by ``_``, no path-like parts, at most 250 characters."""
    cleaned = _INVALID_KEY_CHARACTERS.sub("_", str(key))
    while ".." in cleaned:
        cleaned = cleaned.replace("..", "._")
    cleaned = cleaned.lstrip("/") or "_"
    return cleaned[:MAX_KEY_LENGTH]


def clean_value(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters, ending with a visible marker when it was cut."""
    if len(text) <= limit:
        return text
    return text[: limit - len(TRUNCATION_MARKER)] + TRUNCATION_MARKER


def clean_mapping(values: dict[str, str], limit: int) -> tuple[dict[str, str], list[str]]:
    """Clean keys and values of a params/tags mapping; returns it and the original keys that had to change."""
    cleaned: dict[str, str] = {}
    changed: list[str] = []
    for key, value in values.items():
        new_key, new_value = clean_key(key), clean_value(str(value), limit)
        if new_key != key or new_value != value:
            changed.append(key)
        cleaned[new_key] = new_value
    return cleaned, changed
