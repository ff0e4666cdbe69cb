"""generation.yaml: the run's resolved config, safe to publish.

The config should never hold a secret (keys live in env vars named by `api_key_env`), but
`engine.options` passes arbitrary backend kwargs and `base_url` can embed credentials, and a
dataset folder is made to be uploaded. So anything that looks like a secret is removed before it
is written, and so are local paths (run_dir, dataset_dir) that mean nothing on another machine.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Collection
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import yaml

from topictree_hf import __version__
from topictree_hf.config import resolved_dict
from topictree_hf.dataset.source import RunSource

logger = logging.getLogger(__name__)

_SECRET_KEY = re.compile(r"(^|_)(token|secret|password|passwd|api_?key|apikey|credentials?|authorization)$",
                         re.IGNORECASE)
_KEEP_KEYS = {"api_key_env"}
_SECRET_VALUE = re.compile(r"\b(hf_[A-Za-z0-9]{20,}|sk-[A-Za-z0-9_-]{20,}|gh[pousr]_[A-Za-z0-9]{20,})\b")
_LOCAL_PATHS = (("output", "run_dir"), ("output", "dataset_dir"))

HEADER = """\
# The resolved config of the run that made this dataset (topictree-hf {version}).
# Secrets and local paths are not included; a Hub model is named with the commit the run loaded.
# Reproduce with: topictree run generation.yaml
"""


def scrub(data: Any, path: str = "") -> Any:
    """A copy of `data` without secret-looking keys and values; what is removed is logged by key."""
    if isinstance(data, dict):
        out = {}
        for key, value in data.items():
            where = f"{path}.{key}" if path else str(key)
            if str(key) not in _KEEP_KEYS and _SECRET_KEY.search(str(key)):
                logger.warning("generation.yaml: left out %s (looks like a secret)", where)
                continue
            out[key] = scrub(value, where)
        return out
    if isinstance(data, list):
        return [scrub(v, f"{path}[{i}]") for i, v in enumerate(data)]
    if isinstance(data, str):
        return _scrub_text(data, path)
    return data


def _scrub_text(text: str, where: str) -> str:
    if _SECRET_VALUE.search(text):
        logger.warning("generation.yaml: removed a token-like value at %s", where)
        text = _SECRET_VALUE.sub("<removed>", text)
    if "@" in text and "://" in text:
        parts = urlsplit(text)
        if parts.username or parts.password:
            logger.warning("generation.yaml: removed credentials from the URL at %s", where)
            host = parts.hostname or ""
            netloc = f"{host}:{parts.port}" if parts.port else host
            text = urlunsplit(parts._replace(netloc=netloc))
    return text


def publishable_config(source: RunSource, models: Collection[str] = ()) -> dict[str, Any]:
    """The config to publish. `models`: the models the rows name; with the openai backend the
    server decides the model (the config may name none, or the bundled default), so the one the
    rows name is recorded."""
    data = scrub(resolved_dict(source.config))
    for section, key in _LOCAL_PATHS:
        data.get(section, {}).pop(key, None)
    served = served_model(source, models)
    if served is not None:
        data.setdefault("engine", {})["model"] = served
    _pin_hub_models(data, source)
    return data


def _pin_hub_models(data: dict[str, Any], source: RunSource) -> None:
    """A Hub model is named with the commit the run loaded (ORG/NAME@COMMIT, manifest.json), so
    `topictree run generation.yaml` loads the same weights."""
    from topictree_hf.engines.hub import PINS, pinned_name

    pins = (source.run.read_manifest() or {}).get(PINS)
    engine, judge = data.get("engine"), (data.get("generation") or {}).get("judge")
    for block in (engine, judge):
        if isinstance(block, dict) and isinstance(block.get("model"), str):
            block["model"] = pinned_name(block["model"], pins)


def served_model(source: RunSource, models: Collection[str]) -> str | None:
    """The one model an openai server answered with, when the config names another; else None."""
    if source.config.engine.backend != "openai" or len(set(models)) != 1:
        return None
    (model,) = set(models)
    return model if model != source.config.engine.model else None


def write_generation_yaml(source: RunSource, path: Path, models: Collection[str] = ()) -> None:
    header = HEADER.format(version=__version__)
    if served_model(source, models) is not None:
        header += (f"# engine.model is the model the server served (the run's config said "
                   f"{source.config.engine.model!r}).\n")
    text = header + yaml.safe_dump(publishable_config(source, models), sort_keys=False, allow_unicode=True)
    path.write_text(text, encoding="utf-8")
