"""Who may create an account: CHAT_SIGNUP is open, invite (a staff-made link) or closed."""

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from chat.errors import ChatError, Forbidden, NotFound
from chat.models import Invitation


class Gone(ChatError):
    status, code = 410, "invitation_spent"


ASK_STAFF = "Ask the site's staff for"
CLOSED = f"This site is not taking new sign-ups. {ASK_STAFF} an account."
INVITATION_ONLY = (
    "Sign-up here is by invitation only: open the invitation link you were sent, "
    f"or {ASK_STAFF.lower()} one."
)
UNKNOWN = (
    f"This invitation link is not valid; check that you copied all of it. {ASK_STAFF} a new one."
)
USED = f"This invitation has already been used. {ASK_STAFF} a new one."


def check(token: str | None) -> Invitation | None:
    """The invitation sign-up needs (None when it needs none); raises why sign-up is refused."""
    if settings.CHAT_SIGNUP == "open":
        return None
    if settings.CHAT_SIGNUP == "closed":
        raise Forbidden(CLOSED, code="signup_closed")
    if not token:
        raise Forbidden(INVITATION_ONLY, code="invitation_required")
    # A NUL cannot be in a token, and PostgreSQL refuses even to compare with one.
    invitation = None if "\x00" in token else Invitation.objects.filter(token=token).first()
    if invitation is None:
        raise NotFound(UNKNOWN, code="invalid_invitation")
    if invitation.state == "used":
        raise Gone(USED)
    if invitation.state == "expired":
        expired = timezone.localtime(invitation.expires_at).strftime("%Y-%m-%d %H:%M %Z")
        raise Gone(f"This invitation expired on {expired}. {ASK_STAFF} a new one.")
    return invitation


@transaction.atomic
def create_account(form, token: str | None):
    """Save the sign-up form's user, using up the invitation when one is needed.

    The invitation is taken by one conditional UPDATE, so of two sign-ups with the same
    link at the same instant exactly one succeeds; the other gets the refusal `check` gives.
    """
    invitation = check(token)
    if invitation is not None:
        spent = Invitation.objects.usable().filter(pk=invitation.pk).update(used_at=timezone.now())
        if not spent:
            check(token)  # another sign-up took it, or it expired, just now: this raises why
            raise Gone(USED)
    user = form.save()
    if invitation is not None:
        Invitation.objects.filter(pk=invitation.pk).update(used_by=user)
    return user
