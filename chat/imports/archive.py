"""ChatGPT's export zip, unpacked with a running cap, so that a zip bomb costs nothing.

Neither the sizes in the zip's headers nor its name list are trusted: the bytes are
counted as they are inflated, a chunk at a time, and reading stops as soon as the total
passes the limit or the ratio of unpacked to packed bytes passes MAX_RATIO.
"""

from __future__ import annotations

import io
import zipfile
import zlib

from chat.errors import ChatError, TooLarge

from .records import InvalidImport

CHATGPT_FILE = "conversations.json"
CHUNK = 1 << 20
# JSON text packs 5-20 times; a hundred times is a file made to be unpacked.
MAX_RATIO = 100
# Below this many unpacked bytes the ratio is not judged: tiny files pack oddly well.
RATIO_GRACE = 1 << 20
BROKEN = (zipfile.BadZipFile, zipfile.LargeZipFile, NotImplementedError, RuntimeError,
          EOFError, zlib.error, ValueError, OSError)  # fmt: skip


def conversations_json(raw: bytes, limit: int) -> bytes:
    """The bytes of the zip's conversations.json, at most `limit` of them unpacked."""
    try:
        with zipfile.ZipFile(io.BytesIO(raw)) as archive:
            entry = _entry(archive)
            return _unpack(archive, entry, limit)
    except ChatError:
        raise
    except BROKEN:
        raise InvalidImport("The file looks like a zip file but cannot be opened.") from None


def _entry(archive: zipfile.ZipFile) -> zipfile.ZipInfo:
    for info in archive.infolist():
        if info.filename.rsplit("/", 1)[-1] == CHATGPT_FILE and not info.is_dir():
            return info
    raise InvalidImport(f"The zip file holds no {CHATGPT_FILE}.")


def _unpack(archive: zipfile.ZipFile, entry: zipfile.ZipInfo, limit: int) -> bytes:
    packed = max(entry.compress_size, 1)
    if entry.file_size > limit:
        raise _too_big(limit)
    parts, total = [], 0
    with archive.open(entry) as stream:
        while chunk := stream.read(CHUNK):
            total += len(chunk)
            if total > limit:
                raise _too_big(limit)
            if total > RATIO_GRACE and total > MAX_RATIO * packed:
                raise InvalidImport(
                    f"{CHATGPT_FILE} unpacks to over {MAX_RATIO} times its packed size; "
                    "this is not an export."
                )
            parts.append(chunk)
    return b"".join(parts)


def _too_big(limit: int) -> TooLarge:
    return TooLarge(f"{CHATGPT_FILE} unpacks to more than the limit of {limit} bytes.")
