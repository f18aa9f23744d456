"""Exports as HTTP downloads, streamed without holding the file in memory."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Iterator

from asgiref.sync import sync_to_async
from django.http import StreamingHttpResponse
from django.utils.http import content_disposition_header

from chat.exports import Download

PARTS_PER_SEND = 200


def download_response(download: Download) -> StreamingHttpResponse:
    """`download` as an attachment, its parts sent as they are written."""
    response = StreamingHttpResponse(_drain(download.parts), content_type=download.content_type)
    response["Content-Disposition"] = content_disposition_header(True, download.filename)
    response["X-Accel-Buffering"] = "no"
    return response


async def _drain(parts: Iterator[str]) -> AsyncIterator[bytes]:
    # Under ASGI Django would read a sync iterator into a list before sending it, so
    # the parts are drawn here in batches. Plain sync_to_async (thread-sensitive) runs
    # every batch on this request's one database thread, and, unlike
    # database_sync_to_async, leaves the connection open between batches: the export's
    # ORM cursors live on it. Django closes it when the request finishes.
    take = sync_to_async(_take)
    while (batch := await take(parts)) is not None:
        yield batch


def _take(parts: Iterator[str]) -> bytes | None:
    batch = list(itertools.islice(parts, PARTS_PER_SEND))
    return "".join(batch).encode() if batch else None
