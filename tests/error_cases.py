"""Bad inputs and the one-line message each gets (exit code 2, no traceback). Shared by
tests/test_errors.py (one test per row) and scripts/errors_doc.py (which writes docs/errors.md)."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Case:
    name: str
    area: str
    argv: list[str]  # "{tmp}" is replaced by a fresh folder
    expect: str  # a substring of the message
    setup: Callable[[Path], None] | None = None
    hide: tuple[str, ...] = ()  # modules made unimportable for the case (installed here, absent for a user)


def _write(name: str, text: str) -> Callable[[Path], None]:
    def setup(tmp: Path) -> None:
        (tmp / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp / name).write_text(text)

    return setup


def _run_dir(manifest: dict | None = None, tree: bool = True, journal: str | None = None,
             config: dict | None = None) -> Callable[[Path], None]:
    def setup(tmp: Path) -> None:
        from topictree_hf.config import Config
        from topictree_hf.rundir import RunDir
        from topictree_hf.tree.model import TopicTree

        run = RunDir(tmp / "run")
        run.prepare(Config(**(config or {})))
        t = TopicTree.new("Historical Events")
        t.add_child(t.root_id, "Roman Empire")
        if tree:
            t.save(run.tree_file)
            run.tree_journal.write_text("")
        if manifest is not None:
            data = json.loads(run.manifest.read_text())
            data.update(manifest)
            run.manifest.write_text(json.dumps(data))
        if journal is not None:
            run.sample_shard(0).write_text(journal)

    return setup


def _all_failed(tmp: Path) -> None:
    """A run dir whose model never produced a valid sample: every one is in failures.jsonl."""
    _run_dir()(tmp)
    run = tmp / "run"
    run.joinpath("samples-00000.jsonl").write_text("")
    failure = {"path": ["Historical Events", "Roman Empire"], "format": "qa", "reason": "truncated",
               "detail": "truncated", "raw": "qz vb", "attempt": 1}
    run.joinpath("failures.jsonl").write_text("".join(json.dumps({"id": f"s{i}", **failure}) + "\n" for i in range(3)))


def _built(tmp: Path) -> None:
    from synthetic_run import make_synthetic_run

    from topictree_hf.dataset import build_dataset

    make_synthetic_run(tmp / "run", depth=1, degree=2, samples_per_leaf=1)
    build_dataset(tmp / "run", tmp / "ds")


CASES = [
    Case("unknown config key", "config", ["tree", "{tmp}/c.yaml"], "unknown config key 'tree.dpth'",
         _write("c.yaml", "tree: {dpth: 2}\n")),
    Case("wrong type in config", "config", ["tree", "{tmp}/c.yaml"], "config tree.depth",
         _write("c.yaml", "tree: {depth: deep}\n")),
    Case("degree below 1 in config", "config", ["tree", "{tmp}/c.yaml"], "greater than or equal to 1",
         _write("c.yaml", "tree: {degree: 0}\n")),
    Case("config file missing", "config", ["run", "{tmp}/missing.yaml"], "topictree init"),
    Case("config not valid YAML", "config", ["run", "{tmp}/c.yaml"], "not valid YAML",
         _write("c.yaml", "root: [unclosed\n")),
    Case("config is a list", "config", ["run", "{tmp}/c.yaml"], "must hold a mapping", _write("c.yaml", "- a\n- b\n")),
    Case("unknown format in config", "config", ["run", "{tmp}/c.yaml"], "unknown format 'poem'",
         _write("c.yaml", "generation: {formats: [poem]}\n")),
    Case("custom format without its block", "config", ["run", "--format", "custom"], "needs a generation.custom"),
    Case("openai backend without URL", "config", ["run", "--backend", "openai"], "--base-url"),
    Case("malformed base URL", "config", ["run", "--backend", "openai", "--base-url", "localhost:8000"],
         "not an http(s) URL"),
    Case("unknown backend", "flags", ["run", "--backend", "tensorrt"], "unknown backend 'tensorrt'"),
    Case("depth below 1", "flags", ["run", "--depth", "0"], "must be at least 1"),
    Case("non-numeric flag", "flags", ["run", "--temperature", "hot"], "invalid float value"),
    Case("unknown flag", "flags", ["run", "--colour", "red"], "unrecognized arguments"),
    Case("empty root topic", "flags", ["tree", "--root", "   "], "root topic is empty"),
    Case("tree too large", "flags", ["tree", "--depth", "8", "--degree", "20"], "--force"),
    Case("model path does not exist", "environment", ["tree", "--model", "./no/such/model", "--run-dir", "{tmp}/r"],
         "does not exist"),
    Case("model not in local cache, --offline", "environment",
         ["--offline", "tree", "--model", "someone/some-model", "--run-dir", "{tmp}/r"],
         "hf download someone/some-model"),
    Case("model path is a file but no model", "config", ["tree", "--model", "{tmp}/notes.txt", "--run-dir", "{tmp}/r"],
         "is not a model", setup=_write("notes.txt", "hello")),
    Case("vllm not installed", "environment", ["tree", "--backend", "vllm", "--run-dir", "{tmp}/r"],
         "pip install 'topictree-hf[vllm]'", hide=("vllm",)),
    Case("server unreachable", "environment",
         ["tree", "--backend", "openai", "--base-url", "http://127.0.0.1:9/v1", "--run-dir", "{tmp}/r"],
         "cannot reach the server"),
    Case("unwritable run dir", "environment", ["tree", "--run-dir", "{tmp}/file/run"], "not writable",
         _write("file", "a file, not a folder")),
    Case("unknown engine option", "config", ["tree", "{tmp}/c.yaml", "--run-dir", "{tmp}/r"], "engine.options.warp",
         _write("c.yaml", "engine: {backend: transformers, model: bundled:smollm2-135m-instruct,\n"
                          "         options: {warp: 9}}\n")),
    Case("template file missing", "files", ["generate", "{tmp}/c.yaml", "--run-dir", "{tmp}/run"],
         "does not exist; fix generation.templates",
         lambda tmp: (_run_dir()(tmp), _write("c.yaml", "generation: {templates: {qa: nope.jinja}}\n")(tmp))),
    Case("template uses an unknown variable", "files", ["generate", "{tmp}/c.yaml", "--run-dir", "{tmp}/run"],
         "'topic' is undefined",
         lambda tmp: (_run_dir()(tmp), _write("t.jinja", "{{ topic }}")(tmp),
                      _write("c.yaml", f"generation: {{templates: {{qa: {tmp}/t.jinja}}}}\n")(tmp))),
    Case("custom schema invalid", "files", ["generate", "{tmp}/c.yaml", "--run-dir", "{tmp}/run"],
         "not a valid JSON Schema",
         lambda tmp: (_run_dir()(tmp), _write("c.yaml", "generation:\n  formats: [custom]\n  custom:\n"
                                              "    template: '{{ leaf }}'\n    json_schema: {type: 7}\n"
                                              "    messages: [{role: user, field: q}]\n")(tmp))),
    Case("malformed tree file", "files", ["show", "{tmp}/t.json"], "not valid JSON", _write("t.json", "{oops")),
    Case("outline with duplicate paths", "files", ["tree", "--import", "{tmp}/o.yaml", "--run-dir", "{tmp}/r"],
         "repeats Root > A", _write("o.yaml", "Root: [A, A]\n")),
    Case("paths file with a bad line", "files", ["show", "{tmp}/p.jsonl"], "line 2",
         _write("p.jsonl", '{"path": ["R", "A"]}\n[1, 2]\n')),
    Case("generate before the tree exists", "run dirs", ["generate", "--run-dir", "{tmp}/empty"],
         "build the tree first"),
    Case("run dir from an incompatible version", "run dirs", ["generate", "--run-dir", "{tmp}/run"],
         "incompatible with this version", _run_dir(manifest={"format_version": 99, "tool_version": "9.0"})),
    Case("config changed since the run dir was made", "run dirs",
         ["generate", "--run-dir", "{tmp}/run", "--samples", "99"], "generation.num_samples: 18 -> 99",
         _run_dir(journal='{"id": "a", "messages": []}\n')),
    Case("journal corrupted in the middle", "run dirs", ["generate", "--run-dir", "{tmp}/run"],
         "line 1 is not valid JSON",
         _run_dir(journal='garbage\n{"id": "a", "messages": []}\n')),
    Case("corrupted manifest", "run dirs", ["generate", "--run-dir", "{tmp}/run"], "manifest.json is corrupted",
         lambda tmp: (_run_dir()(tmp), (tmp / "run" / "manifest.json").write_text("{"))),
    Case("build a folder that is not a run dir", "dataset folders", ["build", "{tmp}"], "{tmp}"),
    Case("push a folder that is not a dataset", "dataset folders", ["push", "{tmp}", "user/repo", "--dry-run"],
         "{tmp}"),
    Case("push to an invalid repo id", "dataset folders", ["push", "{tmp}/ds", "not a repo id", "--dry-run"],
         "repo id", lambda tmp: _built(tmp)),
    Case("eval a missing folder", "dataset folders", ["eval", "{tmp}/nope"], "does not exist"),
    Case("init over an existing file", "files", ["init", "{tmp}/c.yaml"], "--overwrite", _write("c.yaml", "root: x\n")),
    Case("tree file nested thousands deep", "files", ["show", "{tmp}/t.json"], "nested too deeply",
         _write("t.json", "[" * 50_000)),
    Case("model output never fit the format (no valid sample)", "model output", ["build", "{tmp}/run"],
         "no valid samples: all 3 failed after retries (truncated 3", _all_failed),
    Case("--workers without the ray runner", "flags", ["run", "--workers", "2", "--run-dir", "{tmp}/r"],
         "--runner ray"),
    Case("every server of a fleet unreachable", "environment",
         ["tree", "--backend", "openai", "--base-url", "http://127.0.0.1:9/v1,http://127.0.0.1:10/v1",
          "--run-dir", "{tmp}/r"], "127.0.0.1:10"),
    Case("a leaf plan on the Ray runner", "flags", ["run", "--runner", "ray", "--plan", "--run-dir", "{tmp}/r"],
         "generation.plan runs on the local runner only"),
    Case("Ray cluster unreachable", "environment",
         ["run", "--runner", "ray", "--ray-address", "127.0.0.1:9", "--run-dir", "{tmp}/r"], "127.0.0.1:9"),
]
