"""The batching engine, against the real SmolLM2 model.

Exactness is checked on a float32 copy of the model. In bfloat16 the CPU kernels round
differently for different batch shapes (a GEMM over one row vs four, attention over
padded lengths), so a batched greedy reply may part from its lone twin at a near-tie;
in float32 those differences stay far below any gap between the two likeliest tokens,
so any difference left would be a batching bug: a wrong mask, position or cache row.
"""

import asyncio
import threading

import pytest
import torch

from chat.providers import local
from chat.providers.base import Generation, ProviderError
from chat.providers.local.engine import Engine, Request

pytestmark = pytest.mark.model

QUESTIONS = [
    "Write a long poem about the sea.",
    "Name three fruits.",
    "What is the capital of France? Answer in one sentence.",
    "Tell me a story about a dragon who cannot fly.",
    "Hi",
    "Explain photosynthesis to a child.",
]
WAIT = 120  # seconds; generous, for a loaded two-core machine


@pytest.fixture(scope="session")
def fp32():
    loaded = local.load_model()
    return local.LoadedModel(loaded.model.float(), loaded.tokenizer, loaded.device)


@pytest.fixture(scope="session")
def engine(fp32):
    return Engine(fp32, max_batch=8)


class Recorder:
    """A sink that keeps a request's tokens and its end, and may act on each token."""

    def __init__(self, on_token=None):
        self.ids: list[int] = []
        self.error: Exception | None = None
        self.ended = threading.Event()
        self.on_token = on_token

    def token(self, token_id: int) -> None:
        self.ids.append(token_id)
        if self.on_token:
            self.on_token(self)

    def end(self, error: Exception | None) -> None:
        self.error = error
        self.ended.set()


def prompt(loaded, question: str) -> list[int]:
    messages = [{"role": "user", "content": question}]
    encoded = loaded.tokenizer.apply_chat_template(
        messages, add_generation_prompt=True, return_dict=True
    )
    return list(encoded["input_ids"])


def submit(engine, loaded, question, max_new_tokens=40, temperature=None, on_token=None, stop=None):
    recorder = Recorder(on_token)
    stops = (stop,) if stop else ()
    ids = prompt(loaded, question) if isinstance(question, str) else question
    engine.submit(Request(ids, max_new_tokens, temperature, recorder, stops))
    return recorder


def wait(*recorders: Recorder) -> None:
    for recorder in recorders:
        assert recorder.ended.wait(WAIT), "a request never ended"


def alone(engine, loaded, question, max_new_tokens=40) -> list[int]:
    recorder = submit(engine, loaded, question, max_new_tokens)
    wait(recorder)
    return recorder.ids


def test_its_reply_alone_is_what_generate_produces(engine, fp32):
    for question in QUESTIONS[:2]:
        ids = torch.tensor([prompt(fp32, question)])
        expected = fp32.model.generate(ids, max_new_tokens=40, do_sample=False)[0, ids.shape[1] :]

        assert alone(engine, fp32, question) == expected.tolist()


def test_concurrent_requests_get_what_each_would_get_alone(engine, fp32):
    expected = [alone(engine, fp32, question) for question in QUESTIONS]

    together = [submit(engine, fp32, question) for question in QUESTIONS]
    sampled = submit(engine, fp32, QUESTIONS[0], temperature=0.9)  # mixed in, changes nothing
    wait(*together, sampled)

    assert [recorder.ids for recorder in together] == expected
    assert all(recorder.error is None for recorder in together)
    assert len(sampled.ids) == 40


def test_a_request_joining_a_running_batch_gets_what_it_would_get_alone(engine, fp32):
    expected = [alone(engine, fp32, question) for question in QUESTIONS[:3]]
    joined = []

    def join_at_ten(recorder):
        if len(recorder.ids) == 10:  # in the engine thread, between two steps
            joined.extend(submit(engine, fp32, question) for question in QUESTIONS[1:3])

    first = submit(engine, fp32, QUESTIONS[0], on_token=join_at_ten)
    wait(first)
    wait(*joined)

    assert [first.ids] + [recorder.ids for recorder in joined] == expected


def test_a_stopped_request_leaves_at_once_and_the_others_go_on(engine, fp32):
    expected = [alone(engine, fp32, question) for question in QUESTIONS[1:3]]
    stop = threading.Event()

    def stop_at_five(recorder):
        if len(recorder.ids) == 5:
            stop.set()

    stopped = submit(engine, fp32, QUESTIONS[0], on_token=stop_at_five, stop=stop)
    others = [submit(engine, fp32, question) for question in QUESTIONS[1:3]]
    wait(stopped, *others)

    assert stopped.ids == alone(engine, fp32, QUESTIONS[0])[:5]  # no step after the stop
    assert stopped.error is None
    assert [recorder.ids for recorder in others] == expected


def test_it_honours_each_requests_token_limit(engine, fp32):
    limits = [1, 3, 8, 20]

    recorders = [submit(engine, fp32, QUESTIONS[0], max_new_tokens=n) for n in limits]
    wait(*recorders)

    assert [len(recorder.ids) for recorder in recorders] == limits


def test_it_ends_a_reply_at_eos(engine, fp32):
    ids = alone(engine, fp32, "Hi", max_new_tokens=60)

    assert ids[-1] in fp32.eos_ids
    assert not any(token in fp32.eos_ids for token in ids[:-1])
    assert len(ids) < 60


def test_a_failed_prefill_fails_only_its_own_requests(engine, fp32):
    expected = alone(engine, fp32, QUESTIONS[0])
    bad = []

    def submit_bad_at_three(recorder):
        if len(recorder.ids) == 3:  # a token id past the vocabulary breaks the embedding
            bad.append(submit(engine, fp32, [1, 2, fp32.model.config.vocab_size + 7]))

    running = submit(engine, fp32, QUESTIONS[0], on_token=submit_bad_at_three)
    wait(running)
    wait(*bad)

    assert isinstance(bad[0].error, IndexError)
    assert running.error is None
    assert running.ids == expected


async def test_a_failed_step_reaches_every_caller_as_a_provider_error(monkeypatch):
    provider = local.LocalProvider()
    loaded = local.shared_model()
    forward = loaded.model.forward

    def fail_decoding(*args, **kwargs):
        if kwargs["input_ids"].shape[1] == 1:  # prefill works; the first decode step fails
            raise RuntimeError("boom")
        return forward(*args, **kwargs)

    monkeypatch.setattr(loaded.model, "forward", fail_decoding)

    async def reply(question):
        generation = Generation(model="local", messages=[{"role": "user", "content": question}])
        return "".join([delta async for delta in provider.stream(generation)])

    outcomes = await asyncio.wait_for(
        asyncio.gather(*(reply(q) for q in QUESTIONS[:3]), return_exceptions=True), WAIT
    )

    assert all(isinstance(outcome, ProviderError) for outcome in outcomes), outcomes
    assert {outcome.code for outcome in outcomes} == {"generation_failed"}
    monkeypatch.undo()
    assert await asyncio.wait_for(reply("Name three fruits."), WAIT)  # the engine carries on
