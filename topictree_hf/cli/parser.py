"""argparse plumbing shared by every command: one-line usage errors (exit 2) and the common flags."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import Any, NoReturn

from topictree_hf.errors import ConfigError
from topictree_hf.runners.open import RUNNER_NAMES, RunnerChoice
from topictree_hf.runners.ray_runner import RayOptions


class Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line naming the fix, exit code 2."""

    def error(self, message: str) -> NoReturn:
        sys.stderr.write(f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")
        raise SystemExit(2)


class Formatter(argparse.RawDescriptionHelpFormatter):
    """Keeps the hand-written examples in epilogs as they are."""


def int_at_least(minimum: int, hint: str = "") -> Callable[[str], int]:
    """An argparse type: an integer >= `minimum` (`hint` says what the bound means)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"{text!r} must be at least {minimum}{hint}")
        return value

    return parse


positive_int = int_at_least(1)


def add_config_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("config", nargs="?", help="YAML config (see `topictree init`); default: built-in defaults")


# flag -> (dotted config key, argparse kwargs)
COMMON_FLAGS: dict[str, tuple[str, dict[str, Any]]] = {
    "--root": ("root", {"metavar": "TEXT", "help": "root topic"}),
    "--depth": ("tree.depth", {"type": positive_int, "metavar": "N", "help": "tree depth below the root"}),
    "--degree": ("tree.degree", {"type": positive_int, "metavar": "N", "help": "subtopics per node"}),
    "--samples": ("generation.num_samples", {"type": positive_int, "metavar": "N", "help": "samples in all"}),
    "--format": ("generation.formats", {"metavar": "F", "help": "qa, instruction, chat, code, custom (comma list)"}),
    "--temperature": ("generation.temperature", {"type": float, "metavar": "T", "help": "sampling temperature"}),
    "--backend": ("engine.backend", {"metavar": "B", "help": "transformers | vllm | openai | auto"}),
    "--model": ("engine.model", {"metavar": "M", "help": "a bundled:NAME, a folder, a .gguf, or a Hub ORG/NAME[@REV] "
                                                       "(downloaded unless --offline)"}),
    "--base-url": ("engine.base_url", {"metavar": "URL", "help": "OpenAI-compatible server, e.g. http://127.0.0.1:8000/v1"}),
    "--batch-size": ("engine.batch_size", {"type": positive_int, "metavar": "N", "help": "requests in flight at once"}),
    "--plan": ("generation.plan", {"action": argparse.BooleanOptionalAction,
                                   "help": "plan each leaf's samples first, so they differ (generation.plan)"}),
    "--seed": ("generation.seed", {"type": int, "metavar": "S", "help": "seed for allocation and sampling"}),
    "--run-dir": ("output.run_dir", {"metavar": "DIR", "help": "run directory (default runs/<name>)"}),
    "--out": ("output.dataset_dir", {"metavar": "DIR", "help": "dataset folder (default RUN_DIR/dataset)"}),
}


def add_common_flags(p: argparse.ArgumentParser, names: list[str]) -> None:
    for flag in names:
        _, kwargs = COMMON_FLAGS[flag]
        p.add_argument(flag, default=None, **kwargs)
    p.add_argument("--force", action="store_true", help="go on past a size guard or a changed config")


def overrides(args: argparse.Namespace) -> dict[str, Any]:
    """CLI flags as dotted config overrides (flags left unset are None and ignored)."""
    out: dict[str, Any] = {}
    for flag, (key, _) in COMMON_FLAGS.items():
        value = getattr(args, flag.lstrip("-").replace("-", "_"), None)
        if value is None:
            continue
        if key == "generation.formats":
            value = [f.strip() for f in str(value).split(",") if f.strip()]
        out[key] = value
    if getattr(args, "force", False):
        out["tree.force"] = True
    return out


def add_runner_flags(p: argparse.ArgumentParser) -> None:
    """--runner, --ray-address, --workers: every command that runs an engine takes them (see `runner_of`)."""
    p.add_argument("--runner", choices=RUNNER_NAMES, default="local",
                   help="local: this process; ray: a Ray cluster, one engine per actor (extra `ray`)")
    p.add_argument("--ray-address", metavar="ADDR", help="Ray cluster to join (default: RAY_ADDRESS, else a local one)")
    p.add_argument("--workers", type=positive_int, metavar="N", help="Ray actors (default: what the cluster fits)")


def runner_of(args: argparse.Namespace) -> RunnerChoice:
    """Where the command's work runs, from the flags of `add_runner_flags`."""
    if args.runner != "ray":
        if args.ray_address or args.workers:
            raise ConfigError("--ray-address and --workers apply to the Ray runner; add --runner ray")
        return RunnerChoice(args.runner)
    return RunnerChoice("ray", RayOptions(address=args.ray_address, workers=args.workers))
