"""The counts of a generate stage: one `Summary`, one way to add one to another (`merge`), one way to
write it (`to_dict`, the "generation" part of summary.json) and to read it back (`from_dict`).

Every part of the work counts into a Summary of its own and the stage merges them: a stream
(`SampleGenerator.generate_tasks`), a Ray block (runners/blocks.py, sent to the driver as
`to_dict()` and read back with `from_dict`), the task plan's numbers (generation/topup.py) and the
stage's own (asked, resumed, delivered, seconds: `generate_pending`). So a local run and a Ray run
of the same work report the same numbers.

Each stream also records the generator: its model and parameter count (`model_parameters`, from
`engine.parameter_count`) and backend, which the card and the CLI's closing summary state
(`generator_text`, and `small_model_note` under 1B parameters).

One name per number: the samples asked for are `asked` (summary.json files written before this
version call it `requested`; `from_dict` reads both).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any

from topictree_hf.generation.prompts import SMALL_MODEL_PARAMS

if TYPE_CHECKING:
    from topictree_hf.engines.base import Engine
    from topictree_hf.generation.plan import PlanCounts

SMALL_MODEL_NOTE = ("the generator has under 1B parameters: facts in these samples are unchecked; use a larger model "
                    "(e.g. 7B+) for training data")


@dataclass
class Summary:
    asked: int = 0  # the samples asked for (the allocation)
    resumed: int = 0  # ids journaled before this run (kept or failed)
    valid: int = 0
    failed: int = 0
    retried: int = 0
    rejections: Counter[str] = field(default_factory=Counter)  # by records.reason_key (each rule on its own)
    failures: Counter[str] = field(default_factory=Counter)
    output_tokens: int = 0
    engine_calls: int = 0  # engine streams opened: one per `generate_tasks` (a local run: 1; Ray: one per block)
    seconds: float = 0.0
    mode: str = ""
    requests: int = 0  # generation requests sent this run: first tries, retries and top-ups
    topups: int = 0  # top-up tasks (indices past a leaf's allotment) handed out this run
    budget: int = 0  # the most generation requests the run dir may take (generation.topup_budget x asked)
    delivered: int = 0  # valid samples in the run dir for this config (this run's and earlier ones)
    budget_spent: bool = False  # a top-up was refused for want of budget
    judge_requests: int = 0
    judge_prompt_tokens: int = 0
    judge_output_tokens: int = 0
    judge_seconds: float = 0.0  # wall time of a separate judge engine's calls (the same engine: in the stream)
    judge_unparsed: int = 0  # judge answers without a score (the sample is kept, unscored)
    judge_scores: Counter[int] = field(default_factory=Counter)
    # the generator: {model name, as its rows carry it: its parameter count, None when the backend does not know}
    model_parameters: dict[str, int | None] = field(default_factory=dict)
    backends: Counter[str] = field(default_factory=Counter)  # engine streams per backend (Ray actors may differ)
    plan_calls: int = 0  # generation.plan: engine calls (rounds) that planned leaf items
    plan_requests: int = 0
    plan_prompt_tokens: int = 0
    plan_output_tokens: int = 0
    plan_items: int = 0  # sample slots that got a planned item
    plan_given_up: int = 0  # slots left without one after the re-asks (their samples follow the angle alone)
    plan_rejections: Counter[str] = field(default_factory=Counter)  # planned items re-asked, by reason

    @classmethod
    def of_stream(cls, engine: Engine, mode: str) -> Summary:
        """The counts of one engine stream, to start: which model (and how big) on which backend."""
        return cls(mode=mode, model_parameters={engine.model_name: engine.parameter_count},
                   backends=Counter([engine.backend]))

    def merge(self, other: Summary) -> None:
        """Add `other`'s counts to these (a stream's, a block's): numbers add up, counters too, a flag
        set in either stays set, the first mode named stays."""
        for f in fields(self):
            mine, theirs = getattr(self, f.name), getattr(other, f.name)
            if isinstance(mine, Counter):
                mine.update(theirs)
            elif isinstance(mine, dict):  # a model's size: the same in every stream
                mine.update(theirs)
            elif isinstance(mine, bool):
                setattr(self, f.name, mine or theirs)
            elif isinstance(mine, str):
                setattr(self, f.name, mine or theirs)
            else:
                setattr(self, f.name, mine + theirs)

    def count_plan(self, counts: PlanCounts) -> None:
        """What a stream's planner spent and gave (generation/plan.py)."""
        self.plan_calls += counts.calls
        self.plan_requests += counts.requests
        self.plan_prompt_tokens += counts.prompt_tokens
        self.plan_output_tokens += counts.output_tokens
        self.plan_items += counts.items
        self.plan_given_up += counts.given_up
        self.plan_rejections.update(counts.rejected)

    def count_judge_answer(self, prompt_tokens: int, output_tokens: int, score: int | None) -> None:
        """One answer of the LLM judge: its tokens, and its score (None: the answer held none)."""
        self.judge_requests += 1
        self.judge_prompt_tokens += prompt_tokens
        self.judge_output_tokens += output_tokens
        if score is None:
            self.judge_unparsed += 1
        else:
            self.judge_scores[score] += 1

    def short_reason(self) -> str | None:
        """Why fewer samples than asked were delivered (None when none is missing)."""
        missing = self.asked - self.delivered
        if missing <= 0:
            return None
        why = (f"top-up budget spent ({self.budget} requests, generation.topup_budget)" if self.budget_spent
               else "stopped before the top-up finished")
        top = ", ".join(f"{k} {v}" for k, v in self.rejections.most_common(3))
        return f"{why}; most rejected: {top}" if top else why

    def to_dict(self) -> dict[str, Any]:
        """The summary.json form (also what a Ray block sends to the driver)."""
        tps = self.output_tokens / self.seconds if self.seconds else 0.0
        return {"resumed": self.resumed, "valid": self.valid, "failed": self.failed,
                "retried": self.retried, "rejections": dict(self.rejections), "failures": dict(self.failures),
                "output_tokens": self.output_tokens, "engine_calls": self.engine_calls,
                "seconds": round(self.seconds, 3), "output_tokens_per_s": round(tps, 1), "mode": self.mode,
                "asked": self.asked, "delivered": self.delivered,
                "missing": max(0, self.asked - self.delivered), "short_reason": self.short_reason(),
                "topups": self.topups, "requests": self.requests, "budget": self.budget,
                "budget_spent": self.budget_spent,
                "judge_requests": self.judge_requests,
                "judge_tokens": self.judge_prompt_tokens + self.judge_output_tokens,
                "judge_prompt_tokens": self.judge_prompt_tokens, "judge_output_tokens": self.judge_output_tokens,
                "judge_seconds": round(self.judge_seconds, 3), "judge_unparsed": self.judge_unparsed,
                "judge_scores": {str(k): v for k, v in sorted(self.judge_scores.items())},
                "model_parameters": dict(self.model_parameters), "backends": dict(self.backends),
                "plan_calls": self.plan_calls, "plan_requests": self.plan_requests,
                "plan_prompt_tokens": self.plan_prompt_tokens, "plan_output_tokens": self.plan_output_tokens,
                "plan_items": self.plan_items, "plan_given_up": self.plan_given_up,
                "plan_rejections": dict(self.plan_rejections)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Summary:
        """A Summary from `to_dict`'s form, of this version or an older one (`requested` for `asked`);
        tolerant, as summary.json is informative only: a missing or malformed count reads as 0."""
        data = dict(data)
        if "asked" not in data and "requested" in data:
            data["asked"] = data["requested"]
        summary = cls()
        for f in fields(cls):
            value, default = data.get(f.name), getattr(summary, f.name)
            if isinstance(default, Counter):
                keys = int if f.name == "judge_scores" else str
                setattr(summary, f.name, Counter(_counts(value, keys)))
            elif isinstance(default, dict):
                setattr(summary, f.name, _sizes(value))
            elif isinstance(default, bool):
                setattr(summary, f.name, value is True)
            elif isinstance(default, str):
                setattr(summary, f.name, value if isinstance(value, str) else default)
            elif isinstance(value, int | float) and not isinstance(value, bool):
                setattr(summary, f.name, type(default)(value))
        return summary


def _counts(value: Any, key: type) -> dict[Any, int]:
    if not isinstance(value, Mapping):
        return {}
    out: dict[Any, int] = {}
    for k, v in value.items():
        try:
            out[key(k)] = int(v)
        except (TypeError, ValueError):
            continue
    return out


def _sizes(value: Any) -> dict[str, int | None]:
    if not isinstance(value, Mapping):
        return {}
    return {str(k): v if isinstance(v, int) and not isinstance(v, bool) and v > 0 else None for k, v in value.items()}


def size_text(parameters: int | None) -> str:
    """ "0.49B parameters", "7.6B parameters", "17M parameters"; "size unknown" """
    if parameters is None:
        return "size unknown"
    if parameters >= 10**10:
        return f"{parameters / 1e9:.0f}B parameters"
    if parameters >= 10**9:
        return f"{parameters / 1e9:.1f}B parameters"
    if parameters >= 10**8:
        return f"{parameters / 1e9:.2f}B parameters"
    return f"{parameters / 1e6:.0f}M parameters" if parameters >= 10**6 else f"{parameters:,} parameters"


def generator_text(sizes: Mapping[str, int | None], backends: Iterable[str]) -> str:
    """ "Qwen2.5-Coder-0.5B-Instruct, 0.49B parameters, vllm": each model, its size, the backends."""
    parts = [f"{model}, {size_text(params)}" for model, params in sorted(sizes.items())] or ["model not recorded"]
    names = sorted(set(backends))
    return "; ".join(parts) + (f", {' + '.join(names)}" if names else "")


def small_model_note(sizes: Mapping[str, int | None]) -> str | None:
    """One line when a generator is known to be under 1B parameters (an unknown size says nothing)."""
    small = any(p is not None and p < SMALL_MODEL_PARAMS for p in sizes.values())
    return SMALL_MODEL_NOTE if small else None
