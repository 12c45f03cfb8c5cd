"""A manifest file's text and its encoding, read the same way by the loader and by write-back.

UTF-8 (with or without a byte order mark) is the norm. A file that starts
with a UTF-16 or UTF-32 byte order mark (Windows editors write those) is
decoded with it, and written back in the same encoding with the same mark.
Standard input (``-``) is read once per process and kept: the loader parses
it, and ``fix`` diffs and prints the fixed text against the same bytes.
"""

from __future__ import annotations

import codecs
import sys
from dataclasses import dataclass

STDIN_PATH = "-"
# Longest first: a UTF-32-LE mark starts with the UTF-16-LE one.
BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32-le"),
    (codecs.BOM_UTF32_BE, "utf-32-be"),
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)
_STDIN: dict[str, bytes] = {}  # the bytes read from standard input, once


class SourceError(Exception):
    def __init__(self, message: str, line: int | None = None):
        super().__init__(message)
        self.line = line


@dataclass(frozen=True)
class Encoding:
    codec: str = "utf-8"
    bom: bytes = b""

    def encode(self, text: str) -> bytes:
        return self.bom + text.encode(self.codec)

    @property
    def name(self) -> str:
        return self.codec.upper() + (" with a byte order mark" if self.bom else "")


def read_bytes(path: str, limit: int | None = None) -> bytes:
    """The file's bytes (standard input's for ``-``, read once); OSError as the OS reports it."""
    if path == STDIN_PATH:
        if STDIN_PATH not in _STDIN:  # the first reader (the loader) bounds it
            _STDIN[STDIN_PATH] = sys.stdin.buffer.read(-1 if limit is None else limit + 1)
        raw = _STDIN[STDIN_PATH]
        return raw if limit is None else raw[: limit + 1]
    with open(path, "rb") as handle:
        return handle.read() if limit is None else handle.read(limit + 1)


def decode(raw: bytes) -> tuple[str, Encoding]:
    """The text and its encoding; SourceError for a binary file or bytes that are not text."""
    for bom, codec in BOMS:
        if raw.startswith(bom):
            try:
                return raw[len(bom) :].decode(codec), Encoding(codec, bom)
            except UnicodeDecodeError as err:
                raise SourceError(f"not valid {codec.upper()} after its byte order mark (offset {err.start + len(bom)})") from None
    if b"\x00" in raw[:8192]:
        raise SourceError("binary file (contains NUL bytes; UTF-16 or UTF-32 text needs a byte order mark), not a manifest")
    try:
        return raw.decode("utf-8"), Encoding()
    except UnicodeDecodeError as err:
        line = raw.count(b"\n", 0, err.start) + 1
        raise SourceError(f"not valid UTF-8 (byte 0x{raw[err.start]:02x} at offset {err.start})", line) from None


def read_source(path: str) -> tuple[str, Encoding]:
    """The text of ``path`` as the loader read it, and how to write it back."""
    return decode(read_bytes(path))
