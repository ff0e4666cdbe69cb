"""Every bad input in tests/error_cases.py (the table in docs/errors.md): exit code 2, one line on
stderr naming the fix, no traceback."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from error_cases import CASES, Case

from topictree_hf.cli import main


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_bad_input_gets_one_line_and_exit_2(case: Case, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    for module in case.hide:
        monkeypatch.setitem(sys.modules, module, None)  # `import module` raises ImportError, installed or not
    if case.setup is not None:
        case.setup(tmp_path)
    argv = [a.replace("{tmp}", str(tmp_path)) for a in case.argv]
    with pytest.raises(SystemExit) as exc_info:
        raise SystemExit(main(argv))
    out, err = capsys.readouterr()
    assert exc_info.value.code == 2, err
    lines = [line for line in err.splitlines() if "error:" in line]
    assert len(lines) == 1, err
    others = [line for line in err.splitlines() if line.strip() and "error:" not in line]
    assert all(line.startswith(("loading ", "model ready", "WARNING")) for line in others), err
    assert "Traceback" not in err and "Traceback" not in out
    assert case.expect.replace("{tmp}", str(tmp_path)) in lines[0], lines[0]
    assert "error:" in lines[0]
