"""Text from the store made safe to print: no terminal escapes, no hidden reordering.

Run names, params, tags and cell code come from whoever wrote the run. In text renderings (the text card,
``%runs`` as text, ``jt.diff``) control characters are dropped (an ``ESC ]0;...BEL`` would retitle the
terminal, a ``\\r`` overwrite a line), and bidirectional controls are shown as ``<U+202E>`` instead of
silently reordering what follows (``safe\\u202eexe.txt`` would read "safetxt.exe").
"""

from __future__ import annotations

import re

_BIDI = "\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f]")
_BIDI_CHARACTER = re.compile(f"[{_BIDI}]")


def visible(text: str) -> str:
    """``text`` without control characters (newlines and tabs kept) and with bidi controls spelled out."""
    text = _CONTROL.sub("", str(text))
    return _BIDI_CHARACTER.sub(lambda match: f"<U+{ord(match.group(0)):04X}>", text)
