"""`python tests/fake_cli.py ARGS` runs `topictree ARGS` in this process with the scripted model of
fake_model.py registered as backend `fake` (`--backend fake`), for tests that need a real process
(SIGKILL, environment, stdout/stderr). `A :: B :: C` runs several commands in turn, in one process,
stopping at the first that fails. Environment:

    FAKE_FLAKY=1                 junk answers now and then (re-asks, retries, failures)
    FAKE_DELAY=SECONDS           sleep per request
    TOPICTREE_TEST_NET_LOG=FILE  install net_guard first: each command is a `# topictree ARGS` line in
                                 FILE, followed by one line per network attempt it made (all refused)
    TOPICTREE_CRASH_AT=P:N       the library's crash points (topictree_hf/faults.py)
"""

from __future__ import annotations

import os
import sys

NET_LOG = os.environ.get("TOPICTREE_TEST_NET_LOG")
if NET_LOG:
    from net_guard import install_file_log

    install_file_log(NET_LOG)

from fake_model import register_fake  # noqa: E402

from topictree_hf.cli import main  # noqa: E402


def commands(argv: list[str]) -> list[list[str]]:
    out: list[list[str]] = [[]]
    for arg in argv:
        if arg == "::":
            out.append([])
        else:
            out[-1].append(arg)
    return [c for c in out if c]


def run_all(argv: list[str]) -> int:
    register_fake(flaky=os.environ.get("FAKE_FLAKY") == "1", delay=float(os.environ.get("FAKE_DELAY") or 0))
    for command in commands(argv):
        if NET_LOG:
            with open(NET_LOG, "a", encoding="utf-8") as fh:
                fh.write(f"# topictree {' '.join(command)}\n")
        code = main(command)
        if code:
            return code
    return 0


if __name__ == "__main__":
    raise SystemExit(run_all(sys.argv[1:]))
