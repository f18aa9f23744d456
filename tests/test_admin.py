"""The admin's review of conversations: lists, search, filters, flags, exports, usage, audit."""

import json

import httpx
import pytest
from django.contrib.auth.models import Permission
from django.test import Client
from django.utils import timezone

from chat.models import ApiKey, Conversation, TranscriptView
from tests.conftest import make_conversation

pytestmark = pytest.mark.django_db

CHANGELIST = "/admin/chat/conversation/"


def listed(client, **params) -> list[str]:
    response = client.get(CHANGELIST, params)
    assert response.status_code == 200
    return sorted(c.title for c in response.context["cl"].result_list)


@pytest.fixture
def history(alices_history, bobs_conversation):
    return {c.title: c for c in [*alices_history, bobs_conversation]}


def test_it_lists_owner_model_message_count_tokens_and_last_activity(admin_client, history):
    response = admin_client.get(CHANGELIST)
    rows = {c.title: c for c in response.context["cl"].result_list}
    otters = rows["Otters"]
    assert (otters.owner.username, otters.model) == ("alice", "fake")
    assert (otters.message_count, otters.token_count) == (4, 6 + 3)
    page = response.content.decode()
    assert f'href="/admin/chat/conversation/usage/{otters.owner.pk}/"' in page
    assert "March 1, 2025, 9:04 a.m." in page, "the last activity is shown"


@pytest.mark.parametrize(
    "query, found",
    [
        ("otters", ["Otters"]),
        ("hands while they sleep", ["Otters"]),
        ("bob", ["Bob's secret plan"]),
        ("alice", ["Otters", "Ünïcödé & <markup>"]),
    ],
)
def test_it_searches_titles_message_text_and_users(admin_client, history, query, found):
    assert listed(admin_client, q=query) == found


def test_searching_message_text_does_not_inflate_the_counts(admin_client, history):
    response = admin_client.get(CHANGELIST, {"q": "otters"})
    [otters] = response.context["cl"].result_list
    assert otters.message_count == 4


def test_it_filters_by_model_message_status_date_and_flag(admin_client, history, alice):
    recent = Conversation.objects.create(owner=alice, title="Today", model="other-model")
    Conversation.objects.filter(pk=history["Otters"].pk).update(flagged=True)
    assert listed(admin_client, model="other-model") == ["Today"]
    assert listed(admin_client, status="failed") == ["Ünïcödé & <markup>"]
    assert listed(admin_client, status="stopped") == ["Otters"]
    assert listed(admin_client, flagged__exact="1") == ["Otters"]
    march = {
        "updated_at__gte": "2025-03-01 00:00+00:00",
        "updated_at__lt": "2025-03-02 00:00+00:00",
    }
    assert listed(admin_client, **march) == ["Bob's secret plan", "Otters", "Ünïcödé & <markup>"]
    since = f"{recent.updated_at.date().isoformat()} 00:00+00:00"
    assert listed(admin_client, updated_at__gte=since) == ["Today"]


def test_the_transcript_is_a_read_only_inline(admin_client, history):
    otters = history["Otters"]
    response = admin_client.get(f"{CHANGELIST}{otters.pk}/change/")
    page = response.content.decode()
    assert "Otters hold hands while they sleep." in page
    assert 'name="messages-0-content"' not in page
    assert 'name="title"' not in page
    assert 'name="flagged"' in page


def test_staff_flag_a_conversation_from_its_page_without_touching_the_transcript(
    admin_client, history
):
    otters = history["Otters"]
    management = {
        "messages-TOTAL_FORMS": 4,
        "messages-INITIAL_FORMS": 4,
        "messages-MIN_NUM_FORMS": 0,
        "messages-MAX_NUM_FORMS": 1000,
    }
    response = admin_client.post(
        f"{CHANGELIST}{otters.pk}/change/", {"flagged": "on", "title": "changed", **management}
    )
    assert response.status_code == 302, response.content.decode()[-2000:]
    otters.refresh_from_db()
    assert (otters.flagged, otters.title) == (True, "Otters")
    assert otters.messages.count() == 4


def test_it_flags_and_unflags_the_selected_conversations(admin_client, history):
    chosen = [history["Otters"].pk, history["Bob's secret plan"].pk]
    admin_client.post(CHANGELIST, {"action": "flag", "_selected_action": chosen})
    flagged = set(Conversation.objects.filter(flagged=True).values_list("pk", flat=True))
    assert flagged == set(chosen)
    admin_client.post(CHANGELIST, {"action": "unflag", "_selected_action": chosen[:1]})
    assert list(Conversation.objects.filter(flagged=True).values_list("pk", flat=True)) == [
        chosen[1]
    ]


@pytest.mark.filterwarnings("ignore:StreamingHttpResponse must consume asynchronous iterators")
def test_it_exports_the_selected_conversations_as_jsonl(admin_client, history):
    chosen = [history["Otters"].pk, history["Bob's secret plan"].pk]
    response = admin_client.post(CHANGELIST, {"action": "export_jsonl", "_selected_action": chosen})
    assert response.status_code == 200
    assert response["Content-Disposition"] == 'attachment; filename="conversations.jsonl"'
    lines = b"".join(response).decode().splitlines()
    exported = [json.loads(line) for line in lines]
    assert [(c["owner"], c["title"]) for c in exported] == [
        ("alice", "Otters"),
        ("bob", "Bob's secret plan"),
    ]
    assert len(exported[0]["messages"]) == 4


def test_the_usage_view_shows_one_users_models(admin_client, history, alice):
    make_conversation(alice, "Other", [("assistant", "one two", "complete")])
    response = admin_client.get(f"{CHANGELIST}usage/{alice.pk}/")
    assert response.status_code == 200
    usage = response.context["usage"]
    assert (usage.conversations, usage.messages, usage.replies) == (3, 3, 4)
    assert [(m.model, m.output_tokens) for m in usage.by_model] == [("fake", 6 + 3 + 2 + 2)]
    page = response.content.decode()
    assert "Usage of alice" in page
    assert f"?owner__id__exact={alice.pk}" in page


def test_the_user_list_links_to_each_users_usage(admin_client, alice):
    page = admin_client.get("/admin/auth/user/").content.decode()
    assert f'href="/admin/chat/conversation/usage/{alice.pk}/"' in page


def admin_urls(history, user) -> list[tuple[str, str, dict]]:
    otters = history["Otters"].pk
    export = {"action": "export_jsonl", "_selected_action": [otters]}
    return [
        ("get", "/admin/", {}),
        ("get", CHANGELIST, {}),
        ("get", f"{CHANGELIST}?q=secret", {}),
        ("get", f"{CHANGELIST}{otters}/change/", {}),
        ("get", f"{CHANGELIST}usage/{user.pk}/", {}),
        ("get", "/admin/auth/user/", {}),
        ("get", "/admin/chat/apikey/", {}),
        ("post", CHANGELIST, export),
        ("post", CHANGELIST, {"action": "flag", "_selected_action": [otters]}),
    ]


def test_a_non_staff_user_never_reaches_any_of_it(history, alice):
    browser = Client()
    browser.force_login(alice)
    for method, url, data in admin_urls(history, alice):
        response = getattr(browser, method)(url, data)
        assert response.status_code == 302, url
        assert response.url.startswith("/admin/login/"), url
        assert b"secret" not in response.content and b"Otters" not in response.content
    assert not Conversation.objects.filter(flagged=True).exists()


def test_nor_does_a_visitor_who_is_not_signed_in(client, history, alice):
    for method, url, data in admin_urls(history, alice):
        response = getattr(client, method)(url, data)
        assert response.status_code == 302, url
        assert response.url.startswith("/admin/login/"), url


def test_staff_without_the_view_permission_cannot_see_usage(history, alice, django_user_model):
    clerk = django_user_model.objects.create_user("clerk", is_staff=True)
    browser = Client()
    browser.force_login(clerk)
    assert browser.get(f"{CHANGELIST}usage/{alice.pk}/").status_code == 403
    assert browser.get(CHANGELIST).status_code == 403
    clerk.user_permissions.add(Permission.objects.get(codename="view_conversation"))
    assert browser.get(f"{CHANGELIST}usage/{alice.pk}/").status_code == 200


@pytest.fixture
def reviewer(django_user_model):
    """Staff who may read conversations and their messages, and nothing more."""
    user = django_user_model.objects.create_user("reviewer", is_staff=True)
    readable = Permission.objects.filter(codename__in=["view_conversation", "view_message"])
    user.user_permissions.add(*readable)
    return user


def signed_in(user) -> Client:
    browser = Client()
    browser.force_login(user)
    return browser


def test_an_api_keys_owner_cannot_be_changed_in_the_admin(admin_client, alice, bob):
    key, _raw = ApiKey.issue(alice, "laptop")
    page = admin_client.get(f"/admin/chat/apikey/{key.pk}/change/")
    assert 'name="user"' not in page.content.decode()

    form = {"user": bob.pk, "name": "renamed", "revoked_at_0": "", "revoked_at_1": ""}
    response = admin_client.post(f"/admin/chat/apikey/{key.pk}/change/", form)

    assert response.status_code == 302, response.content.decode()[-2000:]
    key.refresh_from_db()
    assert (key.user, key.name) == (alice, "renamed")


def test_nobody_creates_keys_in_the_admin_not_even_a_superuser(admin_client, bob):
    assert admin_client.get("/admin/chat/apikey/add/").status_code == 403
    form = {"user": bob.pk, "name": "backdoor", "prefix": "cs_x", "key_hash": "0" * 64}
    assert admin_client.post("/admin/chat/apikey/add/", form).status_code == 403
    assert not ApiKey.objects.exists()


def test_opening_a_transcript_is_recorded_every_time(reviewer, history, alice):
    otters = history["Otters"]
    browser = signed_in(reviewer)
    before = timezone.now()

    for _ in range(2):
        assert browser.get(f"{CHANGELIST}{otters.pk}/change/").status_code == 200

    records = list(TranscriptView.objects.order_by("id"))
    assert len(records) == 2
    for record in records:
        assert (record.viewer, record.subject, record.conversation_ref) == (
            reviewer,
            alice,
            otters.pk,
        )
        assert record.page == "conversation" and record.viewed_at >= before


def test_lists_and_usage_show_no_transcript_and_record_nothing(reviewer, history, alice):
    browser = signed_in(reviewer)
    assert browser.get(CHANGELIST).status_code == 200
    usage = browser.get(f"{CHANGELIST}usage/{alice.pk}/")
    assert usage.status_code == 200
    assert b"Otters hold hands" not in usage.content
    assert not TranscriptView.objects.exists()


@pytest.mark.filterwarnings("ignore:StreamingHttpResponse must consume asynchronous iterators")
def test_exporting_transcripts_is_recorded(admin_client, history, alice, bob):
    chosen = [history["Otters"].pk, history["Bob's secret plan"].pk]
    admin_client.post(CHANGELIST, {"action": "export_jsonl", "_selected_action": chosen})
    seen = set(TranscriptView.objects.values_list("subject_name", "conversation_ref", "page"))
    assert seen == {("alice", chosen[0], "export"), ("bob", chosen[1], "export")}


def test_the_record_outlives_the_conversation_and_its_owner(reviewer, history, alice):
    otters = history["Otters"]
    signed_in(reviewer).get(f"{CHANGELIST}{otters.pk}/change/")
    alice.delete()
    record = TranscriptView.objects.get()
    assert (record.subject, record.subject_name, record.conversation_ref) == (
        None,
        "alice",
        otters.pk,
    )
    assert record.conversation_title == "Otters"


def test_only_superusers_read_the_record_and_nobody_edits_it(
    admin_client, reviewer, history, django_user_model
):
    signed_in(reviewer).get(f"{CHANGELIST}{history['Otters'].pk}/change/")
    record = TranscriptView.objects.get()
    log = "/admin/chat/transcriptview/"

    listing = admin_client.get(log)
    assert listing.status_code == 200 and b"reviewer" in listing.content
    assert admin_client.post(f"{log}{record.pk}/delete/", {"post": "yes"}).status_code == 403
    assert admin_client.get(f"{log}add/").status_code == 403

    # Staff given every permission there is on the record still cannot read it.
    clerk = django_user_model.objects.create_user("clerk", is_staff=True)
    clerk.user_permissions.add(*Permission.objects.filter(codename__endswith="transcriptview"))
    clerk_browser = signed_in(clerk)
    assert clerk_browser.get(log).status_code == 403
    assert clerk_browser.get(f"{log}{record.pk}/change/").status_code == 403
    assert b"transcriptview" not in clerk_browser.get("/admin/").content
    assert TranscriptView.objects.count() == 1


@pytest.mark.django_db(transaction=True)
def test_a_transcript_opened_over_http_is_recorded(live_server_url, reviewer, history, alice):
    browser = signed_in(reviewer)
    cookies = {"sessionid": browser.cookies["sessionid"].value}
    otters = history["Otters"]

    page = httpx.get(f"{live_server_url}{CHANGELIST}{otters.pk}/change/", cookies=cookies)

    assert page.status_code == 200 and "Otters hold hands" in page.text
    record = TranscriptView.objects.get()
    assert (record.viewer_name, record.subject_name, record.conversation_ref) == (
        "reviewer",
        "alice",
        otters.pk,
    )
