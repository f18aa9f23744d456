"""Log-in throttling: django-axes, for the site's log-in and the admin's alike.

Axes counts failures per (username, address) pair in the database, so every web process
sees the same count. Its authentication backend refuses a locked pair before the password
is checked; `locked_out` is the page the person then sees.
"""

import math

from axes.backends import AxesStandaloneBackend
from axes.helpers import get_client_username, get_cool_off
from axes.models import AccessAttempt
from django.db.models import Max
from django.shortcuts import render
from django.utils import timezone


class LoginThrottleBackend(AxesStandaloneBackend):
    """Axes' backend, for log-ins that come with a request.

    Code that authenticates without one (the test client's login(), management commands)
    is not a visitor guessing passwords: it is left to the next backend instead of
    failing with AxesBackendRequestParameterRequired.
    """

    def authenticate(self, request, username=None, password=None, **kwargs):
        if request is None:
            return None
        return super().authenticate(request, username=username, password=password, **kwargs)


def seconds_locked(username: str, ip_address: str | None) -> int:
    """How long the (username, address) pair stays locked, in whole seconds (at least 1)."""
    last = AccessAttempt.objects.filter(username=username, ip_address=ip_address).aggregate(
        last=Max("attempt_time")
    )["last"]
    cool_off = get_cool_off()
    if last is None or cool_off is None:
        return math.ceil(cool_off.total_seconds()) if cool_off else 1
    return max(1, math.ceil((last + cool_off - timezone.now()).total_seconds()))


def locked_out(request, *_ignored):
    """The page a locked-out log-in gets: 429, in plain words, with when to try again.

    Axes calls this with (request, response, credentials) from sync code and
    (request, credentials) from async code; neither extra is needed here.
    """
    username = get_client_username(request) or ""
    seconds = seconds_locked(username, getattr(request, "axes_ip_address", None))
    context = {"username": username, "minutes": math.ceil(seconds / 60)}
    response = render(request, "account/locked_out.html", context, status=429)
    response["Retry-After"] = str(seconds)
    return response
