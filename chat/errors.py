"""Errors a client can act on, and the one JSON shape they travel in."""

from django.http import JsonResponse

from chat import telemetry


class ChatError(Exception):
    """A request the site cannot serve; `code` is snake_case, `message` a sentence."""

    status = 400
    code = "bad_request"

    def __init__(self, message: str, code: str | None = None):
        super().__init__(message)
        self.message = message
        if code:
            self.code = code
        if self.status == 429:  # a limit refused it: counted here, whichever door it came by
            telemetry.limit_refused(self.code)

    def __reduce__(self):
        # As it is, without __init__, whose arguments differ by subclass: an error found in
        # a worker process (chat.parsing) comes back whole.
        return _rebuilt, (type(self), self.args, self.__dict__)

    def as_dict(self) -> dict:
        """The error's fields, as the JSON body and the websocket carry them."""
        return {"code": self.code, "message": self.message}

    def response(self) -> JsonResponse:
        return error_response(self.status, self.code, self.message)


class BadRequest(ChatError):
    pass


class Unauthorized(ChatError):
    status, code = 401, "unauthorized"


class Forbidden(ChatError):
    status, code = 403, "forbidden"


class NotFound(ChatError):
    status, code = 404, "not_found"


class MethodNotAllowed(ChatError):
    status, code = 405, "method_not_allowed"


class Conflict(ChatError):
    status, code = 409, "conflict"


class TooLarge(ChatError):
    status, code = 413, "content_too_large"


class LimitExceeded(ChatError):
    """A per-user limit refused the request; `retry_after` says in how many seconds to retry."""

    status = 429

    def __init__(self, message: str, code: str, retry_after: int):
        super().__init__(message, code=code)
        self.retry_after = max(1, retry_after)

    def as_dict(self) -> dict:
        return {**super().as_dict(), "retry_after": self.retry_after}

    def response(self) -> JsonResponse:
        response = JsonResponse({"error": self.as_dict()}, status=self.status)
        response["Retry-After"] = str(self.retry_after)
        return response


class Unavailable(ChatError):
    status, code = 503, "service_unavailable"


def _rebuilt(kind: type[ChatError], args: tuple, fields: dict) -> ChatError:
    error = kind.__new__(kind, *args)
    error.__dict__.update(fields)
    return error


def error_response(status: int, code: str, message: str) -> JsonResponse:
    """The error shape API.md promises: {"error": {"code", "message"}}."""
    return JsonResponse({"error": {"code": code, "message": message}}, status=status)
