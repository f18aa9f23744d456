"""Batching engine vs a thread per request, with the local model and N concurrent users.

Run:  .venv/bin/python bench/local_batching.py [--users 1 16] [--tokens 64] [--rounds 3]

For each number of users (by default one, then sixteen), each round runs both, one after
the other on the same loaded model:
- baseline: the seeds' pattern, one thread per request running `model.generate` with a
  `TextIteratorStreamer` that the user's own thread reads;
- engine: every user streams through `LocalProvider.stream()`, as the site and the
  worker do, so all replies share the batching engine.
Prompts ask for long texts so that every reply runs to --tokens (the token counts are
checked and printed). The figures printed are medians over the rounds. A reply's decode
rate counts the tokens after its first over the time from its first token to its end: for
one user, that is the model's single-user speed, with time to first token apart.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import statistics
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chatsite.settings")
# Settings refuse to start without a key when DEBUG is off; this run signs nothing lasting.
os.environ.setdefault("SECRET_KEY", secrets.token_urlsafe(50))

import django  # noqa: E402

django.setup()

from transformers import TextIteratorStreamer  # noqa: E402

from chat.providers.base import Generation  # noqa: E402
from chat.providers.local import LocalProvider, shared_model  # noqa: E402

TOPICS = [
    "the sea", "a lighthouse keeper", "a dragon who cannot fly", "the first snow of winter",
    "a robot learning to paint", "a lost city in the desert", "two rival bakers",
    "a journey to the moon", "an old clock", "a forest at night", "a girl and her kite",
    "the last train home", "a cat who runs a library", "a storm at sea", "a village festival",
    "a mountain climber",
]  # fmt: skip


@dataclass
class Reply:
    """One user's reply as that user saw it."""

    started: float
    first: float | None = None
    ended: float | None = None
    tokens: int = 0


def prompt(user: int) -> list[dict]:
    topic = TOPICS[user % len(TOPICS)]
    return [{"role": "user", "content": f"Write a long, detailed story about {topic}."}]


class _TimedStreamer(TextIteratorStreamer):
    """The seeds' streamer, noting when the first generated token arrives."""

    def __init__(self, tokenizer, reply: Reply):
        super().__init__(tokenizer, skip_prompt=True)
        self.reply, self.prompt_seen = reply, False

    def put(self, value):
        if self.prompt_seen and self.reply.first is None:
            self.reply.first = time.perf_counter()
        self.prompt_seen = True
        super().put(value)


def baseline(users: int, tokens: int) -> list[Reply]:
    """A thread per request: model.generate streaming into a TextIteratorStreamer."""
    loaded = shared_model()
    replies = [Reply(started=time.perf_counter()) for _ in range(users)]

    def user(index: int) -> None:
        reply = replies[index]
        inputs = loaded.tokenizer.apply_chat_template(
            prompt(index), add_generation_prompt=True, return_dict=True, return_tensors="pt"
        ).to(loaded.device)
        streamer = _TimedStreamer(loaded.tokenizer, reply)
        kwargs = dict(**inputs, max_new_tokens=tokens, do_sample=False, streamer=streamer)
        worker = threading.Thread(target=_generate_counting, args=(loaded, kwargs, reply))
        worker.start()
        for _text in streamer:  # the user reads the stream as it comes
            pass
        worker.join()
        reply.ended = time.perf_counter()

    threads = [threading.Thread(target=user, args=(i,)) for i in range(users)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return replies


def _generate_counting(loaded, kwargs: dict, reply: Reply) -> None:
    output = loaded.model.generate(**kwargs, pad_token_id=loaded.tokenizer.eos_token_id)
    reply.tokens = output.shape[-1] - kwargs["input_ids"].shape[-1]


async def engine(users: int, tokens: int) -> list[Reply]:
    """Every user streams through LocalProvider.stream(), which batches them."""
    provider = LocalProvider()

    async def user(index: int) -> Reply:
        reply = Reply(started=time.perf_counter())
        generation = Generation(model="local", messages=prompt(index), max_tokens=tokens)
        async for _delta in provider.stream(generation):
            if reply.first is None:
                reply.first = time.perf_counter()
        reply.ended, reply.tokens = time.perf_counter(), generation.output_tokens
        return reply

    return await asyncio.gather(*(user(i) for i in range(users)))


def summarize(replies: list[Reply]) -> dict:
    wall = max(r.ended for r in replies) - min(r.started for r in replies)
    ttft = sorted(r.first - r.started for r in replies)
    return {
        "total_tps": sum(r.tokens for r in replies) / wall,
        "ttft_p50": statistics.median(ttft),
        "ttft_p99": ttft[min(len(ttft) - 1, round(0.99 * (len(ttft) - 1)))],
        "user_tps": statistics.median(r.tokens / (r.ended - r.started) for r in replies),
        "decode_tps": statistics.median((r.tokens - 1) / (r.ended - r.first) for r in replies),
        "tokens": sorted({r.tokens for r in replies}),
    }


def show(name: str, figures: dict) -> str:
    return (
        f"{name:9} total {figures['total_tps']:7.1f} tokens/s | TTFT p50 "
        f"{figures['ttft_p50'] * 1000:5.0f} ms, p99 {figures['ttft_p99'] * 1000:5.0f} ms | "
        f"per user {figures['user_tps']:5.1f} tokens/s, decode {figures['decode_tps']:5.1f} | "
        f"tokens per reply {figures['tokens']}"
    )


def median_of(rounds: list[dict]) -> dict:
    merged = {
        key: statistics.median(r[key] for r in rounds) for key in rounds[0] if key != "tokens"
    }
    merged["tokens"] = sorted({t for r in rounds for t in r["tokens"]})
    return merged


def warm_up() -> None:
    """Load the model and run both paths once, so neither round pays for first-call setup."""
    LocalProvider().preload()
    baseline(1, 4)
    asyncio.run(engine(1, 4))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, nargs="+", default=[1, 16])
    parser.add_argument("--tokens", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    warm_up()
    for users in args.users:
        compare(users, args.tokens, args.rounds)


def compare(users: int, tokens: int, rounds: int) -> None:
    """Run both paths `rounds` times with this many users; print each round and the medians."""
    print(f"{users} users, {tokens}-token replies, load average {os.getloadavg()}")
    results = {"baseline": [], "engine": []}
    for number in range(1, rounds + 1):
        results["baseline"].append(summarize(baseline(users, tokens)))
        results["engine"].append(summarize(asyncio.run(engine(users, tokens))))
        for name, figures in results.items():
            print(f"round {number}: {show(name, figures[-1])}")
    base, ours = median_of(results["baseline"]), median_of(results["engine"])
    print(f"{users} users, median of {rounds} rounds, load average {os.getloadavg()}:")
    print(show("baseline", base))
    print(show("engine", ours))
    print(f"engine/baseline total tokens/s: {ours['total_tps'] / base['total_tps']:.1f}x")


if __name__ == "__main__":
    main()
