"""Word-level normalisation shared by the sample judge and tree hygiene.

Both ask "do these two short texts say the same thing?" cheaply, without a model: lower-case words,
stop words dropped, a crude singular. Kept in one place so that the tree and the sample checks agree
on what counts as "the same word".
"""

from __future__ import annotations

import re

_WORD = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")

# Function words that carry no topic: question words, articles, auxiliaries, prepositions.
STOP_WORDS = frozenset("""
a an the and or of in on at to for from by with about as into onto within without between among through
over under than then so such this that these those it its it's is are was were be been being am do does did
has have had can could will would should shall may might must not no nor
what which who whom whose when where why how whats
i me my we our us you your yours he him his she her they them their
there here also very just some any each every all both other others more most many much
one s
""".split())

_IRREGULAR = {"children": "child", "people": "person", "women": "woman", "men": "man", "feet": "foot",
              "teeth": "tooth", "mice": "mouse", "geese": "goose", "cacti": "cactus", "fungi": "fungus"}
_KEEP_S = ("ss", "us", "is", "ics", "sis")  # class, virus, analysis, physics, economics


def singular(word: str) -> str:
    """A crude singular: 'heritages' -> 'heritage', 'cities' -> 'city', 'dishes' -> 'dish'.

    Wrong for some words ('news' stays 'news', 'series' stays), but the same on both sides of a
    comparison, which is all dedup needs."""
    if word in _IRREGULAR:
        return _IRREGULAR[word]
    if len(word) <= 3 or not word.endswith("s") or word.endswith(_KEEP_S):
        return word
    if word.endswith("ies") and len(word) > 4:
        return word[:-3] + "y"
    if word.endswith(("ches", "shes", "xes", "zes", "sses")):
        return word[:-2]
    return word[:-1]


def words(text: str) -> list[str]:
    """Lower-case words and numbers; a possessive "'s" and other clitics are dropped
    ("Australia's" -> "australia", "you'll" -> "you"), a negation is kept ("don't")."""
    out = []
    for w in _WORD.findall(text.lower().replace("\u2019", "'")):
        if "'" in w and not w.endswith("'t"):
            w = w.split("'")[0]
        out.append(w)
    return out


def content_words(text: str) -> list[str]:
    """Words that carry meaning, singular, in order: 'What are the Cultural Heritages?' -> ['cultural', 'heritage']."""
    return [singular(w) for w in words(text) if w not in STOP_WORDS]
