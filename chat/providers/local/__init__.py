"""In-process generation with a Hugging Face model, by default the packaged SmolLM2-135M.

`loading` finds, loads and caches the model; `engine` generates every reply of the model
together in one thread (continuous batching), over the KV cache that `batch` keeps;
`text` turns token ids into text deltas; `provider` holds LocalProvider, which streams
replies from the engine.
"""

from .provider import LocalProvider
from .text import IncrementalDecoder, StopSequenceFilter

_FROM_LOADING = {"CACHE_STAMP", "LoadedModel", "load_model", "shared_model"}


def __getattr__(name: str):
    # Loading needs torch (seconds to import): only what uses the model pays for it.
    if name in _FROM_LOADING:
        from . import loading

        return getattr(loading, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "CACHE_STAMP",
    "IncrementalDecoder",
    "LoadedModel",
    "LocalProvider",
    "StopSequenceFilter",
    "load_model",
    "shared_model",
]
