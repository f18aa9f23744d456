"""What the model is shown: the persona, the turns, trimmed to the context window."""

from chat.models import Message
from chat.prompt import fit_to_context, history
from chat.providers.base import Generation
from chat.providers.fake import FakeProvider


def message(role, content, status=Message.Status.COMPLETE):
    return Message(role=role, content=content, status=status)


def test_it_puts_the_persona_first_and_skips_failed_replies():
    shown = history(
        "You are a pirate captain.",
        [
            message("user", "hi"),
            message("assistant", "half an answ", Message.Status.FAILED),
            message("user", "hello?"),
            message("assistant", "Arr, hello.", Message.Status.STOPPED),
        ],
    )
    assert shown == [
        {"role": "system", "content": "You are a pirate captain."},
        {"role": "user", "content": "hi"},
        {"role": "user", "content": "hello?"},
        {"role": "assistant", "content": "Arr, hello."},
    ]


class TinyWindow(FakeProvider):
    def context_window(self, model):
        return 600


def test_it_drops_the_oldest_turns_to_fit_but_keeps_the_persona_and_the_question(settings):
    settings.CHAT_MAX_NEW_TOKENS = 100
    turns = []
    for i in range(20):
        turns += [
            {"role": "user", "content": f"q{i} " * 40},
            {"role": "assistant", "content": "a " * 40},
        ]
    messages = [
        {"role": "system", "content": "Be brief."},
        *turns,
        {"role": "user", "content": "last?"},
    ]
    fitted = fit_to_context(TinyWindow(), Generation("fake", messages))
    assert fitted[0] == {"role": "system", "content": "Be brief."}
    assert fitted[-1] == {"role": "user", "content": "last?"}
    assert fitted[1]["role"] == "user"
    assert 2 < len(fitted) < len(messages)
    assert TinyWindow().count_tokens("fake", fitted) <= 500
