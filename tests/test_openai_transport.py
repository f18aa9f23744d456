"""The asyncio transport under the `openai` SDK's httpx client, against a raw HTTP server."""

import asyncio
import contextlib
import shutil
import ssl
import subprocess
import threading
from types import SimpleNamespace

import httpx2
import pytest

from chat.providers.transport import HIGH_WATER, AsyncioTransport, Connection

CHUNKED = (
    b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
    b"6\r\ndata: \r\n3\r\nhi\n\r\n1\r\n\n\r\n0\r\n\r\n"
)
SIZED = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"
UNSIZED = b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nuntil the end"


class RawServer:
    """Answers each request with the next canned response; records its connections."""

    def __init__(self, responses: list[bytes], close_after: bool = False, tls=None):
        self.tls = tls
        self.responses = list(responses)
        self.close_after = close_after
        self.connections = 0
        self.requests: list[bytes] = []
        self.closed = asyncio.Event()
        self.handlers: list[tuple[asyncio.Task, asyncio.StreamWriter]] = []

    async def __aenter__(self):
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0, ssl=self.tls)
        port = self.server.sockets[0].getsockname()[1]
        self.url = f"https://localhost:{port}" if self.tls else f"http://127.0.0.1:{port}"
        return self

    async def __aexit__(self, *exc_info):
        self.server.close()
        for _, writer in self.handlers:
            writer.close()  # its handler ends reading, rather than being cancelled with the loop
        await asyncio.wait([task for task, _ in self.handlers], timeout=5)

    async def _serve(self, reader, writer):
        self.connections += 1
        self.handlers.append((asyncio.current_task(), writer))
        with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError):
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = next(
                    (
                        int(h.split(b":")[1])
                        for h in head.split(b"\r\n")
                        if h.lower().startswith(b"content-length")
                    ),
                    0,
                )
                self.requests.append(head + await reader.readexactly(length))
                response = self.responses.pop(0)
                writer.write(response)
                await writer.drain()
                if self.close_after or b"Connection: close" in response:
                    break
        self.closed.set()
        writer.close()


def client(ssl_context=None, **limits) -> httpx2.AsyncClient:
    limits = httpx2.Limits(**{"max_connections": 10, "max_keepalive_connections": 10, **limits})
    return httpx2.AsyncClient(transport=AsyncioTransport(limits, ssl_context), timeout=5)


async def test_it_reads_chunked_sized_and_unsized_bodies():
    async with RawServer([CHUNKED, SIZED, UNSIZED, SIZED]) as server, client() as http:
        chunked = await http.post(server.url + "/v1/x", json={"a": 1})
        sized = await http.get(server.url + "/y")
        unsized = await http.get(server.url + "/z")
        await http.get(server.url)

    assert chunked.text == "data: hi\n\n"
    assert chunked.headers["content-type"] == "text/event-stream"
    assert (sized.status_code, sized.text, unsized.text) == (200, "hello", "until the end")
    assert server.requests[0].startswith(b"POST /v1/x HTTP/1.1\r\n")
    assert server.requests[0].endswith(b'{"a":1}')
    # The first three shared a connection, which the third one's body ended.
    assert server.connections == 2


async def test_it_opens_a_new_connection_when_the_server_closed_the_idle_one():
    async with RawServer([SIZED, SIZED], close_after=True) as server, client() as http:
        await http.get(server.url)
        await asyncio.wait_for(server.closed.wait(), 5)
        second = await http.get(server.url)

    assert second.text == "hello"
    assert server.connections == 2


@pytest.mark.parametrize("idle, connections", [(None, 1), (0, 2)])
async def test_it_keeps_idle_connections_as_httpx_limits_say(idle, connections):
    # None is no limit, as httpx reads it; 0 keeps none.
    async with RawServer([SIZED, SIZED]) as server, client(max_keepalive_connections=idle) as http:
        await http.get(server.url)
        await http.get(server.url)

    assert server.connections == connections


async def test_it_does_not_reuse_a_connection_idle_past_the_keepalive_expiry():
    async with RawServer([SIZED, SIZED]) as server, client(keepalive_expiry=0.001) as http:
        await http.get(server.url)
        await asyncio.sleep(0.05)
        await http.get(server.url)

    assert server.connections == 2


async def test_it_closes_the_connection_of_a_body_left_unread():
    async with RawServer([CHUNKED[:-5]]) as server, client() as http:
        async with http.stream("GET", server.url) as response:
            async for _ in response.aiter_raw():
                break

        await asyncio.wait_for(server.closed.wait(), 5)


async def test_it_waits_for_a_free_connection_up_to_the_pool_timeout():
    async with RawServer([CHUNKED[:-5], SIZED]) as server, client(max_connections=1) as http:
        async with http.stream("GET", server.url):
            with pytest.raises(httpx2.PoolTimeout):
                await http.get(server.url, timeout=httpx2.Timeout(5, pool=0.05))
            waiting = asyncio.create_task(http.get(server.url))
            await asyncio.sleep(0)
            assert not waiting.done()
        # The first response closed unread: its slot goes to the waiting request.
        assert (await asyncio.wait_for(waiting, 5)).text == "hello"


async def test_it_maps_a_broken_body_and_a_silent_server_to_httpx_errors():
    broken = b"HTTP/1.1 200 OK\r\nContent-Length: 50\r\n\r\nshort"
    async with RawServer([broken], close_after=True) as server, client() as http:
        with pytest.raises(httpx2.RemoteProtocolError):
            await http.get(server.url)
    async with RawServer([b""]) as server, client() as http:
        with pytest.raises(httpx2.ReadTimeout):
            await http.get(server.url, timeout=0.05)


class FakeSocket(SimpleNamespace):
    def pause_reading(self):
        self.paused = True

    def resume_reading(self):
        self.paused = False


async def test_it_stops_reading_the_socket_while_the_reader_lags_behind():
    connection = Connection(asyncio.get_running_loop(), ("http", b"x", 80))
    socket = FakeSocket(paused=False)
    connection.connection_made(socket)
    connection.data_received(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
    piece = b"%x\r\n%s\r\n" % (1024, b"x" * 1024)
    while not socket.paused:
        connection.data_received(piece)

    assert connection._buffered > HIGH_WATER
    await connection.receive_head(1)
    while socket.paused:
        await connection.next_event(1)


async def test_it_closes_a_connection_left_by_an_event_loop_running_in_another_thread():
    other = asyncio.new_event_loop()
    other.set_debug(True)  # touching it from this thread raises, instead of passing by luck
    thread = threading.Thread(target=other.run_forever, daemon=True)
    thread.start()
    try:
        async with RawServer([SIZED, SIZED]) as server, client() as http:
            there = asyncio.run_coroutine_threadsafe(http.get(server.url), other)
            await asyncio.wrap_future(there)
            await http.get(server.url)  # not on that loop's connection, which is closed

            await asyncio.wait_for(server.closed.wait(), 5)
        assert server.connections == 2
    finally:
        other.call_soon_threadsafe(other.stop)
        thread.join(5)
        other.close()


@pytest.fixture
def certificate(tmp_path):
    """A self-signed certificate for localhost: (server context, client context)."""
    if not shutil.which("openssl"):
        pytest.skip("needs the openssl command")
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"]
        + ["-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost"]
        + ["-keyout", str(key), "-out", str(cert)],
        check=True,
        capture_output=True,
    )
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(cert, key)
    return server, ssl.create_default_context(cafile=str(cert))


async def test_it_speaks_tls_and_checks_the_certificate(certificate):
    server_tls, trusting = certificate
    async with RawServer([CHUNKED, SIZED], tls=server_tls) as server:
        async with client(trusting) as http:
            assert (await http.get(server.url)).text == "data: hi\n\n"
            assert (await http.get(server.url)).text == "hello"
        async with client(ssl.create_default_context()) as http:
            with pytest.raises(httpx2.ConnectError):
                await http.get(server.url)
    assert server.connections == 1  # the first client reused it; the second never got one
