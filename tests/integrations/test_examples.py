"""The framework examples of examples/ run as their docstrings say, on each engine, and
end COMPLETED with their best checkpoint found."""

from __future__ import annotations

import re
import subprocess
import sys
from typing import Any

import pytest
from conftest import ROOT, env_for
from frameworks import need


@pytest.mark.slow
@pytest.mark.parametrize(
    ("script", "args", "needs"),
    [
        ("lightning_fit.py", ["--epochs", "2"], ["lightning"]),
        ("hf_trainer.py", ["--steps", "10"], ["transformers", "accelerate"]),
    ],
)
def test_a_framework_example_runs(
    script: str, args: list[str], needs: list[str], db_params: dict[str, Any]
) -> None:
    for module in needs:
        need(module)
    env = {**env_for(db_params), "PYTHONWARNINGS": "ignore"}
    setup = [sys.executable, "-m", "sqltrack", "setup"]
    assert subprocess.run(setup, env=env, capture_output=True).returncode == 0
    done = subprocess.run(
        [sys.executable, str(ROOT / "examples" / script), *args],
        env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert re.search(r"^run \d+: COMPLETED; best \S+ at step \d+: /", done.stdout, re.M), (
        done.stdout
    )
