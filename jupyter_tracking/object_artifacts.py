"""Python objects as run artifacts (``--artifacts NAME``), and loading them back without running strangers' code.

Saving picks a format that cannot run code when the object allows: JSON for plain data (numbers, strings,
lists, dicts that survive a JSON round trip unchanged), ``.npy`` for numeric numpy arrays. Anything else is
pickled (cloudpickle for lambdas and local classes) with a signature beside it (``NAME.pkl.sig``): an
HMAC-SHA256 of the file under a key only this user has (``~/.config/jupyter_tracking/artifact-signing.key``,
mode 0600, made on first use).

Loading reads JSON and ``.npy`` (``allow_pickle=False``) from any run. A pickle is loaded only when its
signature checks out with this user's key, that is when this user wrote it from this account; any other pickle
(a teammate's run on a shared server, a planted file) is refused with one line naming the run and its author,
unless the caller says ``trust=True`` (``%track load RUN --trust``).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
from pathlib import Path
from typing import Any

SIGNATURE_SUFFIX = ".sig"
FORMATS = (".json", ".npy", ".pkl")  # in the order they are looked for


class NotSaved(Exception):
    """The object cannot be written in any format (the message says why)."""


class Refused(Exception):
    """A pickle this user did not write was not loaded (the message names the run and its author)."""


def _key_path() -> Path:
    configured = os.environ.get("JUPYTER_TRACKING_SIGNING_KEY")
    if configured:
        return Path(configured)
    from .private_files import user_folder

    return user_folder("config") / "artifact-signing.key"


def _signing_key(create: bool) -> bytes | None:
    path = _key_path()
    try:
        return path.read_bytes()
    except FileNotFoundError:
        if not create:
            return None
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    key = secrets.token_bytes(32)
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another kernel made it just now
        return path.read_bytes()
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(key)
    return key


def _digest(key: bytes, path: Path) -> str:
    mac = hmac.new(key, digestmod=hashlib.sha256)
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            mac.update(block)
    return mac.hexdigest()


def _plain_json(value: Any) -> str | None:
    """The JSON text of ``value`` if it comes back from JSON exactly as it is, else None."""
    try:
        text = json.dumps(value, allow_nan=True)
        return text if json.loads(text) == value and _same_types(json.loads(text), value) else None
    except (TypeError, ValueError, RecursionError):
        return None


def _same_types(loaded: Any, value: Any) -> bool:
    if type(loaded) is not type(value):
        return False
    if isinstance(value, dict):
        return all(_same_types(loaded[k], v) for k, v in value.items())
    if isinstance(value, list):
        return all(_same_types(a, b) for a, b in zip(loaded, value))
    return True


def save(value: Any, folder: Path, name: str) -> list[Path]:
    """Write ``value`` into ``folder`` as ``NAME.json``, ``NAME.npy`` or a signed ``NAME.pkl``; returns the files."""
    folder.mkdir(parents=True, exist_ok=True)
    text = _plain_json(value)
    if text is not None:
        path = folder / f"{name}.json"
        path.write_text(text, encoding="utf-8")
        return [path]
    if type(value).__module__ == "numpy" and type(value).__name__ == "ndarray" and value.dtype.kind in "biufcmMSU":
        import numpy as np

        path = folder / f"{name}.npy"
        np.save(path, value, allow_pickle=False)
        return [path]
    path = folder / f"{name}.pkl"
    try:
        import pickle

        with open(path, "wb") as handle:
            pickle.dump(value, handle, protocol=pickle.HIGHEST_PROTOCOL)
    except Exception:  # noqa: BLE001 - lambdas, local classes: cloudpickle (an MLflow dependency) copes
        try:
            import cloudpickle

            with open(path, "wb") as handle:
                cloudpickle.dump(value, handle)
        except Exception as error:  # noqa: BLE001
            raise NotSaved(f"cannot be pickled: {type(error).__name__}") from None
    signature = path.with_name(path.name + SIGNATURE_SUFFIX)
    signature.write_text(_digest(_signing_key(create=True), path), encoding="ascii")
    return [path, signature]


def object_name(filename: str) -> str | None:
    """``model`` for ``model.pkl`` / ``model.json`` / ``model.npy``; None for other files (signatures)."""
    for suffix in FORMATS:
        if filename.endswith(suffix):
            return filename[: -len(suffix)]
    return None


def signed_by_me(path: Path, signature: Path | None) -> bool:
    """Whether ``signature`` is this user's HMAC of ``path``."""
    key = _signing_key(create=False)
    if key is None or signature is None or not signature.exists():
        return False
    expected = signature.read_text(encoding="ascii", errors="replace").strip()
    return hmac.compare_digest(expected, _digest(key, path))


def load(path: Path, *, signature: Path | None = None, trust: bool = False, run_id: str = "",
         author: str | None = None) -> Any:
    """The object in ``path``; a pickle only when this user signed it or ``trust`` is given (else Refused)."""
    if path.suffix == ".json":
        return json.loads(path.read_text(encoding="utf-8"))
    if path.suffix == ".npy":
        import numpy as np

        return np.load(path, allow_pickle=False)
    if not trust and not signed_by_me(path, signature):
        who = f"by {author!r}" if author else "by an unknown author"
        raise Refused(
            f"Not loaded: {path.stem!r} of run {run_id} is a pickle written {who}, not by you from this account; "
            f"unpickling can run any code. If you trust it, load it with `%track load {run_id} {path.stem} --trust` "
            f"(or jt.load(..., trust=True))."
        )
    import pickle

    with open(path, "rb") as handle:
        return pickle.load(handle)  # noqa: S301 - signed by this user, or trusted explicitly
