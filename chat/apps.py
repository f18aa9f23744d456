from django.apps import AppConfig
from django.db.models.signals import post_migrate


def use_write_ahead_log(using, **kwargs):
    """SQLite: readers need not wait for writers. The mode stays with the database file."""
    from django.db import connections

    connection = connections[using]
    if connection.vendor == "sqlite":
        with connection.cursor() as cursor:
            cursor.execute("PRAGMA journal_mode=WAL")


class ChatConfig(AppConfig):
    name = "chat"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        post_migrate.connect(use_write_ahead_log, sender=self)
