"""A run dir made the way a user's run makes it: the real TreeBuilder and SampleGenerator, through
`pipeline.tree_stage` and `pipeline.generate_stage`, on the scripted FakeModel engine. Card, build
and push tests run on it, so they see exactly what the generator writes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fake_engine import FakeEngine
from fake_model import FakeModel

from topictree_hf.config import SMOLLM2, Config
from topictree_hf.pipeline import generate_stage, tree_stage
from topictree_hf.rundir import RunDir

ROOT = "Historical Events"


def generated_config(path: Path, **overrides: Any) -> Config:
    """depth 2, degree 4 (16 leaves), 3 samples per leaf in the formats qa and chat, JSON mode, the
    bundled SmolLM2 on transformers named in the config (the fast tiers' model)."""
    data: dict[str, Any] = {"root": ROOT, "tree": {"depth": 2, "degree": 4, "drift": False, "dedup": "exact"},
                            "generation": {"samples_per_leaf": 3, "formats": ["qa", "chat"], "mode": "json"},
                            "engine": {"backend": "transformers", "model": SMOLLM2, "batch_size": 8},
                            "output": {"run_dir": str(path)}}
    for key, value in overrides.items():
        data[key] = {**data.get(key, {}), **value} if isinstance(value, dict) else value
    return Config.model_validate(data)


def make_generated_run(path: Path, **overrides: Any) -> RunDir:
    config = generated_config(path, **overrides)
    run_dir = RunDir(path)
    run_dir.prepare(config)
    engine = FakeEngine(FakeModel(), model_name=config.engine.model)  # SmolLM2's name, scripted answers
    tree = tree_stage(config, engine, run_dir)
    generate_stage(config, engine, run_dir, tree)
    return run_dir
