"""The streaming path's statements written once (chat/statements.py) store and read what the
ORM would, on whichever database the suite runs on."""

from datetime import date, timedelta

import pytest
from django.db import transaction
from django.utils import timezone

from chat import db, statements
from chat.errors import NotFound
from chat.limits.quota import count_output_tokens, today_for
from chat.models import Conversation, DailyUsage, Message

pytestmark = pytest.mark.django_db(transaction=True)

COMPARED = [f.attname for f in Message._meta.concrete_fields if f.attname != "id"]


@pytest.fixture
def conversation(alice):
    return Conversation.objects.create(owner=alice, model="fake", title="t")


def test_it_inserts_a_message_as_the_orm_does(conversation):
    parent = Message.objects.create(conversation=conversation, role="user", content="q")
    fields = dict(role="assistant", status="streaming", model="fake", content="é ✓")
    ours = Message(conversation=conversation, parent=parent, **fields)
    statements.insert(ours)
    theirs = Message.objects.create(conversation=conversation, parent=parent, **fields)

    assert ours.pk and ours.pk != theirs.pk and not ours._state.adding
    stored, expected = Message.objects.get(pk=ours.pk), Message.objects.get(pk=theirs.pk)
    for name in COMPARED:
        if name != "created_at":
            assert getattr(stored, name) == getattr(expected, name), name
    assert abs(stored.created_at - expected.created_at) < timedelta(seconds=5)


def test_it_updates_the_named_fields_and_stamps_updated_at(conversation):
    before = Conversation.objects.get(pk=conversation.pk).updated_at
    conversation.title, conversation.model, conversation.system_prompt = "new", "other", "x"
    assert statements.update(conversation, "title", "model", "updated_at") == 1

    stored = Conversation.objects.get(pk=conversation.pk)
    assert (stored.title, stored.model, stored.system_prompt) == ("new", "other", "")
    assert stored.updated_at > before


def test_it_reads_only_the_fields_asked_and_loads_the_rest_on_use(conversation, alice):
    found = db.conversation_to_start(alice, conversation.pk)
    assert (found.pk, found.title, found.owner_id) == (conversation.pk, "t", alice.pk)
    assert "created_at" in found.get_deferred_fields()
    assert found.created_at == Conversation.objects.get(pk=conversation.pk).created_at


def test_it_finds_no_conversation_of_another_user_or_one_being_imported(conversation, bob):
    with pytest.raises(NotFound):
        db.conversation_to_start(bob, conversation.pk)
    Conversation.objects.filter(pk=conversation.pk).update(importing_since=timezone.now())
    with pytest.raises(NotFound):
        db.conversation_to_start(conversation.owner, conversation.pk)


def test_it_locks_the_conversation_inside_a_transaction(conversation, alice):
    with transaction.atomic():
        assert db.conversation_to_start(alice, conversation.pk, lock=True).pk == conversation.pk


def test_it_finishes_a_streaming_reply_once(conversation):
    reply = Message.objects.create(conversation=conversation, role="assistant", status="streaming")
    db.finish_reply.__wrapped__(reply.pk, conversation.pk, content="done", status="complete")
    db.finish_reply.__wrapped__(reply.pk, conversation.pk, content="later", status="failed")

    stored = Message.objects.get(pk=reply.pk)
    assert (stored.content, stored.status) == ("done", "complete")


def test_it_counts_the_days_tokens_on_the_days_row(alice):
    count_output_tokens(alice.pk, 40)
    count_output_tokens(alice.pk, 2)
    DailyUsage.objects.create(user=alice, day=date(2020, 1, 1), output_tokens=7)

    assert today_for(alice).output_tokens == 42
    assert DailyUsage.objects.get(user=alice, day=timezone.now().date()).output_tokens == 42
