"""Constructed sample sets whose diversity is known in advance, for tests and scripts/bench_eval.py
(test support; the package never imports it).

- `tree_records`: samples spread over a 12-leaf tree, each a question about its leaf and a few facts
  drawn from that leaf's own bank, in random order, with random names and years: varied text.
- `templated_records`: what naive prompting collapses to, a handful of texts about the root with a
  word or two swapped: near-copies.
- `garbage_records`: word salad, "diverse" by every lexical measure and about nothing.

Records are `Sample.to_json()` journal lines (`id`, `topic_path`, `leaf`, `messages`, ...).
Deterministic for a given seed. `write_run_dir` and `write_dataset_folder` lay them out on disk the
way a run and a build do (journals; data/{split}-NNNNN-of-NNNNN.parquet and a card with the
diversity markers).
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from topictree_hf.journal import Journal
from topictree_hf.records import Sample, sample_id
from topictree_hf.tree.model import TopicTree, node_id

ROOT = "Science and Everyday Life"
FACTS: dict[str, dict[str, list[str]]] = {
    "Astronomy": {
        "Black Holes": [
            "A black hole forms when a massive star collapses under its own gravity.",
            "Nothing, not even light, escapes from inside the event horizon.",
            "The first image of a black hole shadow was taken by the Event Horizon Telescope.",
            "Matter spiralling into an accretion disk heats up and glows in X-rays.",
            "Supermassive black holes sit at the centres of most large galaxies.",
            "Hawking radiation predicts that black holes slowly evaporate over immense times.",
        ],
        "Exoplanets": [
            "Most exoplanets are found by the transit method, a dip in starlight as a planet passes.",
            "The radial velocity method measures the wobble a planet induces in its star.",
            "Hot Jupiters are gas giants orbiting very close to their stars.",
            "The habitable zone is the range of orbits where liquid water could exist.",
            "Thousands of planets were catalogued by the Kepler space telescope.",
            "Spectra of transiting planets reveal molecules in their atmospheres.",
        ],
        "The Moon": [
            "The Moon is slowly drifting away from Earth by a few centimetres each year.",
            "Tides are raised mainly by the Moon's gravitational pull on the oceans.",
            "The same lunar face always points to Earth because of tidal locking.",
            "Dark lunar maria are ancient basalt plains from volcanic eruptions.",
            "A lunar eclipse happens when Earth's shadow falls across the full Moon.",
            "Apollo astronauts brought back hundreds of kilograms of lunar rock.",
        ],
    },
    "Cooking": {
        "Bread Baking": [
            "Kneading develops gluten, the protein network that traps gas in dough.",
            "Yeast ferments sugars and releases carbon dioxide that makes bread rise.",
            "A hot oven with steam gives a crisp, shiny crust.",
            "Proofing too long makes dough collapse in the oven.",
            "Whole wheat flour absorbs more water than white flour.",
            "An internal temperature near ninety-five degrees Celsius means the loaf is baked.",
        ],
        "Fermentation": [
            "Lactic acid bacteria turn cabbage into sauerkraut by souring it.",
            "Salt in a brine keeps spoilage microbes at bay while good bacteria grow.",
            "Kombucha is sweet tea fermented by a colony of bacteria and yeast.",
            "Miso is made by fermenting soybeans with koji mould for months.",
            "Yogurt cultures thicken milk by producing acid that sets the proteins.",
            "A sour smell and bubbles are signs that fermentation is active.",
        ],
        "Knife Skills": [
            "A sharp knife is safer because it needs less force and slips less.",
            "The claw grip keeps fingertips tucked away from the blade.",
            "A honing steel realigns the edge while a whetstone removes metal.",
            "Julienne means cutting vegetables into thin matchsticks.",
            "Rocking the chef's knife on its curved belly speeds up chopping herbs.",
            "A wooden or plastic board protects the edge better than glass.",
        ],
    },
    "Computing": {
        "Sorting Algorithms": [
            "Quicksort partitions around a pivot and averages n log n comparisons.",
            "Merge sort splits the list, sorts the halves and merges them in linear time.",
            "Insertion sort is fast on small or nearly sorted arrays.",
            "A stable sort keeps equal keys in their original order.",
            "Heapsort builds a binary heap and sorts in place without extra memory.",
            "Radix sort orders integers digit by digit without comparing them.",
        ],
        "Computer Networks": [
            "TCP retransmits lost packets and delivers bytes in order.",
            "DNS translates human-readable domain names into IP addresses.",
            "Routers forward packets between networks using routing tables.",
            "Latency is the delay of one message while bandwidth is the rate of data.",
            "TLS encrypts traffic so that eavesdroppers cannot read it.",
            "UDP sends datagrams without handshakes, useful for live video and games.",
        ],
        "Databases": [
            "An index lets a database find rows without scanning the whole table.",
            "Transactions are atomic: either every change is applied or none is.",
            "Normalization removes redundant copies of data across tables.",
            "A join combines rows from two tables on a matching key.",
            "Write-ahead logging lets a database recover after a crash.",
            "Key-value stores trade query flexibility for speed and scale.",
        ],
    },
    "History": {
        "Roman Empire": [
            "Augustus became the first Roman emperor after the civil wars.",
            "Roman roads connected provinces from Britain to Syria.",
            "Aqueducts carried fresh water into Roman cities over long distances.",
            "The legions were professional soldiers who served for about twenty-five years.",
            "Latin spread across the western provinces and later gave rise to the Romance languages.",
            "The western empire ended in 476 when the last emperor was deposed.",
        ],
        "Industrial Revolution": [
            "Steam engines powered factories, mines and later railways.",
            "Textile mills mechanised spinning and weaving in northern England.",
            "Workers moved from farms to fast-growing industrial towns.",
            "Child labour in factories led to the first labour laws.",
            "Railways cut travel times and created national markets.",
            "Coal and iron production rose sharply during the nineteenth century.",
        ],
        "Space Race": [
            "Sputnik, launched in 1957, was the first artificial satellite.",
            "Yuri Gagarin became the first human to orbit Earth in 1961.",
            "Apollo 11 landed Neil Armstrong and Buzz Aldrin on the Moon in 1969.",
            "The rivalry between the superpowers drove huge spending on rockets.",
            "The Saturn V remains one of the most powerful rockets ever flown.",
            "The Apollo-Soyuz docking in 1975 symbolised a thaw in the rivalry.",
        ],
    },
}
QUESTIONS = (
    "What should a beginner know about {leaf}?", "Can you explain a key idea of {leaf}?",
    "Why does {leaf} matter?", "What is a common misconception about {leaf}?",
    "How would you summarise {leaf} for a student?", "Which facts about {leaf} surprise people?",
)
NAMES = ("Ada", "Bruno", "Chen", "Dalia", "Emeka", "Farah", "Goran", "Hana", "Ivo", "Jun", "Kofi", "Lena")
TEMPLATE_TEXTS = (
    "{root} is a fascinating subject that covers many different areas. People study it to learn more about "
    "the world around them and to understand how things work in their daily life.",
    "There are many interesting things about {root}. It helps us understand the world, and learning about "
    "it can be useful and fun for people of all ages and backgrounds.",
    "{root} is important because it explains many things we see every day. Studying it helps people make "
    "better decisions and appreciate the world around them.",
)
SWAPS = (("fascinating", "interesting"), ("many", "several"), ("people", "everyone"), ("world", "universe"),
         ("useful", "helpful"), ("important", "essential"))
SALAD = ("blue seven under quickly lamp orbit soft paper nine river jump velvet sugar north glass tiny "
         "engine whisper copper cloud eleven silent bridge orange thunder pocket maple sphere rapid "
         "lantern frozen marble zebra canyon humble violin ember quartz tunnel meadow sketch").split()


def leaf_paths() -> list[list[str]]:
    return [[ROOT, branch, leaf] for branch, leaves in FACTS.items() for leaf in leaves]


def topic_tree() -> TopicTree:
    """The 12-leaf tree the constructed samples hang from."""
    tree = TopicTree.new(ROOT)
    for branch, leaves in FACTS.items():
        node = tree.add_child(tree.root_id, branch)
        for leaf in leaves:
            tree.add_child(node.id, leaf)
    return tree


SEEDS = {"tree": 0, "templated": 1, "garbage": 2}  # one id seed per constructed set: their ids never collide


def record(path: list[str], user: str, assistant: str, index: int, tag: str) -> dict[str, Any]:
    leaf_id = node_id(path)
    seed = SEEDS.get(tag, sum(map(ord, tag)))
    return Sample(id=sample_id(seed, leaf_id, "qa", index), topic_path=list(path), leaf_id=leaf_id, leaf=path[-1],
                  depth=len(path) - 1, format="qa",
                  messages=[{"role": "system", "content": "You write training data."},
                            {"role": "user", "content": user}, {"role": "assistant", "content": assistant}]).to_json()


def tree_records(samples_per_leaf: int = 5, seed: int = 0) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    out = []
    for path in leaf_paths():
        facts = FACTS[path[1]][path[2]]
        for i in range(samples_per_leaf):
            chosen = rng.sample(facts, rng.randint(2, 4))
            note = f"{rng.choice(NAMES)} noted this in {rng.randint(1800, 2025)}."
            answer = " ".join([*chosen[:1], note, *chosen[1:]])
            out.append(record(path, rng.choice(QUESTIONS).format(leaf=path[-1]), answer, i, "tree"))
    return out


def templated_records(n: int = 60, seed: int = 0, root: str = ROOT) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        text = rng.choice(TEMPLATE_TEXTS).format(root=root)
        for old, new in rng.sample(SWAPS, rng.randint(0, 1)):
            text = text.replace(old, new, 1)
        out.append(record([root], f"Tell me about {root}.", text, i, "templated"))
    return out


def garbage_records(n: int = 60, seed: int = 0) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    paths = leaf_paths()
    return [record(paths[i % len(paths)], " ".join(rng.choices(SALAD, k=6)), " ".join(rng.choices(SALAD, k=40)),
                   i, "garbage") for i in range(n)]


CARD = """---
license: apache-2.0
---
# A constructed set

## Diversity

<!-- topictree:diversity:start -->
Not measured yet: run `topictree eval DIR`.
<!-- topictree:diversity:end -->

## Example record
"""


def write_run_dir(path: Path, records: Sequence[dict[str, Any]], failures: Sequence[dict[str, Any]] = (),
                  tree: bool = True) -> Path:
    """Journals as a run writes them (two shards), failures.jsonl, and the tree file."""
    half = len(records) // 2
    for shard, part in enumerate((records[:half], records[half:])):
        with Journal(path / f"samples-{shard:05d}.jsonl") as journal:
            journal.write_batch(part)
    if failures:
        with Journal(path / "failures.jsonl") as journal:
            journal.write_batch(failures)
    if tree:
        topic_tree().save(path / "topic_tree.json")
    return path


def write_dataset_folder(path: Path, records: Sequence[dict[str, Any]], card: str | None = CARD) -> Path:
    """data/train- and data/test-00000-of-00001.parquet (3:1), README.md card, topic_tree.json."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    (path / "data").mkdir(parents=True)
    columns = ("id", "topic_path", "leaf", "depth", "format", "messages")
    rows = [{k: r[k] for k in columns} for r in records]
    split = len(rows) * 3 // 4
    for name, part in (("train", rows[:split]), ("test", rows[split:])):
        pq.write_table(pa.Table.from_pylist(part), path / "data" / f"{name}-00000-of-00001.parquet")
    if card is not None:
        (path / "README.md").write_text(card, encoding="utf-8")
    topic_tree().save(path / "topic_tree.json")
    return path
