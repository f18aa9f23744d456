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


class CountingProvider(TinyWindow):
    """Counts how often it is asked to count; the whole prompt costs `overhead` more."""

    def __init__(self, overhead=0):
        super().__init__()
        self.overhead, self.each_calls, self.whole_calls = overhead, 0, 0

    def count_each(self, model, messages):
        self.each_calls += 1
        return super().count_each(model, messages)

    def count_tokens(self, model, messages):
        self.whole_calls += 1
        return sum(len(m["content"]) // 4 + 4 for m in messages) + self.overhead


def test_it_counts_each_turn_once_however_long_the_chat(settings):
    settings.CHAT_MAX_NEW_TOKENS = 100
    turns = [{"role": ("user", "assistant")[i % 2], "content": "a"} for i in range(30_001)]
    provider = CountingProvider()
    fitted = fit_to_context(provider, Generation("fake", turns))
    assert provider.each_calls == 1
    assert provider.whole_calls <= 2  # the system part (none here) and one exact check
    assert fitted[-1] is turns[-1] and fitted[0]["role"] == "user"
    assert 50 < len(fitted) < 200  # 500 tokens of 5-token turns


def test_it_cuts_again_when_the_whole_prompt_counts_more_than_its_turns(settings):
    settings.CHAT_MAX_NEW_TOKENS = 100
    turns = [{"role": ("user", "assistant")[i % 2], "content": "x" * 40} for i in range(101)]
    provider = CountingProvider(overhead=120)
    fitted = fit_to_context(provider, Generation("fake", turns))
    assert provider.count_tokens("fake", fitted) <= 500
    assert len(fitted) >= 26  # (500 - 120) // 14 = 27 turns fit: cut no further than needed


def test_it_keeps_the_question_even_when_it_alone_is_too_long(settings):
    settings.CHAT_MAX_NEW_TOKENS = 100
    turns = [{"role": "user", "content": "old"}, {"role": "user", "content": "y" * 10_000}]
    assert fit_to_context(TinyWindow(), Generation("fake", turns)) == turns[-1:]
