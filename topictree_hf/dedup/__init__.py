"""De-duplication of generated samples, behind one interface (`Deduper.check_and_add`).

    none      NoDeduper            keeps everything (the naive baseline)
    exact     ExactDeduper         equal after `normalize_text` (case, whitespace, punctuation)
    near      NearDeduper          exact, then MinHash near-duplicates (word 5-grams, LSH)
    semantic  NearDeduper          exact, MinHash, then embedding cosine with the kept texts of the
                                   same branch (the generator's: the topic path's depth-1 branch)

Modules: text (the one normalisation), base (the interface, branches), exact, minhash (signatures,
LSH index), semantic (kept vectors per branch), near (`NearDuplicateFilter`, the streaming filter
eval's tools also use).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from topictree_hf.dedup.base import Deduper, KeptText
from topictree_hf.dedup.exact import ExactDeduper, NoDeduper
from topictree_hf.dedup.near import NearDeduper, NearDuplicateFilter
from topictree_hf.dedup.text import normalize_text, snippet, text_key

if TYPE_CHECKING:
    from topictree_hf.config import GenerationConfig

__all__ = ["Deduper", "ExactDeduper", "KeptText", "NearDeduper", "NearDuplicateFilter", "NoDeduper", "make_deduper",
           "normalize_text", "snippet", "text_key"]


def make_deduper(gen: GenerationConfig) -> Deduper:
    """The deduper `generation.dedup` names."""
    if gen.dedup == "none":
        return NoDeduper()
    if gen.dedup == "exact":
        return ExactDeduper()
    semantic = gen.semantic_dup_threshold if gen.dedup == "semantic" else None
    return NearDeduper(gen.near_dup_threshold, semantic_threshold=semantic)
