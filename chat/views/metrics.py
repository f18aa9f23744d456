"""GET /metrics: this process's Prometheus metrics, for a scraper holding CHAT_METRICS_TOKEN.

Served by chat.middleware.MetricsEndpointMiddleware, ahead of the host-name and HTTPS
checks: Prometheus scrapes each process at its own address (docker-compose's DNS gives
it container IPs, which no ALLOWED_HOSTS can list), and over the private network.
The token is the guard; the answer holds no links that a forged Host could poison.
"""

import hmac

from django.conf import settings
from django.http import HttpResponse, HttpResponseNotAllowed, HttpResponseNotFound

from chat import metrics


def metrics_view(request) -> HttpResponse:
    token = settings.CHAT_METRICS_TOKEN
    if not token:
        return HttpResponseNotFound("Not found.\n", content_type="text/plain")
    if request.method not in ("GET", "HEAD"):
        return HttpResponseNotAllowed(["GET", "HEAD"])
    scheme, _, sent = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(sent.strip().encode(), token.encode()):
        response = HttpResponse("Send Authorization: Bearer <CHAT_METRICS_TOKEN>.\n", status=401)
        response["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    response = HttpResponse(metrics.exposition(), content_type=metrics.CONTENT_TYPE)
    response["Cache-Control"] = "no-store"
    return response
