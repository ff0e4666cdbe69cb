"""The generator's size: counted as the model defines it (an output layer that a GGUF conversion
stored as a copy of the embeddings counts once), recorded by the generate stage in summary.json, and
stated by the card and the CLI's closing summary, with one line of warning under 1B parameters."""

from __future__ import annotations

import json
import struct
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from fake_engine import FakeEngine
from fake_model import FakeModel
from synthetic_run import make_synthetic_run

from topictree_hf.config import SMOLLM2
from topictree_hf.dataset import build_dataset
from topictree_hf.engines.parameters import count_parameters
from topictree_hf.generation.summary import SMALL_MODEL_NOTE, Summary, generator_text, size_text, small_model_note

QWEN05 = 494_032_768  # Qwen2.5-Coder-0.5B-Instruct, its output layer tied to the embeddings
NOTE_START = "facts in these samples are unchecked"


def write_safetensors(path: Path, tensors: dict[str, tuple[str, np.ndarray]]) -> None:
    """A safetensors file by hand (numpy has no bfloat16): {name: (dtype, float array)}."""
    header: dict[str, object] = {"__metadata__": {"format": "pt"}}
    blobs, offset = [], 0
    for name, (dtype, array) in tensors.items():
        if dtype == "BF16":
            raw = (array.astype(np.float32).view(np.uint32) >> 16).astype("<u2").tobytes()
        else:
            raw = array.astype({"F32": "<f4", "F16": "<f2"}[dtype]).tobytes()
        header[name] = {"dtype": dtype, "shape": list(array.shape), "data_offsets": [offset, offset + len(raw)]}
        blobs.append(raw)
        offset += len(raw)
    text = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(text)) + text + b"".join(blobs))


def converted_folder(tmp_path: Path, output: np.ndarray, dtype: str = "BF16") -> Path:
    """What a GGUF conversion with `output.weight` looks like: lm_head beside embed_tokens, untied."""
    rng = np.random.default_rng(0)
    folder = tmp_path / "converted"
    folder.mkdir(exist_ok=True)
    (folder / "config.json").write_text(json.dumps({"tie_word_embeddings": False}))
    write_safetensors(folder / "model.safetensors", {
        "model.embed_tokens.weight": (dtype, EMBEDDINGS), "lm_head.weight": (dtype, output),
        "model.layers.0.mlp.up_proj.weight": (dtype, rng.normal(size=(32, 16))),
        "model.norm.weight": (dtype, np.ones(16))})
    return folder


EMBEDDINGS = np.random.default_rng(1).normal(size=(200, 16)).astype(np.float32)
LAYERS = 32 * 16 + 16


def quantized(array: np.ndarray, step: float) -> np.ndarray:
    return np.round(array / step) * step


@pytest.mark.parametrize("dtype", ["BF16", "F16", "F32"])
def test_an_output_layer_stored_as_a_copy_of_the_embeddings_counts_once(tmp_path: Path, dtype: str) -> None:
    folder = converted_folder(tmp_path, quantized(EMBEDDINGS, 0.1), dtype)  # Q8-vs-Q5-like differences
    assert count_parameters(folder) == EMBEDDINGS.size + LAYERS


def test_an_output_layer_of_its_own_counts(tmp_path: Path) -> None:
    own = np.random.default_rng(2).normal(size=EMBEDDINGS.shape)
    assert count_parameters(converted_folder(tmp_path, own)) == 2 * EMBEDDINGS.size + LAYERS
    other_shape = np.random.default_rng(2).normal(size=(100, 16))
    assert count_parameters(converted_folder(tmp_path, other_shape)) == EMBEDDINGS.size + 100 * 16 + LAYERS
    assert count_parameters(tmp_path / "no-such-folder") is None and count_parameters(None) is None


def test_a_loaded_model_counts_the_same_as_its_headers(tmp_path: Path) -> None:
    """The transformers backend counts a GGUF it read directly in memory, by the same rule."""
    torch = pytest.importorskip("torch")
    from transformers import LlamaConfig, LlamaForCausalLM

    from topictree_hf.engines.transformers_engine import _count_loaded

    config = LlamaConfig(vocab_size=128, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                         num_attention_heads=2, num_key_value_heads=1, tie_word_embeddings=False)
    model = LlamaForCausalLM(config)
    stored = sum(p.numel() for p in model.parameters())
    embeddings = model.get_input_embeddings().weight
    assert _count_loaded(model) == stored, "an untied model's own output layer counts"
    with torch.no_grad():
        model.lm_head.weight.copy_(embeddings * (1 + 0.05 * torch.randn_like(embeddings)))  # ~5%: Q5 vs Q8
    assert _count_loaded(model) == stored - embeddings.numel()
    model.save_pretrained(tmp_path / "saved")  # as a conversion is cached: lm_head.weight stored apart
    assert count_parameters(tmp_path / "saved") == stored - embeddings.numel()


def test_size_text_and_the_note() -> None:
    assert [size_text(n) for n in (QWEN05, 134_515_008, 7_615_616_512, 70_553_706_496, 17_000_000, None)] == [
        "0.49B parameters", "0.13B parameters", "7.6B parameters", "71B parameters", "17M parameters", "size unknown"]
    assert generator_text({"Qwen2.5-Coder-0.5B-Instruct": QWEN05}, ["vllm"]) == \
        "Qwen2.5-Coder-0.5B-Instruct, 0.49B parameters, vllm"
    assert small_model_note({"m": QWEN05}) == SMALL_MODEL_NOTE and NOTE_START in SMALL_MODEL_NOTE
    assert "\n" not in SMALL_MODEL_NOTE and "7B+" in SMALL_MODEL_NOTE
    assert small_model_note({"m": 7_615_616_512}) is None and small_model_note({"m": None}) is None


def test_the_size_travels_in_the_summary_and_is_not_added_up() -> None:
    engine = FakeEngine(FakeModel(), model_name="m", parameter_count=QWEN05)
    total = Summary(asked=4)
    total.merge(Summary.of_stream(engine, "text"))
    total.merge(Summary.from_dict(Summary.of_stream(engine, "text").to_dict()))  # a Ray block's, through JSON
    assert total.model_parameters == {"m": QWEN05} and total.backends == Counter({"fake": 2})
    assert Summary.from_dict({"model_parameters": {"m": "big", "n": True}}).model_parameters == {"m": None, "n": None}


def card_of(tmp_path: Path, parameters: int | None, record: bool = True) -> str:
    run = make_synthetic_run(tmp_path / "run", depth=1, degree=2)
    if record:
        generation = Summary(model_parameters={SMOLLM2: parameters}, backends=Counter({"transformers": 1}))
        run.write_summary({"generation": generation.to_dict()})
    return (build_dataset(run.path, tmp_path / "ds").out / "README.md").read_text(encoding="utf-8")


def test_the_card_of_a_small_generator_says_its_size_and_one_line_of_warning(tmp_path: Path) -> None:
    text = card_of(tmp_path, 134_515_008)
    assert f"Generator: {SMOLLM2}, 0.13B parameters, transformers." in text
    assert "| model size | 0.13B parameters |" in text
    [line] = [line for line in text.splitlines() if NOTE_START in line]
    assert line.startswith("The generator has under 1B parameters") and "7B+" in line


def test_the_card_of_a_large_generator_says_its_size_only(tmp_path: Path) -> None:
    text = card_of(tmp_path, 7_615_616_512)
    assert f"Generator: {SMOLLM2}, 7.6B parameters, transformers." in text and NOTE_START not in text


@pytest.mark.parametrize("record", [True, False], ids=["backend-did-not-know", "older-summary"])
def test_the_card_of_a_generator_of_unknown_size_says_so(tmp_path: Path, record: bool) -> None:
    text = card_of(tmp_path, None, record)
    assert f"Generator: {SMOLLM2}, size unknown, transformers." in text and "| model size | size unknown |" in text
    assert NOTE_START not in text


@pytest.mark.parametrize("parameters", [QWEN05, None])
def test_the_cli_summary_and_the_card_say_the_same(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                   parameters: int | None) -> None:
    from topictree_hf.cli import main
    from topictree_hf.engines.registry import register_backend, restore_backend

    try:
        register_backend("fake-sized", lambda _cfg: FakeEngine(FakeModel(), parameter_count=parameters))
        args = ["run", "--backend", "fake-sized", "--depth", "1", "--degree", "2", "--samples", "4",
                "--run-dir", str(tmp_path / "r"), "--no-eval"]
        assert main(args) == 0
    finally:
        restore_backend("fake-sized", None)
    err = capsys.readouterr().err
    card = (tmp_path / "r" / "dataset" / "README.md").read_text(encoding="utf-8")
    size = "0.49B parameters" if parameters else "size unknown"
    assert f"generator: fake-model, {size}, fake\n" in err and f"Generator: fake-model, {size}, fake." in card
    assert err.count(NOTE_START) == card.count(NOTE_START) == (1 if parameters else 0)


@pytest.mark.slow
def test_the_bundled_qwen_counts_494m_not_630m() -> None:
    """Its GGUF stores `output.weight` apart (Q8_0 beside a Q5_0 `token_embd.weight`), so the cached
    conversion has lm_head.weight and `tie_word_embeddings: false`; Qwen2.5-0.5B has 494M parameters."""
    from topictree_hf.engines.models import gguf_as_folder, resolve_model

    folder = gguf_as_folder(resolve_model("bundled:qwen2.5-coder-0.5b-instruct"))  # the cached copy, else made now
    assert folder is not None and json.loads((folder / "config.json").read_text())["tie_word_embeddings"] is False
    assert count_parameters(folder) == QWEN05
