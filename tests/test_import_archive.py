"""ChatGPT's export zip is unpacked with a running cap (chat.imports.archive): a zip bomb
sent to the live server gets a 4xx quickly, and the server's memory stays flat."""

from __future__ import annotations

import io
import json
import time
import zipfile
from pathlib import Path

import pytest

from chat.imports.archive import MAX_RATIO
from chat.models import Conversation

MB = 1024 * 1024


def bomb(unpacked: int, name: str = "conversations.json") -> bytes:
    """A small zip whose one file inflates to `unpacked` bytes of JSON-ish blanks."""
    buffer = io.BytesIO()
    with (
        zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as archive,
        archive.open(name, "w", force_zip64=True) as entry,
    ):
        entry.write(b"[")
        block = b" " * MB
        for _ in range(unpacked // MB):
            entry.write(block)
        entry.write(b"]")
    return buffer.getvalue()


def peak_rss_reset() -> bool:
    """Reset this process's peak RSS (VmHWM); False where the kernel won't let us."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def memory(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise LookupError(field)


def test_a_zip_bomb_is_refused_quickly_with_flat_memory(api):
    archive = bomb(300 * MB)
    assert len(archive) < 2 * MB
    # The live server runs in this process, so its memory is ours to read.
    can_reset = peak_rss_reset()
    before = memory("VmRSS")
    started = time.monotonic()
    response = api.post("/api/import", content=archive)
    elapsed = time.monotonic() - started
    grown = (memory("VmHWM") if can_reset else memory("VmRSS")) - before
    assert response.status_code in (400, 413)
    assert response.json()["error"]["code"] in ("invalid_import", "content_too_large")
    assert grown < 100 * MB, f"the server grew by {grown // MB} MB"
    assert elapsed < 60  # generous for a loaded machine: not the minutes a full unpack takes
    assert not Conversation.objects.exists()


def test_a_file_that_unpacks_far_beyond_its_size_is_refused(api):
    response = api.post("/api/import", content=bomb(4 * MB))
    assert response.status_code == 400
    assert f"{MAX_RATIO} times" in response.json()["error"]["message"]


def test_unpacking_stops_at_the_import_limit(api, settings):
    settings.CHAT_IMPORT_MAX_BYTES = 2 * MB
    entries = [{"title": "x", "mapping": {}, "filler": "é" * 100_000} for _ in range(20)]
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
        archive.writestr("conversations.json", json.dumps(entries))
    assert len(buffer.getvalue()) > settings.CHAT_IMPORT_MAX_BYTES  # the upload itself too
    settings.CHAT_IMPORT_MAX_BYTES = 3 * MB
    with zipfile.ZipFile(buffer := io.BytesIO(), "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("conversations.json", json.dumps(entries))
    response = api.post("/api/import", content=buffer.getvalue())
    assert (response.status_code, response.json()["error"]["code"]) == (413, "content_too_large")


@pytest.mark.parametrize(
    "archive",
    [
        b"PK\x03\x04" + b"\x00" * 100,
        bomb(MB, name="other.json"),
    ],
)
def test_a_broken_or_foreign_zip_is_a_400(api, archive):
    response = api.post("/api/import", content=archive)
    assert (response.status_code, response.json()["error"]["code"]) == (400, "invalid_import")
