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

NUCLEUS_CANDIDATES = 256  # top-k searched for the top_p nucleus before falling back to a full sort


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
        self.top_p = [r.sampling.top_p for r in requests]
        self.limits = [r.sampling.max_tokens for r in requests]
        self.penalties = [r.sampling.repetition_penalty or 1.0 for r in requests]
        self.starts = [0] * len(requests)  # where each row's own tokens start (after its left padding)
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
        self._penalize(input_ids, scores)
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

    def _penalize(self, input_ids: torch.Tensor, scores: torch.Tensor) -> None:
        """Each row's own repetition penalty (as vLLM and transformers define it: a token already in the
        prompt or the output has its logit divided by the penalty when positive, multiplied when
        negative), so a row's text does not depend on its batch-mates' settings."""
        for i, penalty in enumerate(self.penalties):
            if penalty == 1.0 or self.done[i]:
                continue
            seen = input_ids[i, self.starts[i]:].unique()
            logits = scores[i, seen]
            scores[i, seen] = torch.where(logits > 0, logits / penalty, logits * penalty)

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
        rows = [i for i, t in enumerate(self.temps) if t > 0 and not self.done[i]]
        if not rows:
            return choice
        temps = torch.tensor([self.temps[i] for i in rows], dtype=torch.float32).unsqueeze(1)
        logp = torch.log_softmax(scores[rows].float() / temps, dim=-1)
        top_logp, top_ids = logp.topk(min(NUCLEUS_CANDIDATES, logp.shape[1]), dim=-1)
        for k, i in enumerate(rows):
            u = float(torch.rand((), dtype=torch.float64, generator=self.generators[i]))
            choice[i] = _draw(logp[k], top_logp[k], top_ids[k], self.top_p[i], u)
        return choice


def _draw(logp: torch.Tensor, top_logp: torch.Tensor, top_ids: torch.Tensor, top_p: float, u: float) -> int:
    """Inverse-CDF draw from one row's distribution (log-probs), restricted to its top_p nucleus.

    The nucleus is looked for among the `top_ids` candidates first (a top-k, far cheaper than sorting
    the whole vocabulary every step); only when they hold less than top_p of the mass is the row sorted.
    """
    ids: torch.Tensor | None = None
    if top_p < 1.0:
        probs, ids = top_logp.double().exp(), top_ids
        if float(probs.sum()) < top_p and ids.numel() < logp.numel():
            sorted_logp, ids = logp.sort(descending=True)
            probs = sorted_logp.double().exp()
        before = probs.cumsum(0) - probs
        keep = int((before < top_p).sum())  # the smallest prefix whose mass reaches top_p
        probs, ids = probs[:keep], ids[:keep]
    else:
        probs = logp.double().exp()
    cum = probs.cumsum(0)
    pos = min(int(torch.searchsorted(cum, u * float(cum[-1]), right=True)), cum.numel() - 1)
    if probs[pos] == 0:  # rounding at the very top of the CDF: never return a masked-out token
        pos = int(torch.nonzero(probs[: pos + 1]).max())
    return int(ids[pos]) if ids is not None else pos


def _generator(seed: int | None) -> torch.Generator:
    g = torch.Generator()
    if seed is None:
        g.seed()
    else:
        g.manual_seed(seed & 0x7FFF_FFFF_FFFF_FFFF)
    return g
