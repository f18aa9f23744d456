"""An account's end: the user and everything theirs, deleted at their request."""

from asgiref.sync import async_to_sync
from django.contrib.auth import get_user_model
from django.db import transaction

from chat.models import Message
from chat.runs import registry


def delete_account(user) -> None:
    """Delete `user` with their conversations, messages and API keys; stop their replies.

    The account is deactivated first, so neither its sessions nor its keys can start a
    reply while the running ones are stopped (in whichever process writes them). The
    rows go with the user (on_delete=CASCADE).
    """
    get_user_model().objects.filter(pk=user.pk).update(is_active=False)
    streaming = Message.objects.for_user(user).streaming().values_list("pk", flat=True)
    for message_id in list(streaming):
        async_to_sync(registry().stop)(message_id)
    with transaction.atomic():
        # Locked, so a reply ending meanwhile cannot add a usage row that the delete has
        # not seen: its insert waits for this commit, then finds no user.
        get_user_model().objects.select_for_update().filter(pk=user.pk).first()
        user.delete()
