"""The staff's review: conversations with their transcripts, flags, exports, usage; invitations.

Every transcript staff open (its page, or an export) is recorded as a TranscriptView,
which only superusers can read.
"""

from django.conf import settings
from django.contrib import admin
from django.contrib.auth import admin as auth_admin
from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied
from django.db.models import Count, Exists, OuterRef, Sum
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html

from chat import exports
from chat.branches import version_marks
from chat.models import ApiKey, Conversation, Invitation, Message, TranscriptView, UserLimits
from chat.usage import usage_for
from chat.views.download import download_response

User = get_user_model()


def usage_url(user) -> str:
    return reverse("admin:chat_conversation_usage", args=[user.pk])


class MessageInline(admin.TabularInline):
    """The transcript, read-only: staff review conversations, they do not edit them.

    It holds every version of every message (edits, regenerations), each marked with
    its version number, its parent, and whether it is on the branch the user sees.
    """

    model = Message
    extra = 0
    can_delete = False
    fields = [
        "created_at", "role", "status", "content", "model", "ttft_ms", "output_tokens",
        "parent", "version",
    ]  # fmt: skip
    readonly_fields = fields

    def get_formset(self, request, obj=None, **kwargs):
        # One read of the tree per page, not one per message.
        self.marks = version_marks(obj) if obj is not None else {}
        return super().get_formset(request, obj, **kwargs)

    @admin.display(description="version")
    def version(self, message):
        return self.marks.get(message.pk, "")

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


class ReplyStatusFilter(admin.SimpleListFilter):
    """Conversations with at least one message in the chosen status."""

    title = "message status"
    parameter_name = "status"

    def lookups(self, request, model_admin):
        return Message.Status.choices

    def queryset(self, request, queryset):
        if self.value() not in Message.Status.values:
            return queryset
        with_status = Message.objects.filter(conversation=OuterRef("pk"), status=self.value())
        return queryset.filter(Exists(with_status))


class LastActivityFilter(admin.DateFieldListFilter):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.title = "last activity"


@admin.register(Conversation)
class ConversationAdmin(admin.ModelAdmin):
    list_display = [
        "__str__", "owner_usage", "model", "messages_column", "tokens_column", "last_activity",
        "flagged",
    ]  # fmt: skip
    list_filter = ["model", ReplyStatusFilter, ("updated_at", LastActivityFilter), "flagged"]
    search_fields = ["title", "messages__content", "owner__username", "owner__email"]
    list_select_related = ["owner"]
    fields = ["owner", "title", "model", "system_prompt", "created_at", "updated_at", "flagged"]
    readonly_fields = fields[:-1]
    inlines = [MessageInline]
    actions = ["flag", "unflag", "export_jsonl"]

    def get_queryset(self, request):
        conversations = super().get_queryset(request).visible()
        return conversations.annotate(
            message_count=Count("messages"), token_count=Sum("messages__output_tokens")
        )

    def get_search_results(self, request, queryset, search_term):
        # Searching message text joins the messages once more, which would multiply the
        # counts on the list: search in a subquery instead, and there are no duplicates.
        if not search_term.strip():
            return queryset, False
        found, _duplicates = super().get_search_results(
            request, Conversation.objects.all(), search_term
        )
        return queryset.filter(pk__in=found.values("pk")), False

    def has_add_permission(self, request):
        return False

    def render_change_form(self, request, context, add=False, change=False, form_url="", obj=None):
        # Rendering this page shows the transcript: note who read whose, every time.
        if obj is not None:
            TranscriptView.record(request.user, [obj], TranscriptView.Page.CONVERSATION)
        return super().render_change_form(request, context, add, change, form_url, obj)

    @admin.display(description="owner", ordering="owner__username")
    def owner_usage(self, conversation):
        owner = conversation.owner
        return format_html('<a href="{}" title="Usage">{}</a>', usage_url(owner), owner)

    @admin.display(description="messages", ordering="message_count")
    def messages_column(self, conversation):
        return conversation.message_count

    @admin.display(description="tokens", ordering="token_count")
    def tokens_column(self, conversation):
        return conversation.token_count or 0

    @admin.display(description="last activity", ordering="updated_at")
    def last_activity(self, conversation):
        return conversation.updated_at

    @admin.action(description="Flag the selected conversations", permissions=["change"])
    def flag(self, request, queryset):
        count = queryset.update(flagged=True)
        self.message_user(request, f"Flagged {count} conversations.")

    @admin.action(description="Unflag the selected conversations", permissions=["change"])
    def unflag(self, request, queryset):
        count = queryset.update(flagged=False)
        self.message_user(request, f"Unflagged {count} conversations.")

    @admin.action(description="Export the selected conversations as JSONL", permissions=["view"])
    def export_jsonl(self, request, queryset):
        # A plain queryset of the selection: the list's counting joins are not needed.
        selected = Conversation.objects.filter(pk__in=queryset.values("pk"))
        TranscriptView.record(
            request.user, selected.select_related("owner"), TranscriptView.Page.EXPORT
        )
        parts = exports.export(selected, "jsonl")
        content_type = exports.CONTENT_TYPES["jsonl"]
        return download_response(exports.Download("conversations.jsonl", content_type, parts))

    def get_urls(self):
        usage = self.admin_site.admin_view(self.usage_view)
        mine = [path("usage/<int:user_id>/", usage, name="chat_conversation_usage")]
        return mine + super().get_urls()

    def usage_view(self, request, user_id: int):
        """One user's messages, tokens and time to first token per model."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        subject = get_object_or_404(User, pk=user_id)
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": f"Usage of {subject}",
            "subject": subject,
            "usage": usage_for(subject),
        }
        return TemplateResponse(request, "admin/chat/usage.html", context)


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    """Staff may rename or revoke a key; its owner is fixed, and only owners create keys."""

    list_display = ["prefix", "user", "name", "created_at", "last_used_at", "revoked_at"]
    list_select_related = ["user"]
    readonly_fields = ["user", "prefix", "key_hash", "created_at", "last_used_at"]

    def has_add_permission(self, request):
        return False


@admin.register(TranscriptView)
class TranscriptViewAdmin(admin.ModelAdmin):
    """Who among the staff read whose transcript, and when: for superusers, read-only."""

    list_display = ["viewed_at", "viewer_name", "subject_name", "conversation", "page"]
    list_filter = ["page", "viewed_at"]
    search_fields = ["viewer_name", "subject_name", "conversation_title"]
    date_hierarchy = "viewed_at"

    @admin.display(description="conversation", ordering="conversation_ref")
    def conversation(self, record):
        return f"{record.conversation_title or 'Untitled'} (#{record.conversation_ref})"

    def has_module_permission(self, request):
        return request.user.is_active and request.user.is_superuser

    def has_view_permission(self, request, obj=None):
        return request.user.is_active and request.user.is_superuser

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


if admin.site.is_registered(User):
    admin.site.unregister(User)


class UserLimitsInline(admin.StackedInline):
    """A user's own limits; a blank field means the site's setting, named in its help."""

    model = UserLimits
    can_delete = False
    SITE = {
        "max_concurrent_replies": "CHAT_USER_MAX_CONCURRENT_REPLIES",
        "replies_per_minute": "CHAT_USER_REPLIES_PER_MINUTE",
        "output_tokens_per_day": "CHAT_USER_OUTPUT_TOKENS_PER_DAY",
    }

    def formfield_for_dbfield(self, db_field, request, **kwargs):
        field = super().formfield_for_dbfield(db_field, request, **kwargs)
        if db_field.name in self.SITE:
            site = getattr(settings, self.SITE[db_field.name])
            field.help_text = " ".join(
                filter(None, [db_field.help_text, f"Blank: the site's, {site}."])
            )
        return field


@admin.register(User)
class UserAdmin(auth_admin.UserAdmin):
    """Django's user admin, with a link to each user's usage and their own limits."""

    list_display = [*auth_admin.UserAdmin.list_display, "usage"]
    inlines = [*auth_admin.UserAdmin.inlines, UserLimitsInline]

    @admin.display(description="usage")
    def usage(self, user):
        return format_html('<a href="{}">Usage</a>', usage_url(user))


@admin.register(Invitation)
class InvitationAdmin(admin.ModelAdmin):
    """Single-use, expiring sign-up links (CHAT_SIGNUP=invite): make one, copy its link."""

    list_display = ["__str__", "link", "state", "expires_at", "created_by", "used_by", "used_at"]
    list_select_related = ["created_by", "used_by"]
    fields = ["note", "expires_at", "created_by", "created_at", "used_by", "used_at"]
    readonly_fields = ["created_by", "created_at", "used_by", "used_at"]
    search_fields = ["note", "used_by__username"]
    change_form_template = "admin/chat/invitation/change_form.html"

    @admin.display(description="link")
    def link(self, invitation):
        if invitation.state != "open":
            return "—"
        return format_html('<a href="{}">sign-up link</a>', invitation.path())

    def save_model(self, request, obj, form, change):
        if not change:
            obj.created_by = request.user
        super().save_model(request, obj, form, change)

    def render_change_form(self, request, context, add=False, change=False, form_url="", obj=None):
        if obj is not None and obj.state == "open":
            context["invitation_link"] = request.build_absolute_uri(obj.path())
        return super().render_change_form(request, context, add, change, form_url, obj)

    def response_add(self, request, obj, post_url_continue=None):
        # Straight to the invitation's page, where its link is ready to copy.
        if "_addanother" not in request.POST and "_popup" not in request.POST:
            request.POST = request.POST.copy()
            request.POST["_continue"] = "1"
        return super().response_add(request, obj, post_url_continue)
