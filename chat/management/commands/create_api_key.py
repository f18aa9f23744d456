"""Print a new API key for a user, once; only its hash is stored."""

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from chat.models import ApiKey


class Command(BaseCommand):
    help = "Create an API key for USERNAME and print it once."

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument(
            "--create-user", action="store_true", help="Create the user if missing."
        )
        parser.add_argument("--name", default="", help="A label to tell keys apart.")

    def handle(self, username, create_user, name, **options):
        User = get_user_model()
        user = User.objects.filter(username=username).first()
        if user is None and not create_user:
            raise CommandError(f"No user {username!r}; pass --create-user to create one.")
        if user is None:
            user = User.objects.create_user(username=username)
        _key, raw = ApiKey.issue(user, name=name)
        self.stdout.write(raw)
