"""What every API view shares: authentication, method checks, JSON in and errors out."""

from __future__ import annotations

import functools
from inspect import iscoroutinefunction

from django.core.exceptions import RequestDataTooBig
from django.views.decorators.csrf import csrf_exempt

from chat import safejson
from chat.auth import authenticate
from chat.db import reads
from chat.errors import BadRequest, ChatError, MethodNotAllowed, TooLarge
from chat.schema import validate


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
    try:
        raw = request.body
    except RequestDataTooBig:
        raise TooLarge("The request body is too large.") from None
    if not raw:
        raw = b"{}"
    try:
        body = safejson.loads(raw)
    except safejson.NotJSON as exc:
        raise BadRequest(f"The body is not valid JSON: {exc}.", code="invalid_json") from None
    if not isinstance(body, dict):
        raise BadRequest("The body must be a JSON object.", code="invalid_json")
    if schema is not None:
        validate(body, schema, default_code)
    return body
