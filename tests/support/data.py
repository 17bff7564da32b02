"""Sample files: small but real PDFs, random binary data, and things that must be refused."""

from __future__ import annotations

import io
import os
import shutil
import zipfile
from pathlib import Path


def pdf_bytes(text: str = "Pligt brochure", pad: int = 0) -> bytes:
    """A small but well-formed PDF (libmagic says application/pdf)."""
    body = f"%PDF-1.4\n1 0 obj\n<< /Title ({text}) >>\nendobj\n".encode() + b"%" + b"x" * pad + b"\n"
    return body + b"trailer\n<< /Root 1 0 R >>\n%%EOF\n"


#: A plain start for random test data: about 1 % of purely random blobs look like a
#: DOS program to libmagic (a jump instruction first) and would be refused.
BINARY_HEADER = b"Pligt test data, not a program.\n\x00\x01"


def binary_bytes(size: int) -> bytes:
    """Random bytes of ``size`` that libmagic calls application/octet-stream."""
    return (BINARY_HEADER + os.urandom(max(0, size - len(BINARY_HEADER))))[:size]


def zip_bytes() -> bytes:
    """A Zip archive holding one text file."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as z:
        z.writestr("readme.txt", "not a pdf")
    return buffer.getvalue()


def elf_bytes() -> bytes:
    """A Linux executable (the system's ``true``)."""
    return Path(shutil.which("true") or "/bin/true").read_bytes()


def pe_bytes() -> bytes:
    """The start of a Windows PE executable: an MZ header pointing at a PE header."""
    header = bytearray(b"MZ" + b"\x90\x00" + b"\x00" * 56)
    header[0x3C:0x40] = (64).to_bytes(4, "little")
    return bytes(header) + b"PE\x00\x00" + b"\x4c\x01" + b"\x00" * 200
