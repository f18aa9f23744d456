"""Shared links: a read-only snapshot of a conversation, for anyone who has the URL."""

from __future__ import annotations

import secrets

from django.db import transaction

from chat.branches import Tree
from chat.errors import NotFound
from chat.models import Conversation, Message, SharedLink

TOKEN_BYTES = 18  # 144 random bits: unguessable, and a short URL
SHOWN_ROLES = (Message.Role.USER, Message.Role.ASSISTANT)


def _owned(user, conversation_id: int) -> Conversation:
    conversation = Conversation.objects.for_user(user).filter(pk=conversation_id).first()
    if conversation is None:
        raise NotFound("No such conversation.")
    return conversation


def current_branch(conversation: Conversation) -> list[Message]:
    """The messages a reader of the conversation sees now: its current branch, oldest first."""
    return Tree.of(conversation).current_branch(conversation)


def snapshot(messages: list[Message]) -> list[dict]:
    """What a shared link shows of each message: who wrote it, the text, the model.

    The persona (system prompt) stays private, and replies with no text yet are left out.
    """
    return [
        {"role": m.role, "content": m.content, "model": m.model}
        for m in messages
        if m.role in SHOWN_ROLES and m.content
    ]


def share(user, conversation_id: int) -> SharedLink:
    """A new link to the conversation as it is now; later messages never appear in it."""
    with transaction.atomic():
        conversation = _owned(user, conversation_id)
        return SharedLink.objects.create(
            conversation=conversation,
            token=secrets.token_urlsafe(TOKEN_BYTES),
            title=conversation.title,
            messages=snapshot(current_branch(conversation)),
        )


def unshare(user, conversation_id: int) -> int:
    """Revoke every link to the conversation; say how many there were."""
    conversation = _owned(user, conversation_id)
    deleted, _ = conversation.shared_links.all().delete()
    return deleted


def links_of(user):
    """`user`'s shared links, newest first, with their conversations."""
    return SharedLink.objects.for_user(user).select_related("conversation")


def revoke_link(user, link_id: int) -> SharedLink:
    """Revoke one of `user`'s links; NotFound for anyone else's."""
    link = links_of(user).filter(pk=link_id).first()
    if link is None:
        raise NotFound("No such shared link.")
    link.delete()
    return link


def shared(token: str) -> SharedLink:
    """The link with this token; NotFound once it is revoked (or if it never existed)."""
    link = SharedLink.objects.filter(token=token).first()
    if link is None:
        raise NotFound("No such shared link.")
    return link


def link_json(link: SharedLink) -> dict:
    return {
        "id": link.id,
        "url": link.url,
        "token": link.token,
        "conversation_id": link.conversation_id,
        "title": link.title,
        "messages": len(link.messages),
        "created_at": link.created_at.isoformat(),
    }
