"""`topictree run --model ORG/NAME` end to end against a local Hub endpoint serving the bundled SmolLM2
(its safetensors conversion) as a model repo (marked slow: it loads and runs the model). The first
download is cut mid-file (one line, exit 2), the rerun resumes it and generates, and a run in a new run
dir loads the model from the cache without a single request to the Hub. The commit is pinned in
manifest.json, generation.yaml and the card."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from hub_models import folder_files, serving, topictree

from topictree_hf.engines.hub import PINS
from topictree_hf.engines.models import SMALLEST, gguf_as_folder, resolve_model

pytestmark = pytest.mark.slow
RUN = ["run", "--root", "Ancient Egypt", "--depth", "1", "--degree", "2", "--samples", "2", "--no-eval", "--no-plan",
       "--backend", "transformers", "--model", "org/smollm2"]


def test_a_hub_model_downloads_resumes_generates_and_is_cached(tmp_path: Path) -> None:
    folder = gguf_as_folder(resolve_model(SMALLEST))
    assert folder is not None
    with serving() as server:
        sha = server.hub.add_model("org/smollm2", folder_files(folder))
        server.cut["model.safetensors"] = 60_000_000
        cut = topictree(server.url, tmp_path, *RUN, "--run-dir", "first")
        assert cut.returncode == 2 and cut.stderr.count("\n") == 1, cut.stderr
        assert "the download of model org/smollm2 stopped" in cut.stderr and "rerun the same command" in cut.stderr

        del server.cut["model.safetensors"]
        resumed = topictree(server.url, tmp_path, *RUN, "--run-dir", "first")
        assert resumed.returncode == 0, resumed.stderr
        starts = [int(r.removeprefix("bytes=").rstrip("-")) for p, r in server.ranges if p.endswith(".safetensors")]
        assert starts and 0 < starts[-1] < 60_000_000, f"the rerun continued the partial file: {server.ranges}"

        asked = len(server.hub.requests)
        cached = topictree(server.url, tmp_path, *RUN, "--run-dir", "second")
        assert cached.returncode == 0, cached.stderr
        assert server.hub.requests[asked:] == [], "the second run loads the model from the cache"

    run = tmp_path / "first"
    assert json.loads((run / "manifest.json").read_text())[PINS] == {"org/smollm2": sha}
    published = yaml.safe_load((run / "dataset" / "generation.yaml").read_text())
    assert published["engine"]["model"] == f"org/smollm2@{sha}", "a rerun of generation.yaml loads the same weights"
    assert f"org/smollm2 at commit {sha}" in (run / "dataset" / "README.md").read_text()
    assert [json.loads(line)["model"] for line in (run / "samples-00000.jsonl").read_text().splitlines()]
