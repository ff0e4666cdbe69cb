"""The `topictree` command. The library never prints; this package does, and turns every
`TopicTreeError` into one line on stderr with exit code 2 (a traceback only with TOPICTREE_DEBUG=1)."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Sequence

from topictree_hf.cli import commands
from topictree_hf.cli.parser import Parser
from topictree_hf.errors import TopicTreeError

EXAMPLES = """examples:
  topictree init config.yaml
  topictree run config.yaml
  topictree run --root "Historical Events" --depth 2 --degree 3 --samples 18
"""


def build_parser() -> Parser:
    from topictree_hf import __version__

    parser = Parser(prog="topictree", description="Diverse synthetic training data from topic trees.",
                    epilog=EXAMPLES, formatter_class=commands.Formatter)
    parser.add_argument("--version", action="version", version=f"topictree-hf {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    for command in commands.COMMANDS:
        command.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    _quiet_libraries(args)
    debug = os.environ.get("TOPICTREE_DEBUG", "") not in ("", "0")
    try:
        return int(args.func(args) or 0)
    except TopicTreeError as exc:
        if debug:
            raise
        print(f"topictree {args.command}: error: {_one_line(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"topictree {args.command}: interrupted; rerun the same command to resume", file=sys.stderr)
        return 130
    except Exception as exc:
        if debug:
            raise
        print(f"topictree {args.command}: internal error: {exc.__class__.__name__}: {_one_line(exc)} "
              "(rerun with TOPICTREE_DEBUG=1 for a traceback and report it)", file=sys.stderr)
        return 1


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or exc.__class__.__name__


def _quiet_libraries(args: object) -> None:
    """Offline unless pushing; library chatter off (our own warnings still show)."""
    if getattr(args, "command", None) != "push":
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    from topictree_hf.engines.vllm_engine import usage_stats_off

    usage_stats_off()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    for noisy in ("transformers", "huggingface_hub", "datasets", "accelerate", "vllm", "httpx"):
        logging.getLogger(noisy).setLevel(logging.ERROR)
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")


if __name__ == "__main__":
    raise SystemExit(main())
