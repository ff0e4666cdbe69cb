"""`topictree init [PATH]`: write a commented example config."""

from __future__ import annotations

import argparse
import sys
from importlib import resources
from pathlib import Path

from topictree_hf.cli.parser import Formatter
from topictree_hf.errors import ConfigError

EXAMPLE = """example:
  topictree init config.yaml && topictree run config.yaml
"""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("init", help="write a commented example config", epilog=EXAMPLE,
                       description="Write a commented example config (to stdout when PATH is -).",
                       formatter_class=Formatter)
    p.add_argument("path", nargs="?", default="topictree.yaml", help="where to write it (default topictree.yaml)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing file")
    p.set_defaults(func=run)


def example_config() -> str:
    return resources.files("topictree_hf").joinpath("resources/example_config.yaml").read_text(encoding="utf-8")


def run(args: argparse.Namespace) -> int:
    text = example_config()
    if args.path == "-":
        sys.stdout.write(text)
        return 0
    path = Path(args.path)
    if path.exists() and not args.overwrite:
        raise ConfigError(f"{path} already exists; pass --overwrite to replace it or choose another path")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot write {path} ({exc.strerror}); choose a writable path") from None
    print(f"wrote {path}; edit it, then: topictree run {path}")
    return 0
