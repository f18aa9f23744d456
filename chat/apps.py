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
        from chat.providers import check_default_model

        post_migrate.connect(use_write_ahead_log, sender=self)
        # Every door (the web server, manage.py, a worker) starts here: a default that
        # names no model fails now, not at the first reply that relies on it.
        check_default_model()
