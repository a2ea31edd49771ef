"""The docs are tests: every Python and SQL snippet of the README and docs/ runs, on both
engines.

Python snippets of one file run in order in one namespace (a later snippet may use what
an earlier one made), with ``st.Client()`` configured for the engine through
``SQLTRACK_URL``. SQL snippets run statement by statement on a database that holds a
small experiment (``resnet-cifar``, runs with ``lr`` args, ``train_loss`` and
``val_loss`` metrics, a ``baseline`` tag): a block marked ```` ```sql ```` runs on both
engines, ```` ```sql postgres ```` and ```` ```sql sqlite ```` on theirs only. Shell,
text and ini blocks are not run here (CI runs the README's two commands itself).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from conftest import ROOT

import sqltrack as st

DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
_FENCE = re.compile(r"^```([\w ]*)\n(.*?)^```", re.MULTILINE | re.DOTALL)


def _snippets(path: Path, kind: str) -> list[tuple[int, str, str]]:
    """``(line, info, code)`` of the blocks of ``path`` whose info string starts with kind."""
    text = path.read_text()
    found = []
    for match in _FENCE.finditer(text):
        info = match.group(1).strip()
        if info.split(" ")[0] == kind:
            found.append((text.count("\n", 0, match.start()) + 1, info, match.group(2)))
    return found


def test_the_docs_have_snippets() -> None:
    """A guard for the extraction itself: it finds the README's snippets."""
    readme = ROOT / "README.md"
    assert len(_snippets(readme, "python")) >= 5
    assert len(_snippets(readme, "sql")) >= 2


def _url(db_params: dict[str, Any]) -> str:
    if db_params["engine"] == "sqlite":
        return f"sqlite:///{db_params['dbpath']}"
    from urllib.parse import quote, urlencode

    p = db_params
    auth = quote(p["user"]) + (f":{quote(p['password'])}" if p.get("password") else "")
    query = urlencode({k: p[k] for k in ("host", "port") if k in p})
    return f"postgresql://{auth}@/{quote(p['dbname'])}?{query}"


@pytest.mark.parametrize("doc", [p for p in DOCS if _snippets(p, "python")], ids=lambda p: p.name)
def test_python_snippets_run(
    doc: Path, db_params: dict[str, Any], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    params = {k: v for k, v in db_params.items() if k != "schema"}
    if "schema" in db_params:  # the test server's schema, for whatever the snippet connects
        params["options"] = f"-c search_path={db_params['schema']}"
        monkeypatch.setenv("PGOPTIONS", params["options"])
    monkeypatch.setenv("SQLTRACK_URL", _url(db_params))
    monkeypatch.setenv("SQLTRACK_EXPERIMENT_NAME", "resnet-cifar")
    monkeypatch.setattr("sys.argv", ["train.py", "--lr", "0.1"])
    st.setup(st.Client())
    namespace: dict[str, Any] = {"__name__": "__doc__"}
    for line, _, code in _snippets(doc, "python"):
        try:
            exec(compile(code, f"{doc.name}:{line}", "exec"), namespace)
        except Exception as e:
            pytest.fail(f"the snippet at {doc.name}:{line} failed: {type(e).__name__}: {e}")


def _seed(client: st.Client) -> None:
    """What the SQL snippets ask about, so that each question has an answer: an
    experiment of runs with lr, losses and tags; one diverged and was best early; one
    tagged run is RUNNING but silent for two hours (killed without a trace)."""
    from datetime import datetime, timedelta, timezone

    exp = st.Experiment(client, name="resnet-cifar")
    for i, lr in enumerate([0.1, 0.01, 0.001]):
        run = exp.get_run(run_id=12345 + i).set_args({"lr": lr}).add_tags("baseline")
        with run.track():
            for step in range(5):
                loss = 1.0 / (step + 1) + lr
                run.add_metrics({"train_loss": loss, "val_loss": loss + 0.1}, step=step)
    diverged = exp.get_run().set_args({"lr": 1.0})
    with diverged.track():
        for step, loss in enumerate([0.4, 0.5, 0.9, 3.0]):
            diverged.add_metrics({"train_loss": loss, "val_loss": loss + 0.1}, step=step)
    st.Run(client, run_id=12345).log_artifact(
        "s3://bucket/ckpt", name="resnet-ckpt", kind="checkpoint", step=4
    )
    diverged.use_artifact("resnet-ckpt", 1)
    st.Run(client, run_id=12345).log_sample(4, "a cat on a skateboard", {"clip_score": 0.3})
    st.Run(client, run_id=12345).set_code({"commit": "0" * 40, "dirty": True})
    client.query(
        "INSERT INTO system_metrics (run_id, time, name, value) VALUES (12345, :t, 'rss_bytes', 1)",
        {"t": client.engine.adapt_datetime(datetime.now(timezone.utc))},
    )
    silent = exp.get_run().add_tags("baseline").start(terminated=None)
    silent.set_updated(datetime.now(timezone.utc) - timedelta(hours=2))


def _statements(code: str) -> list[str]:
    lines = [line for line in code.splitlines() if not line.strip().startswith("--")]
    return [s.strip() for s in "\n".join(lines).split(";") if s.strip()]


@pytest.mark.parametrize("doc", [p for p in DOCS if _snippets(p, "sql")], ids=lambda p: p.name)
def test_sql_snippets_run(doc: Path, client: st.Client) -> None:
    engine = client.engine.name
    _seed(client)
    ran = 0
    for line, info, code in _snippets(doc, "sql"):
        only = info.split(" ")[1:]
        if only and engine not in only:
            continue
        for statement in _statements(code):
            try:
                rows = client.execute(statement)
            except Exception as e:
                pytest.fail(f"{doc.name}:{line} on {engine}: {statement!r} failed: {e}")
            if statement.upper().startswith("SELECT"):  # each question has an answer
                assert rows, f"{doc.name}:{line} on {engine}: {statement!r} found nothing"
            ran += 1
    assert ran, f"no SQL snippet of {doc.name} runs on {engine}"


def test_the_bundled_example_runs(db_params: dict[str, Any], tmp_path: Path) -> None:
    """examples/train.py, the README's first command, on each engine."""
    import subprocess
    import sys

    from conftest import env_for

    env = env_for(db_params)
    done = subprocess.run(
        [sys.executable, "-m", "sqltrack", "setup"], env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    done = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "train.py"), "--lr", "0.05", "--epochs", "2"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert ": COMPLETED, lr 0.05" in done.stdout and "val_loss" in done.stdout
    assert done.stderr == ""  # no warning on the way
