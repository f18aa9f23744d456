"""HTTP/1.1 on plain asyncio for the `openai` SDK's httpx client: the proxied path's reads.

httpx's own transport (httpcore on anyio) costs about 100 µs of CPU for every read of a
streamed body (a cancel scope and a deadline per read, its trace hooks) and polls every
pooled socket each time a request starts or ends; at 40 chunks a reply that was most of
what reading an upstream cost. This one is an `asyncio.Protocol` feeding h11 (the parser
httpcore uses), with a pool of kept-alive connections, the request's time-outs, and
httpx's exceptions, so the SDK above it sends, retries and fails as it did.
It speaks to the upstream directly: with a proxy named in the environment the provider
keeps httpx's own transport (`openai_compat.http_client`).
"""

from __future__ import annotations

import asyncio
import collections
import ssl

import h11
import httpx2

# Received and not yet parsed: past this, stop reading the socket until the reader catches up.
HIGH_WATER = 256 * 1024
DEFAULT_PORTS = {b"http": 80, b"https": 443}


class AsyncioTransport(httpx2.AsyncBaseTransport):
    """Kept-alive HTTP/1.1 connections per origin, at most `limits.max_connections` open."""

    def __init__(self, limits: httpx2.Limits, ssl_context: ssl.SSLContext | None = None) -> None:
        self._ssl = ssl_context
        self._max_open = limits.max_connections or 1 << 30
        idle = limits.max_keepalive_connections  # None: no limit, as in httpx
        self._max_idle = 1 << 30 if idle is None else idle
        self._expiry = limits.keepalive_expiry or 0.0
        self._idle: dict[tuple, list[Connection]] = {}
        self._open = 0
        self._waiting: collections.deque[asyncio.Future] = collections.deque()

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        timeouts = request.extensions.get("timeout", {})
        url = request.url
        origin = (url.raw_scheme, url.raw_host, url.port or DEFAULT_PORTS.get(url.raw_scheme))
        connection = self._reuse(origin) or await self._connect(origin, timeouts)
        try:
            await connection.send(request, timeouts.get("write"))
            head = await connection.receive_head(timeouts.get("read"))
        except BaseException:
            self.discard(connection)
            raise
        return httpx2.Response(
            head.status_code,
            headers=head.headers.raw_items(),
            stream=Body(self, connection, timeouts.get("read")),
            extensions={"http_version": b"HTTP/1.1", "reason_phrase": head.reason},
        )

    def _reuse(self, origin: tuple) -> Connection | None:
        idle = self._idle.get(origin)
        now = asyncio.get_running_loop().time()
        while idle:
            connection = idle.pop()
            if connection.reusable(now, self._expiry):
                return connection
            self.discard(connection)
        return None

    async def _connect(self, origin: tuple, timeouts: dict) -> Connection:
        await self._slot(timeouts.get("pool"))
        scheme, host, port = origin
        loop = asyncio.get_running_loop()
        tls = {}
        if scheme == b"https":
            # Made as httpx makes it (certifi, SSL_CERT_FILE), once, on first use.
            self._ssl = self._ssl or httpx2.create_ssl_context()
            tls = {"ssl": self._ssl, "server_hostname": host.decode()}
        try:
            async with asyncio.timeout(timeouts.get("connect")):
                _, connection = await loop.create_connection(
                    lambda: Connection(loop, origin), host.decode(), port, **tls
                )
        except BaseException as err:
            self._release()
            if isinstance(err, TimeoutError):
                raise httpx2.ConnectTimeout("Timed out while connecting.") from err
            if isinstance(err, OSError):
                raise httpx2.ConnectError(str(err)) from err
            raise
        return connection

    async def _slot(self, timeout: float | None) -> None:
        """Wait (up to the pool time-out) until one more connection may open."""
        while self._open >= self._max_open:
            if not self._close_one_idle():
                waiter = asyncio.get_running_loop().create_future()
                self._waiting.append(waiter)
                try:
                    async with asyncio.timeout(timeout):
                        await waiter
                except TimeoutError as err:
                    raise httpx2.PoolTimeout("No connection became free in time.") from err
                finally:
                    if waiter in self._waiting:
                        self._waiting.remove(waiter)
        self._open += 1

    def _close_one_idle(self) -> bool:
        for idle in self._idle.values():
            if idle:
                self.discard(idle.pop(0))
                return True
        return False

    def _release(self) -> None:
        self._open -= 1
        while self._waiting:
            waiter = self._waiting.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return

    def keep(self, connection: Connection) -> None:
        """A connection whose exchange is over: back to the pool if it can serve another."""
        if not connection.next_cycle() or self._max_idle <= 0:
            self.discard(connection)
            return
        idle = self._idle.setdefault(connection.origin, [])
        if len(idle) >= self._max_idle:
            self.discard(idle.pop(0))
        connection.idle_since = connection.loop.time()
        idle.append(connection)

    def discard(self, connection: Connection) -> None:
        """Close a connection (the upstream sees it go) and free its slot."""
        if connection.close():
            self._release()

    async def aclose(self) -> None:
        for idle in self._idle.values():
            while idle:
                self.discard(idle.pop())


class Body(httpx2.AsyncByteStream):
    """A response's body as it arrives; closing it before its end closes the connection."""

    def __init__(self, transport: AsyncioTransport, connection: Connection, timeout) -> None:
        self._transport = transport
        self._connection: Connection | None = connection
        self._timeout = timeout

    async def __aiter__(self):
        connection = self._connection
        while connection is not None:
            event = await connection.next_event(self._timeout)
            if type(event) is h11.Data:
                yield bytes(event.data)
            elif type(event) is h11.EndOfMessage:
                self._connection = None
                self._transport.keep(connection)
                return

    async def aclose(self) -> None:
        if self._connection is not None:
            self._transport.discard(self._connection)
            self._connection = None


class Connection(asyncio.Protocol):
    """One HTTP/1.1 connection: bytes from the socket queue here, h11 parses them on demand."""

    def __init__(self, loop: asyncio.AbstractEventLoop, origin: tuple) -> None:
        self.loop = loop
        self.origin = origin
        self.idle_since = 0.0
        self._h11 = h11.Connection(h11.CLIENT)
        self._transport: asyncio.Transport | None = None
        self._received: collections.deque[bytes] = collections.deque()
        self._buffered = 0
        self._paused = False
        self._ended = False  # no more bytes will come: end of stream or connection lost
        self._error: Exception | None = None
        self._waiter: asyncio.Future | None = None
        self._can_write: asyncio.Future | None = None
        self._closed = False

    # asyncio's side
    def connection_made(self, transport) -> None:
        self._transport = transport

    def data_received(self, data: bytes) -> None:
        self._received.append(data)
        self._buffered += len(data)
        if self._buffered > HIGH_WATER and not self._paused:
            self._paused = True
            self._transport.pause_reading()
        self._wake()

    def eof_received(self) -> bool:
        self._ended = True
        self._wake()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self._ended = True
        self._error = exc
        self._wake()
        if self._can_write is not None and not self._can_write.done():
            self._can_write.set_result(None)

    def pause_writing(self) -> None:
        self._can_write = self.loop.create_future()

    def resume_writing(self) -> None:
        if self._can_write is not None and not self._can_write.done():
            self._can_write.set_result(None)
        self._can_write = None

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    # The client's side
    async def send(self, request: httpx2.Request, timeout: float | None) -> None:
        """Write the request, its body (read from its stream) and its end."""
        target = request.url.raw_path
        self._write(h11.Request(method=request.method, target=target, headers=request.headers.raw))
        async for part in request.stream:
            self._write(h11.Data(data=part))
            await self._drain(timeout)
        self._write(h11.EndOfMessage())
        await self._drain(timeout)

    def _write(self, event) -> None:
        if self._transport.is_closing():
            raise httpx2.WriteError("The connection is closed.")
        try:
            self._transport.write(self._h11.send(event))
        except h11.LocalProtocolError as err:
            raise httpx2.LocalProtocolError(str(err)) from err

    async def _drain(self, timeout: float | None) -> None:
        if self._can_write is None:
            return
        try:
            async with asyncio.timeout(timeout):
                await asyncio.shield(self._can_write)
        except TimeoutError as err:
            raise httpx2.WriteTimeout("Timed out while sending the request.") from err
        if self._transport.is_closing():
            raise httpx2.WriteError("The connection was closed while sending the request.")

    async def receive_head(self, timeout: float | None) -> h11.Response:
        """The response's status line and headers (informational responses skipped)."""
        while True:
            event = await self.next_event(timeout)
            if type(event) is h11.Response:
                return event

    async def next_event(self, timeout: float | None):
        """h11's next event, reading from the socket as it needs; httpx's errors."""
        while True:
            try:
                event = self._h11.next_event()
            except h11.RemoteProtocolError as err:
                raise httpx2.RemoteProtocolError(str(err)) from err
            if event is not h11.NEED_DATA:
                if type(event) is h11.ConnectionClosed:
                    raise httpx2.RemoteProtocolError("Server disconnected without a response.")
                return event
            if self._received:
                self._feed(self._received.popleft())
            elif self._ended and self._error is not None:
                raise httpx2.ReadError(str(self._error) or "The connection broke.")
            elif self._ended:
                self._h11.receive_data(b"")
            else:
                await self._wait(timeout)

    def _feed(self, data: bytes) -> None:
        self._buffered -= len(data)
        if self._paused and self._buffered <= HIGH_WATER // 4:
            self._paused = False
            self._transport.resume_reading()
        self._h11.receive_data(data)

    async def _wait(self, timeout: float | None) -> None:
        self._waiter = waiter = self.loop.create_future()
        timer = None if timeout is None else self.loop.call_later(timeout, _expire, waiter)
        try:
            await waiter
        finally:
            self._waiter = None
            if timer is not None:
                timer.cancel()
        if waiter.result() is TimeoutError:
            raise httpx2.ReadTimeout("Timed out while reading the response.")

    def next_cycle(self) -> bool:
        """Ready the connection for another request, if both sides finished cleanly."""
        both_done = self._h11.our_state is h11.DONE and self._h11.their_state is h11.DONE
        if both_done and not self._ended and not self._received:
            self._h11.start_next_cycle()
            return True
        return False

    def reusable(self, now: float, expiry: float) -> bool:
        """Whether an idle connection may carry the next request (nothing came while idle)."""
        fresh = not expiry or now - self.idle_since < expiry
        current = self.loop is asyncio.get_running_loop()
        return fresh and current and not self._ended and not self._received

    def close(self) -> bool:
        """Close the socket (if the server has not); False if this was done already."""
        if self._closed:
            return False
        self._closed = True
        if self.loop.is_closed() or self._transport.is_closing():
            return True  # one left from an event loop that has ended (tests run one per test)
        if self.loop is asyncio.get_running_loop():
            self._transport.close()
        else:  # one from an event loop still running in another thread: close it there
            self.loop.call_soon_threadsafe(self._transport.close)
        return True


def _expire(waiter: asyncio.Future) -> None:
    if not waiter.done():
        waiter.set_result(TimeoutError)
