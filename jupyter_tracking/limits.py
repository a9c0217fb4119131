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
    text = str(key)
    stripped = text.strip()
    if stripped != text:  # MLflow drops surrounding blanks, which would merge ``lr `` with ``lr``
        text = "_" * (len(text) - len(text.lstrip())) + stripped + "_" * (len(text) - len(text.rstrip()))
    cleaned = _INVALID_KEY_CHARACTERS.sub("_", text)
    while ".." in cleaned:
        cleaned = cleaned.replace("..", "._")
    cleaned = cleaned.lstrip("/") or "_"
    return cleaned[:MAX_KEY_LENGTH]


def clean_value(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters, ending with a visible marker when it was cut."""
    if len(text) <= limit:
        return text
    return text[: limit - len(TRUNCATION_MARKER)] + TRUNCATION_MARKER


def _distinct(cleaned: str, original: str) -> str:
    """A stable name for ``original`` when its cleaned form is taken: the cleaned form and a short digest."""
    import hashlib

    suffix = "-" + hashlib.sha1(original.encode("utf-8", "surrogatepass")).hexdigest()[:6]
    return cleaned[: MAX_KEY_LENGTH - len(suffix)] + suffix


def clean_mapping(
    values: dict[str, str], limit: int, *, taken: dict[str, str] | None = None
) -> tuple[dict[str, str], list[str]]:
    """Clean keys and values of a params/tags mapping; returns it and the original keys that had to change.

    Keys that clean to the same name (``loss_α`` and ``loss_β``, or ``names.lr `` and ``names.lr_``) are
    both kept: a key that was already valid keeps its name, the others get a stable digest suffix.
    ``taken``: keys already recorded for other originals (a later call must not overwrite them).
    """
    groups: dict[str, list[str]] = {}
    for key in values:
        groups.setdefault(clean_key(key), []).append(key)
    cleaned: dict[str, str] = {}
    changed: list[str] = []
    for new_key, originals in groups.items():
        for key in originals:
            target = new_key
            clash = len(originals) > 1 or (taken is not None and new_key in taken and new_key != key)
            if clash and key != new_key:
                target = _distinct(new_key, str(key))
            value = values[key]
            new_value = clean_value(str(value), limit)
            if target != key or new_value != value:
                changed.append(key)
            cleaned[target] = new_value
    return cleaned, changed


class KeyCleaner:
    """Cleans keys one at a time (metric keys as they are logged), never letting two keys merge into one."""

    def __init__(self) -> None:
        self._owner: dict[str, str] = {}  # cleaned key -> the original it belongs to
        self._cleaned: dict[str, str] = {}

    def clean(self, key: str) -> str:
        found = self._cleaned.get(key)
        if found is not None:
            return found
        target = clean_key(key)
        owner = self._owner.get(target)
        if owner is not None and owner != key:
            target = _distinct(target, str(key))
        self._owner.setdefault(target, key)
        self._cleaned[key] = target
        return target
