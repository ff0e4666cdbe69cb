"""The command list: each command module exposes `register(subparsers)`."""

from __future__ import annotations

import argparse

from topictree_hf.cli import cmd_init

COMMANDS = [cmd_init]


class Formatter(argparse.RawDescriptionHelpFormatter):
    """Keeps the hand-written examples in epilogs as they are."""
