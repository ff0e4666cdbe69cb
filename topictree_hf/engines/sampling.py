"""Per-row sampling inside `transformers.generate`, with optional JSON-schema constraints.

`generate` runs greedy; this logits processor picks each row's token itself (its own temperature,
top_p and seeded generator, so a request's text depends on its seed, not on its batch-mates) and
leaves only that token finite. Constrained rows first have their logits masked by their matcher.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from topictree_hf.engines.base import ChatRequest
from topictree_hf.engines.constrained import Guide, Matcher, allowed_mask


class RowSampler:
    """A `LogitsProcessor` for one batch; after `generate`, `truncated[i]` says row i hit its token limit."""

    def __init__(self, requests: Sequence[ChatRequest], guide: Guide | None, eos_ids: Sequence[int]) -> None:
        self.eos_id = int(eos_ids[0])
        self.eos_ids = {int(e) for e in eos_ids}
        self.guide = guide
        self.matchers: list[Matcher | None] = [
            guide.matcher(r.json_schema) if guide is not None and r.json_schema is not None else None
            for r in requests
        ]
        self.temps = [r.sampling.temperature for r in requests]
        self.top_p = torch.tensor([r.sampling.top_p for r in requests], dtype=torch.float32)
        self.limits = [r.sampling.max_tokens for r in requests]
        self.generators = [_generator(r.sampling.seed) for r in requests]
        n = len(requests)
        self.done = [False] * n
        self.truncated = [False] * n
        self.grammar_error = [False] * n
        self.step = 0
        self._bitmask = guide.new_bitmask(n) if guide is not None and any(self.matchers) else None

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        if self.step > 0:
            self._consume(input_ids[:, -1].tolist())
        self._mask(scores)
        choice = self._sample(scores)
        for i, token in enumerate(choice.tolist()):
            if self.done[i]:
                continue
            if self.step >= self.limits[i] and token not in self.eos_ids:
                choice[i] = self.eos_id
                self.truncated[i] = True
            if int(choice[i]) in self.eos_ids:
                self.done[i] = True
        scores.fill_(float("-inf"))
        scores[torch.arange(scores.shape[0]), choice] = 0.0
        self.step += 1
        return scores

    def _consume(self, last: list[int]) -> None:
        for i, matcher in enumerate(self.matchers):
            if matcher is not None and not self.done[i] and not self.grammar_error[i]:
                if not matcher.consume(last[i]):
                    self.grammar_error[i] = True

    def _mask(self, scores: torch.Tensor) -> None:
        if self._bitmask is None or self.guide is None:
            return
        rows = [i for i, m in enumerate(self.matchers) if m is not None and not self.done[i]]
        if not rows:
            return
        for i in rows:
            if self.grammar_error[i]:
                self._bitmask[i].zero_()
            else:
                self.matchers[i].fill(self._bitmask, i)  # type: ignore[union-attr]
        vocab = self.guide.vocab_size
        allowed = allowed_mask(self._bitmask[rows], vocab)
        allowed[:, self.eos_id] |= ~allowed.any(dim=1)  # a dead end may always stop
        sub = scores[rows]
        sub[:, :vocab] = sub[:, :vocab].masked_fill(~allowed, float("-inf"))
        sub[:, vocab:] = float("-inf")
        scores[rows] = sub

    def _sample(self, scores: torch.Tensor) -> torch.Tensor:
        choice = scores.argmax(dim=-1)
        sample_rows = [i for i, t in enumerate(self.temps) if t > 0 and not self.done[i]]
        if not sample_rows:
            return choice
        temps = torch.tensor([self.temps[i] for i in sample_rows], dtype=torch.float32).unsqueeze(1)
        probs = torch.softmax(scores[sample_rows].float() / temps, dim=-1)
        probs = _top_p(probs, self.top_p[sample_rows])
        for k, i in enumerate(sample_rows):
            choice[i] = torch.multinomial(probs[k], 1, generator=self.generators[i])[0]
        return choice


def _top_p(probs: torch.Tensor, top_p: torch.Tensor) -> torch.Tensor:
    if bool((top_p >= 1.0).all()):
        return probs
    sorted_p, order = probs.sort(dim=-1, descending=True)
    cum = sorted_p.cumsum(dim=-1)
    drop = (cum - sorted_p) > top_p.unsqueeze(1)  # keep the smallest prefix whose mass reaches top_p
    sorted_p = sorted_p.masked_fill(drop, 0.0)
    return torch.zeros_like(probs).scatter_(1, order, sorted_p)


def _generator(seed: int | None) -> torch.Generator:
    g = torch.Generator()
    if seed is None:
        g.seed()
    else:
        g.manual_seed(seed & 0x7FFF_FFFF_FFFF_FFFF)
    return g
