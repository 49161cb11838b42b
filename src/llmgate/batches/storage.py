"""Bytes of stored files under ``FILES_DIR``: written to a temp file, then renamed into place.

A reader never sees a half-written file: bytes land in ``.tmp-*`` and only a complete file is
renamed (atomic on one filesystem) to its final name. Names are random, never client-supplied.
"""
from __future__ import annotations

import os
import secrets
import shutil
from pathlib import Path
from typing import BinaryIO

from flask import current_app

from ..errors import PayloadTooLarge

COPY_BUFFER = 1024 * 1024
TEMP_PREFIX = ".tmp-"


def files_dir() -> Path:
    path = Path(current_app.config["FILES_DIR"])
    path.mkdir(parents=True, exist_ok=True)
    return path


def max_upload_bytes() -> int:
    return int(current_app.config["MAX_UPLOAD_BYTES"])


def path_of(storage_name: str) -> Path:
    return files_dir() / storage_name


class PendingFile:
    """A file being written: ``path`` while open, ``commit()`` renames it to ``storage_name``."""

    def __init__(self) -> None:
        self.storage_name = secrets.token_hex(16)
        self.path = files_dir() / (TEMP_PREFIX + self.storage_name)
        self.size = 0
        self.committed = False

    def fill_from(self, stream: BinaryIO, *, max_bytes: int | None = None) -> "PendingFile":
        limit = max_upload_bytes() if max_bytes is None else max_bytes
        with open(self.path, "wb") as out:
            while True:
                block = stream.read(COPY_BUFFER)
                if not block:
                    break
                self.size += len(block)
                if self.size > limit:
                    out.close()
                    self.discard()
                    raise PayloadTooLarge(f"The file is larger than the {limit}-byte upload limit.",
                                          param="file")
                out.write(block)
        return self

    def commit(self) -> str:
        final = path_of(self.storage_name)
        os.replace(self.path, final)
        self.committed = True
        self.path = final
        return self.storage_name

    def discard(self) -> None:
        Path(self.path).unlink(missing_ok=True)

    def __enter__(self) -> "PendingFile":
        return self

    def __exit__(self, *_: object) -> None:
        # Anything that goes wrong before commit leaves nothing behind.
        if not self.committed:
            self.discard()


def remove(storage_name: str) -> None:
    path_of(storage_name).unlink(missing_ok=True)


def copy_into(source: Path, pending: PendingFile) -> None:
    shutil.copyfile(source, pending.path)
    pending.size = pending.path.stat().st_size
