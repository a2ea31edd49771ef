"""What every import shares (sqltrack._import.target): rows keyed as sqltrack keys them,
wall times, values left out with why, and a run that cannot be written never blocking
the others; plus inputs no tool writes but a file may hold. On both engines."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from conftest import need
from sources import history, imported

from sqltrack import Client
from sqltrack._import.from_tensorboard import import_tensorboard
from sqltrack._import.from_trackio import import_trackio
from sqltrack._import.model import ImportResult, SourceRun
from sqltrack._import.target import import_runs, metric_rows
from sqltrack.errors import InvalidValue


def test_rows_keyed_by_step_and_repeat() -> None:
    """A name's second value at a step gets progress 1; each row's wall time is its
    earliest value's; values sqltrack cannot store are counted with why."""
    result = ImportResult("test", "here")
    points = [
        ("loss", 0, 1.0, 10.0), ("acc", 0, 0.5, 12.0), ("loss", 0, 0.9, 11.0),
        ("loss", 1, 0.8, 13.0), ("img", 1, {"_type": "image"}, 13.0), ("big", 1, 2**70, 13.0),
        ("bad:name", 1, 1.0, 13.0), ("flag", 2, True, None),
    ]  # fmt: skip
    rows, values = metric_rows(points, result)
    keyed = {(row[3], row[4]): dict(zip(row[0], row[1], strict=True)) for row in rows}
    assert keyed == {
        (0, 0.0): {"loss": 1.0, "acc": 0.5, "wall_time": 10.0},
        (0, 1.0): {"loss": 0.9, "wall_time": 11.0},
        (1, 0.0): {"loss": 0.8, "wall_time": 13.0},
        (2, 0.0): {"flag": True},
    }
    assert values == 5
    reasons = sorted(result.skipped)
    assert reasons[0].startswith("metric 'bad:name'")
    assert reasons[1].startswith("metric 'big': ") and "64 bits" in reasons[1]
    assert reasons[2] == "metric 'img': values of type dict"


def test_a_wall_time_of_its_own_wins() -> None:
    rows, _ = metric_rows(
        [("wall_time", 0, 5.0, 99.0), ("loss", 0, 1.0, 99.0)], ImportResult("t", "")
    )
    assert dict(zip(rows[0][0], rows[0][1], strict=True)) == {"wall_time": 5.0, "loss": 1.0}


def test_a_run_sqltrack_cannot_take_blocks_no_other(client: Client) -> None:
    """A NUL in a tag (or an experiment name) skips that run, named, and the next is
    written; a run its source lists twice is written once."""
    runs = [
        SourceRun("test", "a", "exp", tags=["bad\x00tag"]),
        SourceRun("test", "b", "exp\x00"),
        SourceRun(
            "test", "c", "exp", args={"lr": float("nan")}, points=lambda: [("x", 0, 1.0, None)]
        ),
        SourceRun("test", "c", "exp"),
    ]
    result = import_runs(client, runs, ImportResult("test", "here"))
    assert (result.runs_new, result.runs_found, result.values) == (1, 0, 1)
    reasons = sorted(result.skipped)
    assert [r[:12] for r in reasons] == ["test run a: ", "test run b: ", "test run c: "]
    assert "NUL" in reasons[0] and "NUL" in reasons[1] and "listed twice" in reasons[2]
    assert imported(client)["c"]["args"] == {"lr": "nan"}  # (JSON has no NaN)


def _trackio(path: Path, rows: list[tuple[object, ...]], configs: list[tuple[object, ...]]) -> Path:
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE metrics (id INTEGER PRIMARY KEY, run_id TEXT, run_name TEXT, "
               "step INTEGER, timestamp TEXT, metrics BLOB)")  # fmt: skip
    db.execute("CREATE TABLE configs (run_id TEXT, run_name TEXT, config BLOB, created_at TEXT)")
    db.executemany("INSERT INTO metrics (run_id, run_name, step, timestamp, metrics) "
                   "VALUES (?, ?, ?, ?, ?)", rows)  # fmt: skip
    db.executemany("INSERT INTO configs VALUES (?, ?, ?, ?)", configs)
    db.commit()
    db.close()
    return path


def test_a_trackio_file_with_broken_rows(client: Client, tmp_path: Path) -> None:
    """Rows that are not JSON objects or have no integer step are left out and counted;
    a config that is not JSON is too; hostile names stay data."""
    when = "2026-12-01T10:00:00+00:00"
    hostile = "'); DROP TABLE runs;--<img src=x onerror=alert(1)>"
    path = _trackio(tmp_path / "proj.db", [
        ("r1", hostile, 0, when, json.dumps({"loss": 1.0})),
        ("r1", hostile, 1, when, b"{bad"),
        ("r1", hostile, 2, when, json.dumps([1, 2])),
        ("r1", hostile, None, when, json.dumps({"loss": 0.5})),
        ("r1", hostile, "abc", "not a time", json.dumps({"loss": 0.4})),
        ("r1", hostile, 5, "not a time", json.dumps({"loss": "Infinity", "acc": 0.9})),
    ], [("r1", hostile, b"\xff", when)])  # fmt: skip
    result = import_trackio(client, path)
    assert result.runs_new == 1
    assert dict(result.skipped) == {
        "a metrics row that is no JSON object": 2,
        "a metrics row whose step is no integer (NoneType)": 1,
        "a metrics row whose step is no integer (str)": 1,
        "a run's config that is no JSON object": 1,
    }
    run = imported(client)["proj/r1"]
    assert run["comment"] == hostile and run["args"] == {}
    assert [s for s, _, _ in history(client, run["id"], "acc")] == [5]
    assert client.query("SELECT count(*) FROM runs")[0][0] == 1


def test_a_broken_event_file_leaves_its_folder_out(client: Client, tmp_path: Path) -> None:
    need_tensorboard = need("torch.utils.tensorboard")
    writer = need_tensorboard.SummaryWriter(str(tmp_path / "logs" / "good"))
    writer.add_scalar("loss", 1.0, 0)
    writer.close()
    bad = tmp_path / "logs" / "bad"
    bad.mkdir()
    whole = next((tmp_path / "logs" / "good").iterdir()).read_bytes()
    (bad / "events.out.tfevents.1.host.2.0").write_bytes(whole[:16] + b"\xff" * 64)
    result = import_tensorboard(client, tmp_path / "logs")
    assert result.runs_new == 1 and [r["comment"] for r in imported(client).values()] == ["good"]
    assert [why.startswith(f"{bad}: ") for why in result.skipped] == [True]


@pytest.mark.parametrize("read", [import_trackio, import_tensorboard])
def test_a_loop_of_links_is_an_error(client: Client, tmp_path: Path, read: object) -> None:
    (tmp_path / "a").symlink_to(tmp_path / "b")
    (tmp_path / "b").symlink_to(tmp_path / "a")
    with pytest.raises(InvalidValue):
        read(client, tmp_path / "a")  # type: ignore[operator]
