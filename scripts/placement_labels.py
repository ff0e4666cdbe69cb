"""The placement check (tree/placement.py) against hand-labelled parent -> child edges.

    python scripts/placement_labels.py extract runs/a runs/b > edges.jsonl   # every proposed child, unlabelled
    python scripts/placement_labels.py measure                               # tests/data/placement_labels.jsonl
    python scripts/placement_labels.py measure --show                        # and every miss and false alarm

`extract` reads the tree journals (tree.jsonl: the children kept and, since issue 22, every refused
proposal with its reason) of runs built by `topictree tree` and writes one line per distinct
parent -> child edge: the path (root .. parent), the parent's siblings, and what the builder did
with it (`seen`). Proposals refused for their form (not JSON, too long, placeholder) or for being
the parent again are left out. A person then fills `label`:

- ok: a part, sub-kind, aspect or example of the parent, on the root's subject;
- peer: another instance of the parent's kind ("Chinese Cuisine" under "Indian Cuisine"), or of
  the kind of a topic above it ("Tennis" under "Sports > Rugby");
- off: leaves the root's subject ("Kenyan Carnage" under "World Cuisine > Africa > Kenya");
- other: wrong in another way (nonsense, a near-copy of the parent, belongs under a sibling):
  counted apart, neither a hit nor a false alarm.

`measure` scores every labelled edge with the placement check (the bundled MiniLM) and prints
precision and recall of "flagged" against "peer or off", per root and in all, for every edge and
for the edges the check meets in a build (those the word checks let through: `seen` is
"accepted", "drift" or "near-synonym").
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from collections.abc import Iterable, Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LABELS = ROOT / "tests" / "data" / "placement_labels.jsonl"
POSITIVE = ("peer", "off")
# builder verdicts that mean the placement check would see the edge in a build
SEEN_BY_CHECK = ("accepted", "drift", "near-synonym", "placement")
_FORM = ("not JSON", "truncated", "length", "more than", "repeated word", "placeholder", "empty",
         "same as parent or ancestor", "same as ancestor", "duplicate sibling")


def extract(run_dirs: Sequence[Path]) -> Iterable[dict]:
    sys.path.insert(0, str(ROOT))
    from topictree_hf.journal import read_jsonl
    from topictree_hf.tree.hygiene import topic_key
    from topictree_hf.tree.model import TopicTree

    seen: set[tuple[str, ...]] = set()
    for run in run_dirs:
        tree = TopicTree.load(run / "topic_tree.json")
        for record in read_jsonl(run / "tree.jsonl"):
            proposals = [(c["parent"], c["topic"], "accepted") for c in record["children"]]
            proposals += [(r["parent"], r["topic"], r["reason"].split(":", 1)[0])
                          for r in record.get("rejected", []) if not r["reason"].startswith(_FORM)]
            for parent, child, verdict in proposals:
                if parent not in tree.nodes:
                    continue
                path = tree.path(parent)
                key = (*path, topic_key(child))
                if key in seen:
                    continue
                seen.add(key)
                grand = tree.nodes[parent].parent
                siblings = [tree.nodes[c].topic for c in tree.children[grand] if c != parent] if grand else []
                yield {"root": path[0], "path": path, "parent_siblings": siblings, "child": child, "seen": verdict,
                       "source": run.name, "label": None}


def read_labels(path: Path = LABELS) -> list[dict]:
    return [row for line in path.read_text(encoding="utf-8").splitlines()
            if line.strip() and (row := json.loads(line)).get("label")]


def score(rows: Sequence[dict]) -> list[str | None]:
    """The placement check's reason for every row (None: passes)."""
    sys.path.insert(0, str(ROOT))
    from topictree_hf.tree.placement import PlacementChecker

    checker = PlacementChecker.shared()
    return [s.reason for s in checker.score_level([(r["child"], r["path"], r["parent_siblings"]) for r in rows])]


def precision_recall(rows: Sequence[dict], reasons: Sequence[str | None]) -> dict:
    tp = fp = fn = tn = 0
    for row, reason in zip(rows, reasons, strict=True):
        if row["label"] == "other":
            continue
        positive = row["label"] in POSITIVE
        flagged = reason is not None
        tp += positive and flagged
        fp += flagged and not positive
        fn += positive and not flagged
        tn += not positive and not flagged
    return {"edges": tp + fp + fn + tn, "positives": tp + fn, "flagged": tp + fp, "tp": tp, "fp": fp, "fn": fn,
            "precision": tp / (tp + fp) if tp + fp else 1.0, "recall": tp / (tp + fn) if tp + fn else 1.0}


def report(rows: Sequence[dict], reasons: Sequence[str | None], show: bool) -> None:
    groups: dict[str, list[int]] = defaultdict(list)
    for i, row in enumerate(rows):
        groups[row["root"]].append(i)
    print(f"{'root':22} {'set':5} {'edges':>5} {'ok':>4} {'peer':>4} {'off':>4} {'other':>5} "
          f"{'flag':>4} {'tp':>3} {'fp':>3} {'fn':>3} {'prec':>5} {'rec':>5}")
    for name, idx in [*sorted(groups.items()), ("ALL", list(range(len(rows))))]:
        for subset in ("all", "seen"):
            keep = [i for i in idx if subset == "all" or rows[i]["seen"] in SEEN_BY_CHECK]
            sub, why = [rows[i] for i in keep], [reasons[i] for i in keep]
            m = precision_recall(sub, why)
            count = {lab: sum(r["label"] == lab for r in sub) for lab in ("ok", "peer", "off", "other")}
            print(f"{name[:22]:22} {subset:5} {len(sub):5} {count['ok']:4} {count['peer']:4} {count['off']:4} "
                  f"{count['other']:5} {m['flagged']:4} {m['tp']:3} {m['fp']:3} {m['fn']:3} "
                  f"{m['precision']:5.2f} {m['recall']:5.2f}")
    if show:
        for row, reason in zip(rows, reasons, strict=True):
            positive = row["label"] in POSITIVE
            if row["label"] != "other" and positive != (reason is not None):
                kind = "MISS " if positive else "FALSE"
                print(f"{kind} [{row['label']}] {' > '.join(row['path'])} :: {row['child']}  -- {reason}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="cmd", required=True)
    ext = sub.add_parser("extract", help="every proposed edge of these runs, unlabelled, as JSONL on stdout")
    ext.add_argument("runs", nargs="+", type=Path)
    mes = sub.add_parser("measure", help="precision and recall of the placement check on labelled edges")
    mes.add_argument("--labels", type=Path, default=LABELS)
    mes.add_argument("--show", action="store_true", help="print every miss and false alarm")
    args = parser.parse_args(argv)
    if args.cmd == "extract":
        for row in extract(args.runs):
            print(json.dumps(row, ensure_ascii=False))
        return 0
    rows = read_labels(args.labels)
    report(rows, score(rows), args.show)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
