"""Garbage from the model never crashes a run: failures are recorded with reasons and the summary says
so. Fast: a scripted model that answers half the requests with hostile junk (deep nesting, lone
surrogates, NULs, huge or empty text, wrong JSON types), through the real CLI. Slow: a tiny randomly
initialised Llama built here with transformers (its output is noise), through `topictree run`."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from fake_engine import FakeEngine, request_kind
from fake_model import FakeModel

from topictree_hf.cli import main
from topictree_hf.config import Config, TreeConfig
from topictree_hf.engines import ChatRequest, registry
from topictree_hf.journal import read_jsonl
from topictree_hf.pipeline import generate_stage
from topictree_hf.records import REJECTION_REASONS, Sample
from topictree_hf.rundir import RunDir
from topictree_hf.tree.builder import TreeBuilder
from topictree_hf.tree.model import TopicTree

DEEP = "[" * 3000
TREE_JUNK = [
    "", "   ", "null", "[]", "{}", '{"subtopics": null}', '{"subtopics": "Roman Empire"}',
    '{"subtopics": [1, 2.5, true, null, {"a": 1}, ["x"]]}', '{"subtopics": ["' + "x" * 5000 + '"]}', DEEP,
    '{"subtopics": ' + DEEP, '{"a":' * 3000, "\x00\x1b[31m{}\ud800",
    '{"subtopics": ["Roman \\ud800 Empire", "Ancient\\u0000Egypt", "Nubian Gold Trade"]}',
    '{"subtopics": ["{{ x }}", "<|im_end|>", "1. **Coptic Music**"]}', '\ufeff{"subtopics": ["Byzantine Art"]}',
    '{"subtopics": ["' + "Word " * 40 + '"]}', "{" * 10 + "}" * 10, '{"subtopics": [' + '"Same Thing",' * 50 + '"x"]}',
]
SAMPLE_JUNK = [
    "", "\n\n", "null", "[1,2]", '{"question": null, "answer": 5}', '{"question": ["a"], "answer": {"b": 1}}',
    '{"turns": "hello"}', '{"turns": [1, 2]}', '{"turns": [{"user": null}]}', DEEP, '{"a":' * 3000, "x" * 200_000,
    '{"question": "What is \\ud800 here, then?", "answer": "A lone surrogate \\udfff appears."}',
    '{"question": "What is \x00 NUL here?", "answer": "Control \x1b[31m chars are here."}',
    " Question: Answer: Question: Answer:", " \ud800\udc00 Answer: \udfff text here \ud800",
    '{"task": "Do a thing now.", "language": "' + "p" * 100 + '", "solution": "```\\n```"}',
    '{"instruction": "Summarize the text.", "input": 7, "output": "Summary text here."}',
    " What?\nAnswer: " + "\u202e" * 20, "```python\n" + "(" * 5000, "\r\n" * 1000,
]


@pytest.mark.parametrize("junk", TREE_JUNK, ids=range(len(TREE_JUNK)))
def test_each_junk_answer_to_a_tree_request(junk: str, tmp_path: Path) -> None:
    journal_path = tmp_path / "tree.jsonl"
    tree = TreeBuilder(FakeEngine(lambda req: junk), TreeConfig(depth=2, degree=3, max_reasks=1),
                       journal=journal_path).build("Ancient Egypt")
    replayed = TreeBuilder(FakeEngine(lambda req: "unused"), TreeConfig(depth=2, degree=3),
                           journal=journal_path)._replay("Ancient Egypt")
    assert replayed.nodes.keys() == tree.nodes.keys()
    short = {f.node for f in tree.failures}
    for node in tree.nodes.values():  # every node that stopped early says why
        if node.depth < 2 and len(tree.children[node.id]) < 3:
            assert node.id in short
    assert all(f.reason for f in tree.failures)
    tree.save(tmp_path / "topic_tree.json")
    journal_path.read_bytes().decode("utf-8")


@pytest.mark.parametrize("mode", ["json", "text"])
@pytest.mark.parametrize("junk", SAMPLE_JUNK, ids=range(len(SAMPLE_JUNK)))
def test_each_junk_answer_to_a_sample_request(junk: str, mode: str, tmp_path: Path) -> None:
    config = Config(generation={"num_samples": 4, "formats": ["qa", "chat", "instruction", "code"], "mode": mode})
    tree = TopicTree.new("Ancient Egypt")
    tree.add_child(tree.root_id, "Nile Floods")
    run = RunDir(tmp_path)
    summary = generate_stage(config, FakeEngine(lambda req: junk), run, tree)
    records = list(run.iter_samples()) + list(run.iter_failures())
    assert summary.valid + summary.failed == len(records) >= 4  # failures are topped up within the budget
    assert summary.requests <= summary.budget == 12
    assert all(f.reason in REJECTION_REASONS for f in run.iter_failures())
    for shard in (run.sample_shard(0), run.failures):
        shard.read_bytes().decode("utf-8")  # strict UTF-8: no surrogate got through
    for record in read_jsonl(run.sample_shard(0)):
        Sample.from_json(record).to_row()


def hostile(seed: int, junk_share: float) -> Callable[[ChatRequest], str]:
    good = FakeModel()

    def respond(req: ChatRequest) -> str:
        rng = random.Random(f"{seed}|{req.sampling.seed}")
        if rng.random() < junk_share:
            return rng.choice(TREE_JUNK if request_kind(req) == "subtopics" else SAMPLE_JUNK)
        return good(req)

    return respond


def write_config(tmp: Path, mode: str, samples: int = 60) -> Path:
    config = tmp / "c.yaml"
    config.write_text(f"root: Ancient Egypt\ntree: {{depth: 2, degree: 3}}\n"
                      f"generation: {{num_samples: {samples}, formats: [qa, chat, instruction, code], mode: {mode}}}\n"
                      "engine: {backend: fake, batch_size: 8}\n")
    return config


def journal(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()] if path.exists() else []


@pytest.mark.parametrize("mode", ["json", "text"])
def test_hostile_answers_never_crash_a_run(mode: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setitem(registry._REGISTRY, "fake", lambda cfg: FakeEngine(hostile(7, 0.5)))
    run, ds = tmp_path / "run", tmp_path / "ds"
    code = main(["run", str(write_config(tmp_path, mode)), "--run-dir", str(run), "--out", str(ds)])
    err = capsys.readouterr().err
    assert code == 0, err
    assert "internal error" not in err and "Traceback" not in err

    samples, failures = journal(run / "samples-00000.jsonl"), journal(run / "failures.jsonl")
    ids = [r["id"] for r in samples + failures]
    assert len(ids) == len(set(ids)) >= 60, "every requested sample (and top-up) ends valid or failed, once"
    assert samples and failures
    assert all(f["reason"] and f["detail"] for f in failures), "every failure says why"
    tree = json.loads((run / "topic_tree.json").read_text())
    assert all(f["reason"] for f in tree["failures"])
    summary = json.loads((run / "summary.json").read_text())["generation"]
    assert (summary["valid"], summary["failed"]) == (len(samples), len(failures))
    assert summary["delivered"] == len(samples) and summary["requests"] <= summary["budget"] + 8
    assert f"{len(failures)} failed" in err and "failed for good" in err and "failures.jsonl" in err
    assert f"{len(samples)} rows" in err  # the dataset holds exactly the valid samples
    for record in samples:  # what was kept is clean text
        text = json.dumps(record["messages"], ensure_ascii=False)
        text.encode("utf-8")
        assert len(record["messages"]) >= 2


def test_no_valid_sample_ends_with_one_line_and_keeps_everything(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    good = FakeModel()

    def respond(req: ChatRequest) -> str:  # a fine tree, then nothing usable
        return good(req) if request_kind(req) == "subtopics" else "I cannot help with that."

    monkeypatch.setitem(registry._REGISTRY, "fake", lambda cfg: FakeEngine(respond))
    run, ds = tmp_path / "run", tmp_path / "ds"
    code = main(["run", str(write_config(tmp_path, "json", samples=6)), "--run-dir", str(run), "--out", str(ds)])
    err = capsys.readouterr().err
    assert code == 2, err
    errors = [line for line in err.splitlines() if "error:" in line]
    # 6 asked, 2 requests each (max_retries 1), then 6 top-ups until the budget (3 x 6 requests) is spent
    assert errors == [f"topictree run: error: no valid samples: all 12 failed after retries (unparseable 12; details "
                      f"in {run / 'failures.jsonl'}); the model's output never fit the format: try a stronger --model "
                      "or a higher generation.max_tokens, in a new --run-dir"]
    assert "Traceback" not in err
    assert len(journal(run / "failures.jsonl")) == 12 and (run / "topic_tree.json").is_file()
    assert not ds.exists() and not [p for p in tmp_path.iterdir() if p.name.startswith(".ds.")]


def tiny_random_model(folder: Path) -> Path:
    """A 2-layer Llama with random weights and the bundled model's tokenizer: fluent in nothing."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    from topictree_hf.engines.models import converted_gguf, resolve_model

    source = resolve_model("bundled:smollm2-135m-instruct")
    cached = converted_gguf(source)
    tokenizer = (AutoTokenizer.from_pretrained(cached) if cached is not None else
                 AutoTokenizer.from_pretrained(source.path, gguf_file=source.gguf_file))
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=2048,
                         bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id)
    LlamaForCausalLM(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.mark.slow
def test_random_model_run_records_every_failure(tmp_path: Path) -> None:
    model = tiny_random_model(tmp_path / "random-llama")
    config = tmp_path / "c.yaml"
    config.write_text("root: Ancient Egypt\ntree: {depth: 1, degree: 2, max_tokens: 24, max_reasks: 1}\n"
                      "generation: {num_samples: 4, formats: [qa, chat], max_tokens: 12}\n"
                      "engine: {backend: transformers, batch_size: 8}\n")
    run = tmp_path / "run"
    env = {**os.environ, "TOPICTREE_NO_PROGRESS": "1"}
    done = subprocess.run([sys.executable, "-m", "topictree_hf", "run", str(config), "--model", str(model),
                           "--run-dir", str(run)], env=env, capture_output=True, text=True, timeout=600)
    err = done.stderr
    assert "Traceback" not in err and "internal error" not in err, err

    tree = json.loads((run / "topic_tree.json").read_text())
    assert all(f["reason"] for f in tree["failures"]), "a node that fell short says why"
    samples, failures = journal(run / "samples-00000.jsonl"), journal(run / "failures.jsonl")
    ids = [r["id"] for r in samples + failures]
    summary = json.loads((run / "summary.json").read_text())["generation"]
    assert len(ids) == len(set(ids)) >= 4 == summary["asked"]  # the 4 allocated, then top-ups (each id once)
    assert failures and all(f["reason"] for f in failures)
    assert (summary["valid"], summary["failed"]) == (len(samples), len(failures))
    assert summary["delivered"] == len(samples) and summary["requests"] <= summary["budget"] + 8
    assert "failed for good" in err and f"{len(failures)} failed" in err
    if samples:  # noise that happened to fit the layout: the run completes with a dataset
        assert done.returncode == 0, err
        assert (run / "dataset" / "README.md").is_file()
    else:  # the expected outcome: one clear line, exit 2, the run dir kept whole
        assert done.returncode == 2, err
        errors = [line for line in err.splitlines() if "error:" in line]
        assert len(errors) == 1 and "no valid samples" in errors[0] and "failures.jsonl" in errors[0], err
        assert not (run / "dataset").exists()
