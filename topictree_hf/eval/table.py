"""The evaluation as a Markdown table (terminal and dataset card alike), with a baseline column and
ratios when one is given, and the card's diversity section."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from topictree_hf.errors import InputFileError

Style = Literal["pct", "num", "vendi", "int"]


@dataclass(frozen=True, slots=True)
class Row:
    group: str
    key: str
    label: str  # may use {settings fields}
    style: Style = "num"
    better: Literal["higher", "lower", ""] = ""


SECTIONS = {"quality": "Quality guards", "diversity": "Diversity, all samples",
            "on_topic": "Diversity, on-topic samples only", "tree": "Spread over the tree"}
ROWS = (
    Row("quality", "valid_rate", "valid rate (passed format validation)", "pct", "higher"),
    Row("quality", "on_topic_rate", "on-topic rate (on its path, or the root wins)*", "pct", "higher"),
    Row("quality", "on_path_rate", "on-path rate (cosine with its path >= {on_path_threshold:g})*", "pct", "higher"),
    Row("quality", "root_wins_rate", "root wins (closest of the root and 32 broad topics)*", "pct", "higher"),
    Row("quality", "mean_path_similarity", "mean cosine with its path*", "num", "higher"),
    Row("quality", "mean_root_similarity", "mean cosine with the root*"),
    Row("diversity", "exact_duplicate_rate", "exact duplicates", "pct", "lower"),
    Row("diversity", "near_duplicate_rate", "near-duplicates (MinHash, word {ngram}-grams, J >= {near_threshold:g})",
        "pct", "lower"),
    Row("diversity", "semantic_duplicate_rate", "semantic near-duplicates (cosine >= {semantic_threshold:g})*",
        "pct", "lower"),
    Row("diversity", "distinct_1", "distinct-1", "num", "higher"),
    Row("diversity", "distinct_2", "distinct-2", "num", "higher"),
    Row("diversity", "distinct_3", "distinct-3", "num", "higher"),
    Row("diversity", "self_bleu", "self-BLEU-4 ({self_bleu_sample} samples)", "num", "lower"),
    Row("diversity", "compression_ratio", "compression ratio (gzip)", "num", "lower"),
    Row("diversity", "mean_pairwise_cosine", "mean pairwise cosine*", "num", "lower"),
    Row("diversity", "vendi_score", "Vendi score*", "vendi", "higher"),
    Row("on_topic", "samples", "on-topic samples*", "int"),
    Row("on_topic", "near_duplicate_rate", "near-duplicates (J >= {near_threshold:g})", "pct", "lower"),
    Row("on_topic", "semantic_duplicate_rate", "semantic near-duplicates (cosine >= {semantic_threshold:g})",
        "pct", "lower"),
    Row("on_topic", "distinct_2", "distinct-2", "num", "higher"),
    Row("on_topic", "mean_pairwise_cosine", "mean pairwise cosine", "num", "lower"),
    Row("on_topic", "vendi_score", "Vendi score", "vendi", "higher"),
    Row("tree", "leaves", "leaves in the tree", "int"),
    Row("tree", "paths_with_samples", "distinct paths with samples", "int"),
    Row("tree", "leaf_coverage", "leaf coverage", "pct", "higher"),
    Row("tree", "leaf_entropy_bits", "entropy of samples per leaf (bits)"),
    Row("tree", "leaf_entropy_normalized", "the same / log2(leaves)", "num", "higher"),
    Row("tree", "intra_path_similarity", "mean cosine within a path*"),
    Row("tree", "inter_path_similarity", "mean cosine across paths*", "num", "lower"),
)


def fmt(value: Any, style: Style) -> str:
    if value is None:
        return "n/a"
    if style == "pct":
        return f"{100 * value:.1f}%"
    if style == "int":
        return f"{int(value):,}"
    return f"{value:.1f}" if style == "vendi" else f"{value:.3f}"


def _ratio(value: Any, base: Any) -> str:
    if value is None or base is None or base == 0:
        return "n/a"
    return f"{value / base:.2f}x"


def _ahead(value: Any, base: Any, row: Row, names: tuple[str, str]) -> str:
    """Which set the row favours, as the two columns show it (a tie when they print the same)."""
    if not row.better or value is None or base is None:
        return ""
    if fmt(value, row.style) == fmt(base, row.style):
        return "tie"
    first = value > base if row.better == "higher" else value < base
    return names[0] if first else names[1]


def format_table(result: Mapping[str, Any], baseline: Mapping[str, Any] | None = None,
                 names: tuple[str, str] = ("this set", "baseline")) -> str:
    """A Markdown table of `result` (from `evaluate`), side by side with `baseline` when given."""
    settings = result["settings"]
    head = ["metric", "better", names[0]] + ([names[1], "ratio", "ahead"] if baseline is not None else [])
    lines = ["| " + " | ".join(head) + " |", "| --- | --- |" + " ---: |" * (len(head) - 2)]
    group = ""
    for row in ROWS:
        if row.group != group:
            group = row.group
            lines.append("| " + " | ".join([f"**{SECTIONS[group]}**"] + [""] * (len(head) - 1)) + " |")
        value = result[row.group].get(row.key)
        cells = [row.label.format(**settings), row.better, fmt(value, row.style)]
        if baseline is not None:
            base = baseline[row.group].get(row.key)
            cells += [fmt(base, row.style), _ratio(value, base) if row.style != "int" else "",
                      _ahead(value, base, row, names)]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


REPEAT_PLACES = (("same_leaf", "same leaf"), ("sibling_leaves", "sibling leaves (same parent)"),
                 ("same_branch", "same branch (same depth-1 topic)"), ("elsewhere", "elsewhere"))


def repeats_table(result: Mapping[str, Any], baseline: Mapping[str, Any] | None = None,
                  names: tuple[str, str] = ("this set", "baseline")) -> str:
    """Duplicate pairs by where the two samples sit in the tree (count and share of the pairs), one
    column per kind (semantic, near) and set; "" for a result without repeats."""
    sets = [(names[0], result)] + ([(names[1], baseline)] if baseline is not None else [])
    if any("repeats" not in r for _, r in sets):
        return ""
    s = result["settings"]
    kinds = (("semantic", f"semantic (cosine >= {s['semantic_threshold']:g})*"),
             ("near", f"near (J >= {s['near_threshold']:g})"))
    head = ["duplicate pairs: where the two samples sit"]
    head += [f"{name}: {label}" if baseline is not None else label for name, _ in sets for _, label in kinds]
    lines = ["| " + " | ".join(head) + " |", "| --- |" + " ---: |" * (len(head) - 1)]
    for key, label in REPEAT_PLACES:
        cells = [_pairs_cell(r["repeats"][kind], key) for _, r in sets for kind, _ in kinds]
        lines.append("| " + " | ".join([label, *cells]) + " |")
    totals = [f"{r['repeats'][kind]['pairs']:,} among {r['repeats'][kind]['samples']:,}" for _, r in sets
              for kind, _ in kinds]
    lines.append("| " + " | ".join(["all duplicate pairs (among samples)", *totals]) + " |")
    return "\n".join(lines)


def _pairs_cell(counts: Mapping[str, int], key: str) -> str:
    n, total = counts[key], counts["pairs"]
    return f"{n:,} ({100 * n / total:.1f}%)" if total else "0"


def table_notes(result: Mapping[str, Any], baseline: Mapping[str, Any] | None = None) -> str:
    s = result["settings"]
    sizes = f"{result['embedded']:,} of {result['samples']:,}"
    if baseline is not None:
        sizes += f"; baseline {baseline['embedded']:,} of {baseline['samples']:,}"
    equal = result.get("equal_n")
    same_n = (f" Both sets are measured at N = {result['samples']:,} (the larger cut by a seeded pick from "
              f"{equal:,})." if baseline is not None and equal else "")
    text = "user and assistant turns" if s["turns"] == "all" else "assistant turns"
    cap = f"at most {s['embed_sample']:,}" if s["embed_sample"] else "all"
    return (f"Measured on the {text} of each sample. * Embedding figures (all-MiniLM-L6-v2, first "
            f"{s['embed_max_tokens']} word pieces) use a fixed random sample (seed {s['seed']}) of {cap} "
            f"samples: {sizes} here. Duplicate rates count what a keep-the-first filter would drop. "
            "Compare sets of equal size: duplicate rates, self-BLEU and Vendi all grow with the number "
            "of samples." + same_n + " " + REPEATS_NOTE)


REPEATS_NOTE = ("Duplicate pairs count every pair at or above the threshold (semantic: among the embedded "
                "samples; near: among all), by where the two samples sit in the tree: the same leaf, two "
                "leaves with the same parent, the same depth-1 branch, or elsewhere. A set without a tree "
                "(every path is the root alone, as in the naive baseline) has one leaf: all its pairs are "
                "same leaf.")


def full_table(result: Mapping[str, Any], baseline: Mapping[str, Any] | None = None,
               names: tuple[str, str] = ("this set", "baseline")) -> str:
    """The figures table, then the duplicate pairs by place (terminal and card alike)."""
    repeats = repeats_table(result, baseline, names)
    return format_table(result, baseline, names) + (f"\n\n{repeats}" if repeats else "")


def card_body(result: Mapping[str, Any], baseline: Mapping[str, Any] | None = None,
              names: tuple[str, str] = ("this set", "baseline"), command: str = "") -> str:
    parts = [full_table(result, baseline, names), "", table_notes(result, baseline)]
    if command:
        parts += ["", f"Reproduce with `{command}`."]
    return "\n".join(parts)


def check_card_section(card: Path) -> str:
    """The card's text, after checking it has one diversity section to write into."""
    from topictree_hf.dataset.card import read_section, replace_section

    try:
        text = card.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        raise InputFileError(f"cannot read the dataset card {card}; rebuild the folder with `topictree build`, "
                             "or pass --no-card") from None
    if read_section(text, "diversity") is None:
        replace_section(text, "diversity", "")  # raises the card module's one-line error
    return text


def write_card_section(card: Path, body: str) -> None:
    """Put `body` between the card's diversity markers (the rest of the card is kept)."""
    from topictree_hf.dataset.card import replace_section

    new_text = replace_section(check_card_section(card), "diversity", body)
    tmp = card.with_name(f".{card.name}.tmp")
    tmp.write_text(new_text, encoding="utf-8")
    tmp.replace(card)
