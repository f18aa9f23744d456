"""Redis clients for asyncio code whose commands wait for a free connection, never fail for one.

redis-py's own pool holds 100 connections and fails a command past them
(MaxConnectionsError): a thousand replies starting at once on one web process were
answered 503 "Redis unreachable" while Redis was idle. Here a command past the pool
waits its turn, for up to `timeout` seconds, which is also how long it may take.
"""

from __future__ import annotations

import redis.asyncio


def waiting_client(url: str, connections: int, timeout: float) -> redis.asyncio.Redis:
    """A client of its own pool of `connections` at most, for commands of `timeout` s at most."""
    pool = redis.asyncio.BlockingConnectionPool.from_url(
        url,
        max_connections=connections,
        timeout=timeout,
        socket_connect_timeout=5,
        socket_timeout=timeout,
    )
    return redis.asyncio.Redis(connection_pool=pool)
