"""Load the local model once, so its fast-loading safetensors copy exists before users arrive."""

import time

from django.conf import settings
from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = "Load the local model now (writing its safetensors cache on the first run)."

    def handle(self, **options):
        if not settings.CHAT_LOCAL_ENABLED:
            self.stdout.write("The local model is disabled (CHAT_LOCAL_ENABLED=false).")
            return
        from chat.providers.local import LocalProvider

        started = time.perf_counter()
        LocalProvider().preload()
        took = time.perf_counter() - started
        self.stdout.write(f"Local model {settings.CHAT_LOCAL_MODEL_ID} ready in {took:.1f}s.")
