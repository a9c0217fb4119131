"""Artifact files of a run go to its artifact repository; through an MLflow server, a big one shows a progress line.

For a server that proxies artifacts (``mlflow-artifacts:/`` URIs, e.g. the team stack with S3 behind it) each file
is sent with the same PUT that MLflow's ``HttpArtifactRepository.log_artifact`` makes, but with ``UPLOAD_RETRIES``
retries: MLflow's default of 7 retries with back-off re-sends the file for minutes when the server's object store
is down, which keeps the cell from ending and the run from reaching the spool. A file of ``PROGRESS_MIN_BYTES``
or more is read through a counter that redraws one ``uploading NAME x / y MB (z%)`` line on stderr.
Every other case (local stores, S3 or other repositories the client writes to itself, multipart uploads) is
MLflow's own ``repository.log_artifact``.
"""

from __future__ import annotations

import os
import posixpath
import sys
import time
from typing import Any, BinaryIO

PROGRESS_MIN_BYTES = 8 * 2**20
UPLOAD_RETRIES = 2
REDRAW_SECONDS = 0.5
MB = 2**20


class ArtifactUploadError(RuntimeError):
    """The server did not store an artifact file (its message is one line). ``outage``: the server or its object
    store could not be reached or failed (5xx), so the run waits in the spool; else the server refused the file."""

    def __init__(self, message: str, *, outage: bool) -> None:
        super().__init__(message)
        self.outage = outage


def log_artifact(repository: Any, path: str, artifact_path: str | None, *, out: Any = None) -> None:
    """Upload ``path`` into ``artifact_path`` of ``repository`` (an MLflow ArtifactRepository)."""
    from mlflow.store.artifact.http_artifact_repo import HttpArtifactRepository

    if (
        not isinstance(repository, HttpArtifactRepository)
        or type(repository).log_artifact is not HttpArtifactRepository.log_artifact  # same PUT as ours only
        or repository._should_multipart_upload(path)
    ):
        repository.log_artifact(path, artifact_path)
        return
    size = os.path.getsize(path)
    name = os.path.basename(path)
    line = ProgressLine(name, size, out or sys.stderr) if size >= PROGRESS_MIN_BYTES else None
    _put(repository, path, artifact_path, size, line)


def _put(repository: Any, path: str, artifact_path: str | None, size: int, line: ProgressLine | None) -> None:
    from mlflow.store.artifact.artifact_repo import verify_artifact_path
    from mlflow.utils.mime_type_utils import _guess_mime_type
    from mlflow.utils.rest_utils import http_request

    verify_artifact_path(artifact_path)
    name = os.path.basename(path)
    endpoint = posixpath.join("/", *((artifact_path, name) if artifact_path else (name,)))
    with open(path, "rb") as handle:
        reader = CountingReader(handle, size, line.update if line else lambda sent: None)
        try:
            response = http_request(
                repository._host_creds, endpoint, "PUT", data=reader, max_retries=UPLOAD_RETRIES,
                backoff_factor=1, extra_headers={"Content-Type": _guess_mime_type(name)},
            )  # fmt: skip
        except Exception as error:  # noqa: BLE001 - one line for the run's notice
            if line:
                line.close(False)
            raise ArtifactUploadError(f"uploading {name} failed: {_first_line(error)}", outage=True) from None
    if response.status_code != 200:
        if line:
            line.close(False)
        raise ArtifactUploadError(
            f"uploading {name} failed: the server answered HTTP {response.status_code}"
            + (" (its artifact store may be down)" if response.status_code >= 500 else ""),
            outage=response.status_code >= 500 or response.status_code in (401, 403, 408, 429),
        )
    if line:
        line.close(True)


def _first_line(error: BaseException) -> str:
    text = " ".join(str(error).split())
    if "ResponseError" in text and "500" in text:
        return "the server answered HTTP 500 (its artifact store may be down)"
    return (text[:200] or type(error).__name__)


class ProgressLine:
    """One stderr line redrawn in place (``\\r``) at most every ``REDRAW_SECONDS``; ``close()`` ends it."""

    def __init__(self, name: str, size: int, out: Any) -> None:
        self.name, self.size, self.out = name, size, out
        self.began = time.monotonic()
        self.last_draw = float("-inf")
        self.sent = 0
        self._draw()

    def _draw(self, end: str = "\r") -> None:
        percent = 100 * self.sent // self.size if self.size else 100
        self.out.write(f"jupyter_tracking: uploading {self.name} {self.sent / MB:.1f} / {self.size / MB:.1f} MB "
                       f"({percent}%){end}")
        self.out.flush()
        self.last_draw = time.monotonic()

    def update(self, sent: int) -> None:
        self.sent = sent
        if time.monotonic() - self.last_draw >= REDRAW_SECONDS:
            self._draw()

    def close(self, done: bool) -> None:
        seconds = time.monotonic() - self.began
        said = (f"uploaded {self.name} ({self.size / MB:.1f} MB) in {seconds:.1f} s" if done
                else f"upload of {self.name} failed after {seconds:.1f} s")
        self.out.write(f"jupyter_tracking: {said}\n")
        self.out.flush()


class CountingReader:
    """A file opened for reading that reports how many bytes were read (``seek`` lets a retry start over)."""

    def __init__(self, handle: BinaryIO, size: int, report) -> None:
        self.handle, self.size, self.report = handle, size, report

    def __len__(self) -> int:
        return self.size

    def read(self, amount: int = -1) -> bytes:
        chunk = self.handle.read(amount)
        self.report(self.handle.tell())
        return chunk

    def __iter__(self):
        while chunk := self.read(MB):
            yield chunk

    def tell(self) -> int:
        return self.handle.tell()

    def seek(self, offset: int, whence: int = 0) -> int:
        position = self.handle.seek(offset, whence)
        self.report(position)
        return position
