"""The in-process provider, against the real packaged SmolLM2 model."""

import asyncio
import time

import pytest

from chat.providers import local
from chat.providers.base import Generation, ProviderError
from chat.providers.local import loading
from chat.providers.local.engine import shared_engine

MODEL = "smollm2-135m"
POEM = "Write a long poem about the sea."


@pytest.fixture(scope="session")
def provider():
    """One provider for the session, on the project's default cache (fast after the first run)."""
    provider = local.LocalProvider()
    provider.preload()
    return provider


@pytest.fixture(scope="session")
def loaded(provider):
    return local.shared_model()


def ask(text: str, **kwargs) -> Generation:
    return Generation(model=MODEL, messages=[{"role": "user", "content": text}], **kwargs)


async def collect(provider, generation: Generation) -> list[str]:
    return [delta async for delta in provider.stream(generation)]


async def until_the_engine_is_idle(timeout: float = 30) -> None:
    """Wait until the engine holds no request: a stopped one has left the batch for good."""
    engine = shared_engine()
    deadline = time.monotonic() + timeout
    while engine.active or engine.waiting or not engine.inbox.empty():
        assert time.monotonic() < deadline, "the engine kept generating the stopped reply"
        await asyncio.sleep(0.02)


def greedy_reference(loaded, generation: Generation) -> tuple[str, int]:
    """What plain model.generate produces for the same prompt: (text, new token count)."""
    prompt = loaded.tokenizer.apply_chat_template(
        generation.messages, add_generation_prompt=True, return_dict=True, return_tensors="pt"
    ).to(loaded.device)
    output = loaded.model.generate(**prompt, max_new_tokens=generation.max_tokens, do_sample=False)
    new = output[0, prompt["input_ids"].shape[-1] :].tolist()
    text = loaded.tokenizer.decode(
        new, skip_special_tokens=True, clean_up_tokenization_spaces=False
    )
    return text, len(new)


@pytest.mark.model
async def test_it_streams_a_real_reply(provider):
    deltas = await collect(provider, ask("What is the capital of France?", max_tokens=40))

    assert len(deltas) > 3
    assert all(deltas)
    assert "Paris" in "".join(deltas)


@pytest.mark.model
async def test_its_deltas_join_up_to_the_decoded_output(provider, loaded):
    question = "What is the capital of France? Answer in one sentence."
    generation = ask(question, max_tokens=60)

    deltas = await collect(provider, generation)

    text, count = greedy_reference(loaded, ask(question, max_tokens=60))
    assert count < 60  # the reply ended with <|im_end|>, which is counted but not shown
    assert "".join(deltas) == text
    assert generation.output_tokens == count
    assert not generation.stop.is_set()


@pytest.mark.model
async def test_it_stops_within_one_decode_step(provider):
    generation = ask(POEM, max_tokens=400)
    stream = provider.stream(generation)
    await anext(stream)
    tokens_at_stop = generation.output_tokens
    generation.stop.set()

    rest = [delta async for delta in stream]

    # The step under way when the stop came may finish; no further one starts.
    assert generation.output_tokens <= tokens_at_stop + 1
    assert len(rest) <= 1
    await until_the_engine_is_idle()
    assert generation.output_tokens <= tokens_at_stop + 1


@pytest.mark.model
async def test_cancelling_the_consumer_stops_the_worker(provider):
    generation = ask(POEM, max_tokens=400)
    first = asyncio.Event()

    async def consume():
        async for _ in provider.stream(generation):
            first.set()

    task = asyncio.create_task(consume())
    await first.wait()
    task.cancel()
    tokens_at_cancel = generation.output_tokens
    with pytest.raises(asyncio.CancelledError):
        await task

    assert generation.stop.is_set()
    await until_the_engine_is_idle()
    assert generation.output_tokens <= tokens_at_cancel + 1


@pytest.mark.model
async def test_closing_the_stream_stops_the_worker(provider):
    generation = ask(POEM, max_tokens=400)
    stream = provider.stream(generation)
    await anext(stream)
    tokens_at_close = generation.output_tokens

    await stream.aclose()

    assert generation.stop.is_set()
    await until_the_engine_is_idle()
    assert generation.output_tokens <= tokens_at_close + 1


@pytest.mark.model
async def test_two_replies_stream_at_once(provider):
    arrivals = []

    async def follow(name: str, question: str) -> str:
        text = ""
        async for delta in provider.stream(ask(question, max_tokens=30)):
            arrivals.append(name)
            text += delta
        return text

    texts = await asyncio.gather(follow("a", "Name three fruits."), follow("b", "Count to ten."))

    assert all(texts)
    # Interleaved, not one after the other: each began before the other finished.
    # (That a batched reply is the one it would be alone: see test_local_engine.py.)
    assert arrivals.index("a") < len(arrivals) - 1 - arrivals[::-1].index("b")
    assert arrivals.index("b") < len(arrivals) - 1 - arrivals[::-1].index("a")


@pytest.mark.model
def test_it_writes_and_reuses_the_safetensors_cache(settings, tmp_path, monkeypatch):
    settings.CHAT_MODEL_CACHE_DIR = tmp_path
    cache = tmp_path / MODEL
    cache.mkdir()
    (cache / "config.json").write_text("{ half-written")  # as a crash would leave it

    first = local.load_model()

    assert (cache / "model.safetensors").stat().st_size > 100_000_000
    assert (cache / "tokenizer.json").is_file()
    assert (cache / local.CACHE_STAMP).is_file()
    assert [path.name for path in tmp_path.iterdir()] == [MODEL]  # no temporary copies left

    def no_gguf(*args):
        raise AssertionError("the GGUF file was read again despite the cache")

    monkeypatch.setattr(loading, "_load_gguf", no_gguf)
    second = local.load_model()

    reloaded = second.model.state_dict()
    for name, tensor in first.model.state_dict().items():
        assert reloaded[name].dtype == tensor.dtype
        assert reloaded[name].equal(tensor), name
    messages = [{"role": "user", "content": "héllo 🌊"}]
    assert second.tokenizer.apply_chat_template(messages) == first.tokenizer.apply_chat_template(
        messages
    )


@pytest.mark.model
async def test_it_never_splits_a_character(provider, loaded):
    text = "Café 🌊 naïve 世界 👨‍👩‍👧 ok"
    ids = loaded.tokenizer.encode(text, add_special_tokens=False)
    # The test means something only if some tokens hold part of a character.
    assert any("\ufffd" in loaded.tokenizer.decode([i]) for i in ids)

    decoder = local.IncrementalDecoder(loaded.tokenizer)
    deltas = [decoder.add([i]) for i in ids] + [decoder.flush()]
    assert not any("\ufffd" in delta for delta in deltas)
    assert "".join(deltas) == text

    # Cut off inside the last emoji: the partial character is dropped, not mangled.
    truncated = loaded.tokenizer.decode(ids[:-3])
    assert truncated.endswith("\ufffd")
    decoder = local.IncrementalDecoder(loaded.tokenizer)
    cut = [decoder.add([i]) for i in ids[:-3]] + [decoder.flush()]
    assert "".join(cut) == truncated.rstrip("\ufffd")
    assert text.startswith("".join(cut))

    generation = ask("Translate 'good morning, friend' into Japanese and Chinese.", max_tokens=60)
    deltas = await collect(provider, generation)
    assert not any("\ufffd" in delta for delta in deltas)
    # A reply cut off by max_tokens inside a character ends before that character.
    assert "".join(deltas) == greedy_reference(loaded, generation)[0].rstrip("\ufffd")


@pytest.mark.model
async def test_it_counts_output_tokens(provider):
    messages = [{"role": "user", "content": POEM}]
    generation = Generation(model=MODEL, messages=messages, max_tokens=7)

    await collect(provider, generation)

    assert generation.output_tokens == 7
    assert generation.prompt_tokens == provider.count_tokens(MODEL, messages)
    assert generation.prompt_tokens > 10  # the chat template's system prompt is counted too
    assert provider.context_window(MODEL) == 8192


@pytest.mark.model
async def test_it_ends_at_a_stop_sequence(provider):
    full = "".join(await collect(provider, ask(POEM, max_tokens=60)))
    stop = full[len(full) // 2 :][:5]
    generation = ask(POEM, max_tokens=60, stop_sequences=["never appears", stop])

    text = "".join(await collect(provider, generation))

    assert text == full[: full.index(stop)]
    assert generation.output_tokens < 60
    assert not generation.stop.is_set()  # ending at a stop sequence is not a user's stop


@pytest.mark.model
def test_stop_sequences_split_across_deltas_are_held_back():
    stops = local.StopSequenceFilter(["lo wor"])

    # A tail that could begin "lo wor" waits for the next delta to decide.
    assert [stops.feed("Hel"), stops.feed("lo w"), stops.feed("orld")] == ["He", "l", ""]
    assert stops.stopped

    stops = local.StopSequenceFilter(["lo wor"])
    assert [stops.feed("Hel"), stops.feed("lo w"), stops.feed("ide", final=True)] == [
        "He",
        "l",
        "lo wide",
    ]
    assert not stops.stopped


@pytest.mark.model
async def test_it_samples_when_given_a_temperature(provider):
    generation = ask(POEM, max_tokens=20, temperature=0.9)

    text = "".join(await collect(provider, generation))

    assert text
    assert 0 < generation.output_tokens <= 20


@pytest.mark.model
async def test_a_failure_in_the_model_becomes_a_provider_error(provider, loaded, monkeypatch):
    def broken(**kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(loaded.model, "forward", broken)

    with pytest.raises(ProviderError) as error:
        await collect(provider, ask("Hello"))

    assert error.value.code == "generation_failed"
    assert error.value.message.endswith(".")


@pytest.mark.model
def test_it_loads_another_model_directory(settings, loaded):
    # The cache directory is itself a plain Hugging Face model directory.
    settings.CHAT_LOCAL_MODEL_PATH = str(settings.CHAT_MODEL_CACHE_DIR / MODEL)

    other = local.load_model()

    assert other.model.config.max_position_embeddings == 8192
    assert other.model is not loaded.model


@pytest.mark.model
def test_a_missing_model_path_is_a_configuration_error(settings, tmp_path):
    settings.CHAT_LOCAL_MODEL_PATH = str(tmp_path / "nowhere")

    with pytest.raises(ProviderError) as error:
        local.load_model()

    assert error.value.code == "provider_not_configured"
    assert "CHAT_LOCAL_MODEL_PATH" in error.value.message
