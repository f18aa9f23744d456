"""Run a generation worker: load the local model once and serve requests from Redis."""

import asyncio
import logging
import sys
import time

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

logger = logging.getLogger("chat.worker")


class Command(BaseCommand):
    help = "Serve local-model generation requests from the channel layer (needs REDIS_URL)."

    def add_arguments(self, parser):
        parser.add_argument("--check", action="store_true", help="Exit 0 if a worker is alive.")

    def handle(self, check, **options):
        from chat.worker import GenerationWorker, healthy

        if check:
            sys.exit(0 if healthy() else 1)
        if not settings.REDIS_URL:
            raise CommandError("Set REDIS_URL: workers take their requests from Redis.")
        from chat.providers.local import LocalProvider

        provider = LocalProvider()
        started = time.perf_counter()
        provider.preload()
        logger.info("model loaded in %.1fs", time.perf_counter() - started)
        asyncio.run(GenerationWorker(provider).run())
