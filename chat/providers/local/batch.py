"""Sequences decoded together: one left-padded KV cache, its attention mask and positions.

Rows are aligned on the right: every row's newest token sits in the last column, and
shorter histories are padded with masked-out zeros (on the left, or after a prefix the
rows share). One forward pass then extends every row by a token, and rows can join
(`merge`) and leave (`keep`) between steps. Explicit position ids give each row the
positions it would have alone, so the padding changes nothing but columns the mask hides.
"""

from __future__ import annotations

import os

import torch
import torch.nn.functional as F
from transformers import DynamicCache


class PaddedBatch:
    """The KV cache of several sequences, padded to a common width, with mask and positions."""

    def __init__(self, device: torch.device, rows: int):
        self.cache = DynamicCache()  # per layer: keys and values [rows, heads, columns, dim]
        self.mask = torch.zeros((rows, 0), dtype=torch.long, device=device)  # 1: a real token
        self.lengths = torch.zeros(rows, dtype=torch.long, device=device)  # = next positions

    @classmethod
    def prefill(cls, model, prompts: list[list[int]]) -> tuple[PaddedBatch, torch.Tensor]:
        """Run the prompts through the model together; return the batch and each row's logits.

        A prefix the prompts share (the chat template's system prompt, typically) is
        computed once and copied to every row, so a burst of new chats costs little more
        than their own words. Each row keeps at least its last token to compute alone:
        that is where its logits come from.
        """
        shared = shared_prefix(prompts)
        batch = cls(model.device, 1 if shared else len(prompts))
        if shared:
            batch._extend(model, [prompts[0][:shared]])
            batch._repeat(len(prompts))
        return batch, batch._extend(model, [prompt[shared:] for prompt in prompts])

    def decode(self, model, tokens: list[int]) -> torch.Tensor:
        """Append one token to every row; return the logits for each row's next token."""
        return self._extend(model, [[token] for token in tokens])

    def keep(self, rows: list[int]) -> None:
        """Keep only these rows, dropping the columns that were padding for all of them."""
        index = torch.tensor(rows, device=self.mask.device)
        self.mask, self.lengths = self.mask[index], self.lengths[index]
        unused = int(self.mask.any(0).int().argmax())  # the first column anyone still uses
        self.mask = self.mask[:, unused:]
        self._set_layers([(k[index, :, unused:], v[index, :, unused:]) for k, v in self._layers()])

    def merge(self, other: PaddedBatch) -> None:
        """Append the rows of `other`, padding whichever batch is narrower on the left."""
        width = max(self.mask.shape[1], other.mask.shape[1])
        mine, theirs = width - self.mask.shape[1], width - other.mask.shape[1]
        self.mask = torch.cat([F.pad(self.mask, (mine, 0)), F.pad(other.mask, (theirs, 0))])
        self.lengths = torch.cat([self.lengths, other.lengths])
        self._set_layers([
            (torch.cat([_pad_left(k, mine), _pad_left(ok, theirs)]),
             torch.cat([_pad_left(v, mine), _pad_left(ov, theirs)]))
            for (k, v), (ok, ov) in zip(self._layers(), other._layers(), strict=True)
        ])  # fmt: skip

    def _extend(self, model, chunks: list[list[int]]) -> torch.Tensor:
        """Feed each row its chunk of tokens (right-aligned); return each row's last logits."""
        width = max(len(chunk) for chunk in chunks)
        ids = torch.zeros((len(chunks), width), dtype=torch.long)
        new = torch.zeros((len(chunks), width), dtype=torch.long)
        for row, chunk in enumerate(chunks):
            ids[row, width - len(chunk) :] = torch.tensor(chunk)
            new[row, width - len(chunk) :] = 1
        ids, new = ids.to(self.mask.device), new.to(self.mask.device)
        # Positions count a row's real tokens only, so they match the row computed alone.
        positions = self.lengths.unsqueeze(-1) + (new.cumsum(-1) - 1).clamp(min=0)
        self.mask = torch.cat([self.mask, new], dim=1)
        output = model(
            input_ids=ids,
            attention_mask=self.mask,
            position_ids=positions,
            past_key_values=self.cache,
            use_cache=True,
            logits_to_keep=1,  # only the last column's logits are ever used
        )
        self.lengths = self.lengths + new.sum(-1)
        return output.logits[:, -1]

    def _repeat(self, rows: int) -> None:
        self.mask, self.lengths = self.mask.expand(rows, -1), self.lengths.expand(rows)
        self._set_layers(
            [(k.expand(rows, -1, -1, -1), v.expand(rows, -1, -1, -1)) for k, v in self._layers()]
        )

    def _layers(self) -> list[tuple[torch.Tensor, torch.Tensor]]:
        return [(layer.keys, layer.values) for layer in self.cache.layers]

    def _set_layers(self, tensors: list[tuple[torch.Tensor, torch.Tensor]]) -> None:
        for layer, (keys, values) in zip(self.cache.layers, tensors, strict=True):
            layer.keys, layer.values = keys, values


def shared_prefix(prompts: list[list[int]]) -> int:
    """How many leading tokens all the prompts share, short of each one's last token."""
    if len(prompts) < 2:
        return 0
    common = os.path.commonprefix(prompts)  # works on any sequences, not only paths
    return min(len(common), min(len(prompt) for prompt in prompts) - 1)


def prefill_cost(prompts: list[list[int]]) -> int:
    """The token positions `PaddedBatch.prefill` computes for these prompts, padding included."""
    shared = shared_prefix(prompts)
    return shared + len(prompts) * max(len(prompt) - shared for prompt in prompts)


def _pad_left(states: torch.Tensor, columns: int) -> torch.Tensor:
    """Prepend `columns` zero columns to keys or values of shape [rows, heads, columns, dim]."""
    return F.pad(states, (0, 0, columns, 0)) if columns else states
