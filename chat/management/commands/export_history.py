"""Write conversation history to stdout or a file: one user's, or everyone's."""

import sys

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from chat import exports
from chat.models import Conversation


class Command(BaseCommand):
    help = "Export conversations with their messages as JSON, JSON Lines or Markdown."

    def add_arguments(self, parser):
        parser.add_argument("--user", help="Only this username's conversations (default: all).")
        parser.add_argument(
            "--format", dest="fmt", default="json", choices=sorted(exports.CONTENT_TYPES)
        )
        parser.add_argument("--output", "-o", help="Write to this file instead of stdout.")
        parser.add_argument(
            "--no-progress", action="store_true", help="Do not draw the progress bar."
        )

    def handle(self, user, fmt, output, no_progress, **options):
        conversations = self.conversations(user)
        # The bar goes to stderr, so stdout stays the clean export.
        bar = tqdm(
            total=conversations.count(),
            unit="conversation",
            file=sys.stderr,
            disable=no_progress,
        )
        with bar:
            parts = exports.export(conversations, fmt, progress=bar.update)
            if output:
                with open(output, "w", encoding="utf-8") as file:
                    file.writelines(parts)
            else:
                for part in parts:
                    self.stdout.write(part, ending="")

    def conversations(self, username):
        if username is None:
            return Conversation.objects.visible()
        user = get_user_model().objects.filter(username=username).first()
        if user is None:
            raise CommandError(f"No user {username!r}.")
        return Conversation.objects.for_user(user)
