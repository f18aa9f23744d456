"""Linear layers packed for oneDNN, against the real SmolLM2 model in bfloat16."""

import pytest
import torch
from torch import nn

from chat.providers import local
from chat.providers.local.packing import PackedLinear, pack_linear_layers

pytestmark = pytest.mark.model


@pytest.fixture
def loaded():
    return local.load_model()  # a copy of its own: packing changes the model in place


def prompt_ids(loaded) -> torch.Tensor:
    messages = [{"role": "user", "content": "Write a long poem about the sea."}]
    encoded = loaded.tokenizer.apply_chat_template(
        messages, add_generation_prompt=True, return_dict=True
    )
    return torch.tensor([encoded["input_ids"]])


def test_it_computes_what_the_unpacked_model_computes(loaded):
    ids = prompt_ids(loaded)
    with torch.inference_mode():
        logits = loaded.model(ids).logits
        reply = loaded.model.generate(ids, max_new_tokens=30, do_sample=False)

        assert pack_linear_layers(loaded.model) > 0
        assert torch.equal(loaded.model(ids).logits, logits)
        assert torch.equal(loaded.model.generate(ids, max_new_tokens=30, do_sample=False), reply)


def test_it_packs_every_linear_layer_once(loaded):
    pack_linear_layers(loaded.model)

    assert not any(type(module) is nn.Linear for module in loaded.model.modules())
    assert isinstance(loaded.model.lm_head, PackedLinear)
    assert pack_linear_layers(loaded.model) == 0  # a second engine on the model packs nothing
