"""The command list: each command module exposes `register(subparsers)`."""

from __future__ import annotations

from topictree_hf.cli import cmd_baseline, cmd_build, cmd_eval, cmd_generate, cmd_init, cmd_push, cmd_tree

COMMANDS = [cmd_init, cmd_tree, cmd_generate, cmd_build, cmd_push, cmd_eval, cmd_baseline]
