"""GET /metrics: this process's Prometheus metrics, for a scraper holding CHAT_METRICS_TOKEN."""

import hmac

from django.conf import settings
from django.http import Http404, HttpResponse
from django.views.decorators.http import require_GET

from chat import metrics


@require_GET
def metrics_view(request):
    token = settings.CHAT_METRICS_TOKEN
    if not token:
        raise Http404("Metrics are off: set CHAT_METRICS_TOKEN.")
    scheme, _, sent = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(sent.strip().encode(), token.encode()):
        response = HttpResponse("Send Authorization: Bearer <CHAT_METRICS_TOKEN>.\n", status=401)
        response["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    response = HttpResponse(metrics.exposition(), content_type=metrics.CONTENT_TYPE)
    response["Cache-Control"] = "no-store"
    return response
