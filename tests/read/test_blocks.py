"""Metric blocks (schema v012): kept by a tracked run as it logs, rebuilt by refresh, and
what a chart of a long run is read from (sqltrack._write.blocks, sqltrack._read.curves),
on both engines."""

from __future__ import annotations

import random

import pytest

import sqltrack as st
from sqltrack import Client, Experiment, Run
from sqltrack._live.upkeep import Upkeep
from sqltrack._read import curves
from sqltrack._read.curves import run_curves
from sqltrack._write.blocks import SIZE
from tests.conftest import q

_BLOCKS = "SELECT * FROM metric_blocks WHERE run_id = ? ORDER BY metric, block"


def _expected(values: dict[int, float], points: int) -> list[tuple[int, float]]:
    """The curve of ``values`` (step: value) from whole blocks, as the module says: per
    bucket of whole blocks, the first step of its smallest and of its largest value; and
    the last point."""
    buckets = (points - 1) // 2
    steps = sorted(values)
    origin = min(s // SIZE for s in steps) * SIZE
    width = SIZE * ((steps[-1] - origin) // (SIZE * buckets) + 1)
    groups: dict[int, list[int]] = {}
    for s in steps:
        groups.setdefault((s - origin) // width, []).append(s)
    out = {(steps[-1], values[steps[-1]])}
    for group in groups.values():
        for extreme in (min, max):
            best = extreme(values[s] for s in group)
            out.add((min(s for s in group if values[s] == best), best))
    return sorted(out)


def _log(run: Run, values: dict[int, float], names: list[str], buffered: bool) -> None:
    with run.track(buffered=buffered):
        for step, value in values.items():
            run.add_metrics(dict.fromkeys(names, value), step=step)


@pytest.mark.parametrize("buffered", [False, True], ids=["sync", "buffered"])
def test_a_long_curve_is_read_from_blocks_with_every_extreme(
    client: Client, buffered: bool
) -> None:
    rng = random.Random(7)
    values = {s: rng.gauss(0, 1) for s in range(-40, 40_000, 3)}
    values[20_002], values[30_001] = 99.0, -99.0  # one step each: a spike and a dip
    run = Experiment(client, name="e").get_run()
    _log(run, values, ["loss", "train/loss"], buffered)  # a wide and a narrow metric
    plans = curves._plans(client, run.id, ["loss", "train/loss"], 1000)
    assert set(plans) == {"loss", "train/loss"}  # (the blocks are what is read)
    for points in (1000, 301):
        found = run_curves(client, run.id, ["loss", "train/loss"], points)
        for name in ("loss", "train/loss"):
            curve = list(zip(found[name]["step"], found[name]["value"], strict=True))
            assert curve == _expected(values, points)
            assert len(curve) <= points and (20_002, 99.0) in curve and (30_001, -99.0) in curve


@pytest.mark.parametrize("buffered", [False, True], ids=["sync", "buffered"])
def test_blocks_kept_at_heartbeats_are_those_a_rebuild_makes(
    client: Client, buffered: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(Upkeep, "share", 0)  # an update at every heartbeat
    run = Experiment(client, name="e").get_run()
    run.heartbeat_seconds = 0  # (a heartbeat at every step of the synchronous path)
    values = {s: float((s * 7919) % 101) for s in range(1000)}
    with run.track(buffered=buffered):
        for step, value in values.items():
            run.add_metrics({"acc": value, "n": int(value), "val/acc": value}, step=step)
    kept = q(client, _BLOCKS, run.id)
    assert len(kept) == 3 * (1000 // SIZE + 1)  # whole blocks and a part, per metric
    st.refresh_summaries(client, run.id)
    assert q(client, _BLOCKS, run.id) == kept
    block = next(b for b in kept if b[1] == "acc" and b[2] == 3)
    inside = {s: values[s] for s in range(3 * SIZE, 4 * SIZE)}
    low, high = min(inside.values()), max(inside.values())
    assert block[3:] == (
        SIZE, low, min(s for s in inside if inside[s] == low),
        high, min(s for s in inside if inside[s] == high), values[4 * SIZE - 1], 4 * SIZE - 1, 0.0,
    )  # fmt: skip
    st.delete_runs(client, [run.id])
    st.gc_deleted(client, deleted_before=0)
    assert q(client, _BLOCKS, run.id) == []


def test_values_after_the_last_block_are_read_raw_and_a_refresh_sees_rewrites(
    client: Client,
) -> None:
    values = {s: float(s % 97) for s in range(20_000)}
    run = Experiment(client, name="e").get_run()
    _log(run, values, ["loss"], buffered=False)
    before = q(client, _BLOCKS, run.id)
    later = {s: -float(s) for s in range(20_000, 21_000)}  # by SQL: no block knows them
    with client:
        for step, value in later.items():
            q(client, "INSERT INTO metrics (run_id, step, progress, loss) VALUES (?, ?, 0, ?)",
              run.id, step, value)  # fmt: skip
    assert q(client, _BLOCKS, run.id) == before
    # (150 buckets of 21,000 steps: 140 steps each, wider than a block, so blocks are read)
    assert "loss" in curves._plans(client, run.id, ["loss"], 301)
    curve = run_curves(client, run.id, ["loss"], 301)["loss"]
    both = {**values, **later}
    assert list(zip(curve["step"], curve["value"], strict=True)) == _expected(both, 301)
    # a value rewritten behind the blocks is seen once summaries and blocks are refreshed
    q(client, "UPDATE metrics SET loss = 500 WHERE run_id = ? AND step = 777", run.id)
    st.refresh_summaries(client, run.id)
    curve = run_curves(client, run.id, ["loss"], 301)["loss"]
    assert _expected({**both, 777: 500.0}, 301) == list(
        zip(curve["step"], curve["value"], strict=True)
    )


def test_a_requeued_job_that_logs_again_from_a_checkpoint_gets_its_blocks_rebuilt(
    client: Client,
) -> None:
    run = Experiment(client, name="e").get_run()
    _log(run, {s: 1.0 for s in range(3000)}, ["loss"], buffered=False)
    again = Run(client, run.experiment_id, run.id)  # the requeued job: from step 1000 on
    _log(again, {s: 2.0 for s in range(1000, 4000)}, ["loss"], buffered=True)
    kept = q(client, _BLOCKS, run.id)
    st.refresh_summaries(client, run.id)
    assert q(client, _BLOCKS, run.id) == kept
    assert sum(b[3] for b in kept) == 4000  # steps 1000 to 2999 were logged again
    mixed = 1000 // SIZE  # the block of steps of both the first job and the requeued one
    assert {(b[2], b[4], b[6]) for b in kept if abs(b[2] - mixed) <= 1} == {
        (mixed - 1, 1.0, 1.0),
        (mixed, 1.0, 2.0),
        (mixed + 1, 2.0, 2.0),
    }  # (min and max of each)


def test_a_short_curve_is_read_raw(client: Client) -> None:
    run = Experiment(client, name="e").get_run()
    _log(run, {s: float(s) for s in range(5000)}, ["loss"], buffered=False)
    assert curves._plans(client, run.id, ["loss"], 1000) == {}  # (buckets under a block)
    assert curves._plans(client, run.id, ["loss"], 101) != {}
    everything = run_curves(client, run.id, ["loss"], 5000)["loss"]
    assert everything["step"] == list(range(5000))


@pytest.mark.parametrize("buffered", [False, True], ids=["sync", "buffered"])
def test_a_database_before_v012_charts_raw_until_setup_and_refresh_build_its_blocks(
    empty_client: Client, buffered: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sqltrack._db import schema

    scripts = schema.builtin_scripts
    monkeypatch.setattr(
        schema, "builtin_scripts", lambda engine: [p for p in scripts(engine) if p.name < "v012"]
    )
    st.setup(empty_client)
    values = {s: float(s % 89) for s in range(0, 60_000, 2)}
    run = Experiment(empty_client, name="e").get_run()
    _log(run, values, ["loss", "train/loss"], buffered)  # tracked, with no table of blocks
    assert curves._plans(empty_client, run.id, ["loss"], 301) == {}
    raw = run_curves(empty_client, run.id, ["loss", "train/loss"], 301)
    assert raw["loss"] == raw["train/loss"] and (59_998, values[59_998]) in zip(
        raw["loss"]["step"], raw["loss"]["value"], strict=True
    )
    monkeypatch.setattr(schema, "builtin_scripts", scripts)
    assert [r.name for r in st.setup(empty_client) if r.applied] == [schema.BLOCKS]
    assert q(empty_client, _BLOCKS, run.id) == []  # (setup builds no blocks: refresh does)
    st.refresh_summaries(empty_client, run.id)
    assert set(curves._plans(empty_client, run.id, ["loss", "train/loss"], 301)) == {
        "loss", "train/loss",
    }  # fmt: skip
    for name in ("loss", "train/loss"):
        found = run_curves(empty_client, run.id, [name], 301)[name]
        assert list(zip(found["step"], found["value"], strict=True)) == _expected(values, 301)
