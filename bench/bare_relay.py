"""The least a proxy can do: the yardstick proxy_load.py --relay sets beside chatsite.

`POST /v1/chat/completions` is passed to the upstream as it came and the upstream's
bytes are passed back as they arrive, through one httpx client with the openai SDK's
connection limits, served by uvicorn as chatsite is: no authentication, no parsing of the
chunks, no event log, no database. Whatever a proxied stream costs chatsite beyond this
is the price of its features (the key, the limits, the stored reply, resuming, stopping).
`--transport asyncio` gives the client chatsite's own transport
(chat/providers/transport.py) instead of httpx's.

    python bench/bare_relay.py --port 8003 --upstream http://127.0.0.1:8002
"""

from __future__ import annotations

import argparse

import httpx2 as httpx  # the openai SDK's, which chatsite's transport serves
import openai
import uvicorn
from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import StreamingResponse
from starlette.routing import Route


def relay_app(upstream: str, transport: str) -> Starlette:
    limits = openai.DEFAULT_CONNECTION_LIMITS  # the SDK's, as chatsite's client has them
    chosen = None
    if transport == "asyncio":
        from chat.providers.transport import AsyncioTransport

        chosen = AsyncioTransport(limits)
    client = httpx.AsyncClient(base_url=upstream, timeout=60, limits=limits, transport=chosen)

    async def completions(request: Request) -> StreamingResponse:
        headers = {"content-type": "application/json", "authorization": "Bearer sk-bench"}
        sent = client.build_request(
            "POST", "/v1/chat/completions", content=await request.body(), headers=headers
        )
        answer = await client.send(sent, stream=True)
        return StreamingResponse(
            answer.aiter_raw(),
            status_code=answer.status_code,
            media_type=answer.headers.get("content-type"),
            background=BackgroundTask(answer.aclose),
        )

    return Starlette(routes=[Route("/v1/chat/completions", completions, methods=["POST"])])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8003)
    parser.add_argument("--upstream", default="http://127.0.0.1:8002")
    parser.add_argument("--transport", choices=["httpx", "asyncio"], default="httpx")
    args = parser.parse_args()
    uvicorn.run(
        relay_app(args.upstream, args.transport),
        host="127.0.0.1",
        port=args.port,
        lifespan="off",
        access_log=False,
        log_level="warning",
    )


if __name__ == "__main__":
    main()
