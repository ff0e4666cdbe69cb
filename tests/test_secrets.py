"""Secrets never leak: the whole pipeline runs through the real CLI (scripted model) and a dry-run
push, with HF_TOKEN and OPENAI_API_KEY set to canary values, in real processes whose HOME, HF_HOME,
TMPDIR and caches all live in the test's folder. Every file written there (Parquet decoded, since
its pages are compressed) and everything printed is scanned for the canaries.

Prompt templates (which may come from a shared config) render in Jinja's immutable sandbox with no
globals: they cannot reach `__class__`, `__globals__` or mutate their inputs. (The sandbox bounds
what a template can touch, not how long it runs.)"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from crash_support import TESTS

from topictree_hf.cli import main
from topictree_hf.errors import ConfigError
from topictree_hf.generation.templates import PROBE, Template

HF_CANARY = "hf_CanaryToken7c1d2e3f4a5b6c7d8e9fSECRET"
OPENAI_CANARY = "sk-canary-0f9e8d7c6b5a4938SECRET"
CANARIES = (HF_CANARY, OPENAI_CANARY)
CONFIG = """\
root: Ancient Egypt
tree: {depth: 2, degree: 2}
generation: {num_samples: 8, formats: [qa, instruction]}
engine: {backend: fake, batch_size: 4, api_key_env: OPENAI_API_KEY}
output: {license: cc-by-4.0}
"""


def leaks(folder: Path) -> list[str]:
    """Files under `folder` holding a canary, Parquet read row by row."""
    found = []
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        data = path.read_bytes()
        if path.suffix == ".parquet":
            data = json.dumps(pq.read_table(path).to_pylist(), ensure_ascii=False, default=str).encode()
        found += [f"{path}: {c[:12]}..." for c in CANARIES if c.encode() in data]
    return found


def test_the_scan_finds_a_planted_canary(tmp_path: Path) -> None:
    import pyarrow as pa

    (tmp_path / "deep" / "er").mkdir(parents=True)
    (tmp_path / "deep" / "er" / "log.txt").write_text(f"token={HF_CANARY}")
    pq.write_table(pa.table({"text": [OPENAI_CANARY * 3]}), tmp_path / "rows.parquet", compression="snappy")
    assert [line.split(":")[0] for line in leaks(tmp_path)] == [str(tmp_path / "deep/er/log.txt"),
                                                                  str(tmp_path / "rows.parquet")]


def test_no_token_in_any_file_or_output(tmp_path: Path) -> None:
    work, home = tmp_path / "work", tmp_path / "home"
    for folder in (work, home / "hf", home / "tmp", home / ".cache", home / ".config"):
        folder.mkdir(parents=True)
    (work / "c.yaml").write_text(CONFIG)
    env = {**os.environ, "HF_TOKEN": HF_CANARY, "OPENAI_API_KEY": OPENAI_CANARY, "HOME": str(home),
           "HF_HOME": str(home / "hf"), "TMPDIR": str(home / "tmp"), "XDG_CACHE_HOME": str(home / ".cache"),
           "XDG_CONFIG_HOME": str(home / ".config"), "MPLCONFIGDIR": str(home / ".config" / "matplotlib"),
           "TOPICTREE_CACHE": str(home / ".cache" / "topictree_hf"), "TOPICTREE_NO_PROGRESS": "0",
           "FAKE_FLAKY": "1"}
    for name in ("HF_HUB_OFFLINE", "TOPICTREE_CRASH_AT"):
        env.pop(name, None)
    steps = [["init", "init.yaml", "::", "run", "c.yaml", "--run-dir", "run", "--out", "ds", "::",
              "show", "run/topic_tree.json", "::", "eval", "ds", "--json", "eval.json", "::",
              "build", "run", "--out", "ds2", "::", "push", "ds2", "not a repo id", "--dry-run"],
             ["push", "ds", "user/ancient-egypt", "--dry-run"],
             ["push", "ds", "user/bad id", "--dry-run"]]
    outputs = []
    for i, args in enumerate(steps):
        step_env = {**env, "TOPICTREE_DEBUG": "1"} if i == 2 else env  # nor may a traceback
        proc = subprocess.run([sys.executable, str(TESTS / "fake_cli.py"), *args], cwd=work, env=step_env,
                              capture_output=True, text=True, timeout=300)
        outputs.append(proc)
    first, dry, debug = outputs
    assert first.returncode == 2 and "invalid repo id 'not a repo id'" in first.stderr, first.stderr
    assert (work / "ds2" / "README.md").is_file() and (work / "eval.json").is_file()
    assert dry.returncode == 0 and "data/train-00000-of-00001.parquet" in dry.stdout, dry.stderr
    assert debug.returncode == 1 and "Traceback" in debug.stderr and "HubError" in debug.stderr
    written = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert len(written) > 20 and any(p.suffix == ".parquet" for p in written)
    assert leaks(tmp_path) == []
    for proc in outputs:
        for canary in CANARIES:
            assert canary not in proc.stdout and canary not in proc.stderr


ATTACKS = [
    "{{ path.__class__ }}", "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "{{ leaf.__class__.__init__.__globals__ }}",
    "{{ lipsum.__globals__.os.popen('id').read() }}", "{{ cycler.__init__.__globals__.os }}",
    "{{ self.__init__.__globals__ }}", "{{ self._TemplateReference__context.environment }}",
    "{{ path|attr('__class__') }}", "{{ '{0.__class__}'.format(leaf) }}", "{{ '%s' % leaf.__class__ }}",
    "{{ leaf.__getattribute__('__class__') }}", "{{ path|selectattr('__class__')|list }}",
    "{{ leaf|map(attribute='__class__')|list }}", "{{ [path]|map('attr', '__globals__')|list }}",
    "{% set x = path.append('x') %}{{ path }}", "{{ range.__self__ }}", "{{ dict.mro() }}",
]


@pytest.mark.parametrize("source", ATTACKS)
def test_templates_cannot_reach_python_internals(source: str) -> None:
    """Refused at load (one line naming the unsafe access), or rendered without a Python object in sight."""
    try:
        text = Template("evil", source, "evil template").render(PROBE)
    except ConfigError as exc:
        assert "unsafe" in str(exc) or "undefined" in str(exc), exc
        assert "\n" not in str(exc)
        return
    assert not any(leak in text for leak in ("<class", "<function", "<module", "<built-in", "os.", "__")), text


def test_an_unsafe_template_file_stops_the_cli_before_any_model(tmp_path: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "evil.jinja").write_text("Topic path: {{ path | join(' > ') }} {{ leaf.__class__.__mro__ }}")
    (tmp_path / "c.yaml").write_text(f"generation: {{templates: {{qa: {tmp_path / 'evil.jinja'}}}}}\n")
    code = main(["run", str(tmp_path / "c.yaml"), "--run-dir", str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1, err
    assert "tried an unsafe operation (access to attribute '__class__' of 'str' object is unsafe" in err
    assert "loading" not in err and not (tmp_path / "run").exists()
