"""The `topictree` command. The library never prints; this package does, and turns every
`TopicTreeError` into one line on stderr with exit code 2 (a traceback only with TOPICTREE_DEBUG=1)."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from collections.abc import Sequence
from typing import Any

from topictree_hf.cli import commands
from topictree_hf.cli.parser import Formatter, Parser
from topictree_hf.engines.hub import OFFLINE_VAR, user_offline
from topictree_hf.errors import TopicTreeError
from topictree_hf.telemetry import usage_stats_off

OFFLINE_HELP = ("download nothing, not even a Hub model (--model ORG/NAME) missing from the local cache "
                "(also TOPICTREE_OFFLINE=1 or HF_HUB_OFFLINE=1)")
EXAMPLES = """examples:
  topictree init config.yaml
  topictree run config.yaml
  topictree run --root "Historical Events" --depth 2 --degree 3 --samples 18
"""


def build_parser() -> Parser:
    from topictree_hf import __version__

    parser = Parser(prog="topictree", description="Diverse synthetic training data from topic trees.",
                    epilog=EXAMPLES, formatter_class=Formatter)
    parser.add_argument("--version", action="version", version=f"topictree-hf {__version__}")
    parser.add_argument("--offline", action="store_true", help=OFFLINE_HELP)
    parser.add_argument("--verbose", action="store_true",
                        help="show the libraries' own logs (vLLM, transformers); TOPICTREE_DEBUG=1 adds tracebacks")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    for command in commands.COMMANDS:
        command.register(sub)
    for command_parser in sub.choices.values():  # `topictree run --offline` works too
        command_parser.add_argument("--offline", action="store_true", default=argparse.SUPPRESS, help=OFFLINE_HELP)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    _quiet_libraries(args)
    debug = os.environ.get("TOPICTREE_DEBUG", "") not in ("", "0")
    previous = _sigterm_as_interrupt()
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
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _raise_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _sigterm_as_interrupt() -> Any:
    """`kill PID` stops a command as Ctrl-C does: journals flushed, the engine closed (vLLM's engine and
    worker processes would otherwise outlive this one). Returns the handler to restore."""
    if threading.current_thread() is not threading.main_thread():
        return None
    return signal.signal(signal.SIGTERM, _raise_interrupt)


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or exc.__class__.__name__


def _quiet_libraries(args: object) -> None:
    """Offline unless pushing, but for the download of a Hub model the run names (engines/hub.py), which
    --offline or the user's own HF_HUB_OFFLINE=1 refuses; library chatter off (our own warnings still
    show) unless --verbose."""
    offline = bool(getattr(args, "offline", False))
    if offline or OFFLINE_VAR not in os.environ:  # decided before HF_HUB_OFFLINE=1 is set here
        os.environ[OFFLINE_VAR] = "1" if offline or user_offline() else "0"
    if offline:
        os.environ["HF_HUB_OFFLINE"] = "1"
    elif getattr(args, "command", None) != "push":
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if getattr(args, "verbose", False):
        os.environ.setdefault("VLLM_LOGGING_LEVEL", "INFO")  # the vllm backend leaves a user-set level on screen
        logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
        return
    os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    usage_stats_off()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    for noisy in ("transformers", "huggingface_hub", "datasets", "accelerate", "vllm", "httpx",
                  "ray._private.authentication"):  # Ray's "token authentication is enabled" on every local start
        logging.getLogger(noisy).setLevel(logging.ERROR)
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("HF_HUB_VERBOSITY", "error")  # huggingface_hub sets its own level when it loads


if __name__ == "__main__":
    raise SystemExit(main())
