"""What made a run: code (git), packages, hardware (sqltrack._write.provenance), on both engines."""

from __future__ import annotations

import platform
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from conftest import json_column

import sqltrack as st
from sqltrack import Client, InvalidValue, Run
from sqltrack._write.provenance import DIFF_LIMIT, code_state, hardware_state, packages_state


def _git(folder: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", "-C", str(folder), *args], capture_output=True, text=True, check=True
    )
    return done.stdout


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    if shutil.which("git") is None:
        pytest.fail("git is missing: the code state is collected with it")
    folder = tmp_path / "repo"
    folder.mkdir()
    _git(folder, "init", "-q", "-b", "main")
    _git(folder, "config", "user.email", "t@example.org")
    _git(folder, "config", "user.name", "t")
    (folder / "train.py").write_text("lr = 0.1\n")
    (folder / "model.py").write_text("layers = 3\n")
    _git(folder, "add", ".")
    _git(folder, "commit", "-q", "-m", "first")
    _git(folder, "remote", "add", "origin", "https://user:ghp_s3cr3t@github.com/lab/repo.git")
    return folder


def test_the_stored_diff_applied_to_the_commit_gives_the_working_tree(
    repo: Path, run: Run, client: Client, tmp_path: Path
) -> None:
    (repo / "train.py").write_text("lr = 0.05  # tuned\n")  # changed, not staged
    (repo / "model.py").write_text("layers = 4\n")
    _git(repo, "add", "model.py")  # changed and staged
    (repo / "notes.txt").write_text("scratch\n")  # untracked
    run.set_code(code_state(repo))
    code = json_column(client, "runs", "code", run.id)
    assert code["commit"] == _git(repo, "rev-parse", "HEAD").strip()
    assert code["branch"] == "main" and code["dirty"] is True
    assert code["remote"] == "https://github.com/lab/repo.git"  # the token is gone
    assert "s3cr3t" not in str(code)
    assert code["untracked"] == ["notes.txt"]
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(repo), str(clone)], check=True)
    _git(clone, "checkout", "-q", code["commit"])
    patch = tmp_path / "code.diff"
    patch.write_text(code["diff"])
    _git(clone, "apply", str(patch))
    for name in ("train.py", "model.py"):
        assert (clone / name).read_text() == (repo / name).read_text()


def test_a_clean_checkout_and_a_huge_diff(repo: Path) -> None:
    clean = code_state(repo)
    assert clean is not None and clean["dirty"] is False and clean["diff"] == ""
    (repo / "train.py").write_text("x = 1\n" * (DIFF_LIMIT // 4))
    big = code_state(repo)
    assert big is not None and big["diff"] is None
    assert len(big["diff_sha256"]) == 64 and big["diff_bytes"] > DIFF_LIMIT
    assert "not stored" in big["note"]


def test_the_diff_can_be_left_out(
    repo: Path, run: Run, client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A diff is stored as it is (a secret in the working tree too): diff=False keeps
    only its checksum and size."""
    (repo / "train.py").write_text("API_KEY = 'sk-live-123'\n")
    monkeypatch.chdir(repo)
    monkeypatch.setattr("sys.argv", [""])
    run.set_code("auto", diff=False)
    code = json_column(client, "runs", "code", run.id)
    assert code["diff"] is None and code["diff_bytes"] > 0 and "diff=False" in code["note"]
    assert "sk-live" not in str(code)
    assert code_state(repo)["diff"].count("sk-live-123") == 1  # type: ignore[index]


def test_outside_git_the_code_is_null(run: Run, client: Client, tmp_path: Path) -> None:
    assert code_state(tmp_path) is None
    st.run_set_code(client, run.id, code_state(tmp_path))
    assert json_column(client, "runs", "code", run.id) is None


def test_packages_and_hardware(run: Run, client: Client) -> None:
    run.set_packages().set_hardware()
    packages = json_column(client, "runs", "packages", run.id)
    assert packages["python"] == platform.python_version()
    assert packages["packages"]["psycopg"] == packages_state()["packages"]["psycopg"]
    hardware = json_column(client, "runs", "hardware", run.id)
    assert hardware["cpus"] >= 1 and hardware["memory_bytes"] > 0
    expected_gpus = None if shutil.which("nvidia-smi") is None else hardware_state()["gpus"]
    assert hardware["gpus"] == expected_gpus  # null without nvidia-smi, never an error


def test_gpus_from_nvidia_smi(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake = tmp_path / "nvidia-smi"
    fake.write_text("#!/bin/sh\necho 'NVIDIA A100-SXM4-80GB, 81920'\necho 'NVIDIA A100, 40960'\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}:/usr/bin:/bin")
    assert hardware_state()["gpus"] == [
        {"name": "NVIDIA A100-SXM4-80GB", "memory_mb": 81920},
        {"name": "NVIDIA A100", "memory_mb": 40960},
    ]


@pytest.mark.parametrize("value", [["not", "a", "dict"], "manual", 3])
def test_bad_values_raise(run: Run, value: Any) -> None:
    with pytest.raises(InvalidValue, match="expected 'auto', a dict or None"):
        run.set_code(value)
