"""Conversations, their messages, the API keys scripts sign in with, and invitations."""

import hashlib
import secrets
from datetime import timedelta
from urllib.parse import urlencode

from django.conf import settings
from django.core.validators import MinValueValidator
from django.db import connections, models
from django.db.models import Q
from django.urls import reverse
from django.utils import timezone


def single(queryset):
    """The row a lookup by a unique key finds, or None.

    first() without its ORDER BY: there is one row at most to order, and compiling the
    ordering is a good part of what such a small read costs the streaming path.
    """
    return next(iter(queryset[:1]), None)


class ConversationQuerySet(models.QuerySet):
    def visible(self):
        """Leave out conversations an import is still writing."""
        return self.filter(importing_since__isnull=True)

    def for_user(self, user):
        """Only the conversations `user` owns (and can see: no import half-written)."""
        return self.visible().filter(owner=user)

    def search(self, query: str):
        """Conversations whose title or any message contains `query`."""
        if not query:
            return self
        matches = Q(title__icontains=query) | Q(messages__content__icontains=query)
        return self.filter(matches).distinct()

    def newest_first(self):
        return self.order_by("-updated_at", "-id")


class Conversation(models.Model):
    class TitleSource(models.TextChoices):
        FIRST_LINE = "first_line"  # the first message's first line, until something better
        MODEL = "model"  # written by the model after the first reply
        USER = "user"  # given or changed by the user: never overwritten

    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="conversations"
    )
    title = models.CharField(max_length=200, blank=True, default="")
    title_source = models.CharField(
        max_length=16, choices=TitleSource.choices, default=TitleSource.FIRST_LINE
    )
    # The model's tokens spent writing the title: usage, though not a message.
    title_tokens = models.PositiveIntegerField(default=0)
    titled_at = models.DateTimeField(null=True, blank=True)
    model = models.CharField(max_length=200)
    system_prompt = models.TextField(blank=True, default="")
    # A default rather than auto_now_add, so an import can keep the original times.
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True, db_index=True)
    flagged = models.BooleanField(default=False, db_index=True, help_text="Marked for review.")
    # The leaf of the branch shown and continued; null: the newest message's branch.
    current_message = models.ForeignKey(
        "Message", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # Per-chat settings; null: the model's and the site's defaults.
    temperature = models.FloatField(null=True, blank=True)
    max_tokens = models.PositiveIntegerField(null=True, blank=True)
    # Set while an import writes the conversation, a batch at a time; until it is cleared,
    # the conversation is hidden from every listing, search, export and door.
    importing_since = models.DateTimeField(null=True, blank=True, editable=False, db_index=True)

    objects = ConversationQuerySet.as_manager()

    class Meta:
        indexes = [models.Index(fields=["owner", "-updated_at"])]

    def __str__(self):
        return self.title or f"Conversation {self.pk}"


class MessageQuerySet(models.QuerySet):
    def for_user(self, user):
        """Only messages in conversations `user` owns (and can see)."""
        return self.filter(conversation__owner=user, conversation__importing_since__isnull=True)

    def streaming(self):
        return self.filter(status=Message.Status.STREAMING)

    def set_parents(self, links: list[tuple[int, int]]) -> None:
        """Give each message its parent, from (parent id, message id) pairs.

        One UPDATE statement, run for every pair. bulk_update() would build a CASE with a
        branch per row and compile it in Python: for thousands of messages (an import, a
        long /v1 chat) most of the time spent, all of it holding the write lock.
        """
        quote = connections[self.db].ops.quote_name
        table, pk = quote(Message._meta.db_table), quote(Message._meta.pk.column)
        parent = quote(Message._meta.get_field("parent").column)
        with connections[self.db].cursor() as cursor:
            cursor.executemany(f"UPDATE {table} SET {parent} = %s WHERE {pk} = %s", links)


class Message(models.Model):
    class Role(models.TextChoices):
        SYSTEM = "system"
        USER = "user"
        ASSISTANT = "assistant"

    class Status(models.TextChoices):
        STREAMING = "streaming"
        COMPLETE = "complete"
        STOPPED = "stopped"
        FAILED = "failed"

    conversation = models.ForeignKey(
        Conversation, on_delete=models.CASCADE, related_name="messages"
    )
    # A conversation is a tree: an edited question or a regenerated reply is a sibling.
    parent = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.CASCADE, related_name="children"
    )
    role = models.CharField(max_length=16, choices=Role.choices)
    content = models.TextField(blank=True, default="")
    status = models.CharField(
        max_length=16, choices=Status.choices, default=Status.COMPLETE, db_index=True
    )
    model = models.CharField(max_length=200, blank=True, default="")
    ttft_ms = models.PositiveIntegerField(null=True, blank=True)
    output_tokens = models.PositiveIntegerField(null=True, blank=True)
    duration_ms = models.PositiveIntegerField(null=True, blank=True)
    error = models.TextField(blank=True, default="")
    # Why a failed reply failed, as its `error` event said (`upstream_timeout`, `interrupted`…).
    error_code = models.CharField(max_length=64, blank=True, default="")
    created_at = models.DateTimeField(default=timezone.now)

    objects = MessageQuerySet.as_manager()

    class Meta:
        ordering = ["created_at", "id"]

    def __str__(self):
        return f"{self.role} message {self.pk}"


class SharedLinkQuerySet(models.QuerySet):
    def for_user(self, user):
        """Only the links to conversations `user` owns."""
        return self.filter(conversation__owner=user)


class SharedLink(models.Model):
    """A read-only snapshot of a conversation, for anyone who has its unguessable URL."""

    conversation = models.ForeignKey(
        Conversation, on_delete=models.CASCADE, related_name="shared_links"
    )
    token = models.CharField(max_length=64, unique=True)
    title = models.CharField(max_length=200, blank=True, default="")
    # [{"role", "content", "model"}], copied when shared: later messages never show.
    messages = models.JSONField(default=list)
    created_at = models.DateTimeField(auto_now_add=True)

    objects = SharedLinkQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self):
        return f"shared link to {self.conversation_id}"

    @property
    def url(self) -> str:
        return f"/s/{self.token}/"


def hash_key(raw_key: str) -> str:
    """Keys are long random tokens, so one SHA-256 round is enough to store them safely."""
    return hashlib.sha256(raw_key.encode()).hexdigest()


class ApiKeyQuerySet(models.QuerySet):
    def active(self):
        return self.filter(revoked_at__isnull=True)

    def for_user(self, user):
        return self.filter(user=user)


class ApiKey(models.Model):
    PREFIX = "cs_"

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_keys"
    )
    name = models.CharField(max_length=100, blank=True, default="")
    prefix = models.CharField(
        max_length=12, help_text="The key's first characters, to tell keys apart."
    )
    key_hash = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    objects = ApiKeyQuerySet.as_manager()

    def __str__(self):
        return f"{self.prefix}… ({self.user})"

    @classmethod
    def issue(cls, user, name: str = "") -> tuple["ApiKey", str]:
        """Create a key for `user`; the raw key is returned once and never stored."""
        raw = cls.PREFIX + secrets.token_urlsafe(32)
        key = cls.objects.create(user=user, name=name, prefix=raw[:10], key_hash=hash_key(raw))
        return key, raw


class UserLimits(models.Model):
    """A user's own limits, set by staff; a blank one means the site's setting."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="limits"
    )
    max_concurrent_replies = models.PositiveIntegerField(
        null=True, blank=True, validators=[MinValueValidator(1)]
    )
    replies_per_minute = models.PositiveIntegerField(
        null=True, blank=True, validators=[MinValueValidator(1)]
    )
    output_tokens_per_day = models.PositiveIntegerField(
        null=True, blank=True, help_text="0 means no limit."
    )

    class Meta:
        verbose_name = verbose_name_plural = "limits"

    def __str__(self):
        return f"limits of {self.user}"


class DailyUsage(models.Model):
    """The model output tokens a user's replies used on one UTC day, counted as each ends.

    A ledger apart from the messages: imported history never adds to it, and deleting a
    conversation does not give its tokens back.
    """

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="daily_usage"
    )
    day = models.DateField()
    output_tokens = models.PositiveBigIntegerField(default=0)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["user", "day"], name="one_usage_per_day")]

    def __str__(self):
        return f"{self.user} on {self.day}: {self.output_tokens} tokens"


def invitation_token() -> str:
    return secrets.token_urlsafe(32)


def invitation_expiry():
    return timezone.now() + timedelta(days=settings.CHAT_INVITATION_DAYS)


class InvitationQuerySet(models.QuerySet):
    def usable(self):
        """Invitations not used yet and not expired."""
        return self.filter(used_at__isnull=True, expires_at__gt=timezone.now())


class Invitation(models.Model):
    """A single-use, expiring link staff make so someone can sign up (CHAT_SIGNUP=invite)."""

    token = models.CharField(max_length=64, unique=True, default=invitation_token, editable=False)
    note = models.CharField(
        max_length=200,
        blank=True,
        default="",
        help_text="Who it is for, to tell invitations apart.",
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        editable=False,
    )
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField(default=invitation_expiry)
    used_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        editable=False,
    )
    used_at = models.DateTimeField(null=True, blank=True, editable=False)

    objects = InvitationQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self):
        return self.note or f"Invitation {self.pk}"

    def path(self) -> str:
        return f"{reverse('signup')}?{urlencode({'invitation': self.token})}"

    @property
    def state(self) -> str:
        if self.used_at is not None:
            return "used"
        return "expired" if self.expires_at <= timezone.now() else "open"


class TranscriptView(models.Model):
    """A staff member opened a user's transcript in the admin: who, whose, which, when.

    Names are copied, so the record outlives the accounts and the conversation it is about.
    """

    class Page(models.TextChoices):
        CONVERSATION = "conversation"
        EXPORT = "export"

    viewer = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+"
    )
    viewer_name = models.CharField(max_length=150)
    subject = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+"
    )
    subject_name = models.CharField(max_length=150)
    conversation_ref = models.BigIntegerField(help_text="The conversation's id.")
    conversation_title = models.CharField(max_length=200, blank=True, default="")
    page = models.CharField(max_length=16, choices=Page.choices)
    viewed_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        ordering = ["-viewed_at", "-id"]

    def __str__(self):
        return f"{self.viewer_name} read {self.subject_name}'s conversation {self.conversation_ref}"

    @classmethod
    def record(cls, viewer, conversations, page: str) -> None:
        """Note that `viewer` has just seen `conversations` (owners selected) on `page`."""
        cls.objects.bulk_create(
            cls(
                viewer=viewer,
                viewer_name=viewer.get_username(),
                subject=conversation.owner,
                subject_name=conversation.owner.get_username(),
                conversation_ref=conversation.pk,
                conversation_title=conversation.title,
                page=page,
            )
            for conversation in conversations
        )
