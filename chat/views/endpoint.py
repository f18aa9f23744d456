"""What every API view shares: authentication, method checks, JSON in and errors out."""

from __future__ import annotations

import functools
from inspect import iscoroutinefunction

from django.core.exceptions import RequestDataTooBig
from django.views.decorators.csrf import csrf_exempt

from chat import parsing
from chat.auth import authenticate
from chat.db import reads
from chat.errors import ChatError, MethodNotAllowed, TooLarge


def _admit(request, methods: tuple[str, ...]) -> None:
    if request.method not in methods:
        raise MethodNotAllowed(f"Use {' or '.join(methods)} here.")
    request.api_user = authenticate(request)


def api_endpoint(*methods: str):
    """Authenticate (session or Bearer key) and turn ChatErrors into API.md's JSON errors."""

    def decorate(view):
        if iscoroutinefunction(view):

            async def wrapper(request, *args, **kwargs):
                try:
                    await reads(_admit)(request, methods)
                    return await view(request, *args, **kwargs)
                except ChatError as error:
                    return error.response()

        else:

            def wrapper(request, *args, **kwargs):
                try:
                    _admit(request, methods)
                    return view(request, *args, **kwargs)
                except ChatError as error:
                    return error.response()

        # CSRF is checked in authenticate(), for sessions only: Bearer scripts need none.
        return csrf_exempt(functools.wraps(view)(wrapper))

    return decorate


def read_json(request, schema: dict | None = None, default_code: str = "invalid_field") -> dict:
    """The request body as a JSON object that fits `schema`, or a clear 400/413."""
    return parsing.parsed(_raw_body(request), schema, default_code)


async def read_json_async(
    request, schema: dict | None = None, default_code: str = "invalid_field"
) -> dict:
    """read_json for async views: a large body is parsed while the event loop runs on."""
    return await parsing.parsed_async(_raw_body(request), schema, default_code)


def _raw_body(request) -> bytes:
    try:
        return request.body
    except RequestDataTooBig:
        raise TooLarge("The request body is too large.") from None
