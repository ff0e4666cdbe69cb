"""Write docs/errors.md from tests/error_cases.py by running every bad input for real, so the
table always shows the message users get (tests/test_errors.py checks the same rows).

    python scripts/errors_doc.py
"""

from __future__ import annotations

import contextlib
import io
import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from error_cases import CASES  # noqa: E402

from topictree_hf.cli import main  # noqa: E402


def run_case(case) -> tuple[int, str]:  # noqa: ANN001
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        if case.setup is not None:
            case.setup(tmp_path)
        argv = [a.replace("{tmp}", "TMP") for a in case.argv]
        real = [a.replace("{tmp}", tmp) for a in case.argv]
        err = io.StringIO()
        with hidden(case.hide), contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            try:
                code = main(real)
            except SystemExit as exc:
                code = int(exc.code or 0)
        line = next((x for x in err.getvalue().splitlines() if "error:" in x), "")
        return code, " ".join(argv), line.replace(tmp, "TMP")


@contextlib.contextmanager
def hidden(modules: tuple[str, ...]):  # noqa: ANN201
    """`import m` raises ImportError inside, installed or not. Only these keys are restored after:
    `mock.patch.dict(sys.modules)` would also drop what was imported inside (torch), and importing
    torch a second time in one process crashes."""
    saved = {m: sys.modules[m] for m in modules if m in sys.modules}
    sys.modules.update(dict.fromkeys(modules))
    try:
        yield
    finally:
        for m in modules:
            del sys.modules[m]
        sys.modules.update(saved)


def main_doc() -> None:
    os.environ.setdefault("TOPICTREE_NO_PROGRESS", "1")
    rows = ["| # | area | bad input | command | exit | message |", "| --- | --- | --- | --- | --- | --- |"]
    for i, case in enumerate(CASES, 1):
        code, argv, line = run_case(case)
        msg = line.replace("|", "\\|")
        rows.append(f"| {i} | {case.area} | {case.name} | `topictree {argv}` | {code} | {msg} |")
    text = ("# Bad input and the message it gets\n\nEvery row is run for real by `python scripts/errors_doc.py` "
            "(which wrote this file) and checked by `tests/test_errors.py`: exit code 2, one line on stderr "
            "naming the fix, no traceback (set `TOPICTREE_DEBUG=1` for one). TMP is a temporary folder.\n\n"
            + "\n".join(rows) + "\n")
    (ROOT / "docs" / "errors.md").write_text(text)
    print(f"wrote docs/errors.md ({len(CASES)} rows)")


if __name__ == "__main__":
    main_doc()
