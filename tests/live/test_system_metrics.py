"""System metrics while a run is tracked (sqltrack._live.system_metrics), on both engines.
CPU and memory are real; the GPU part uses a fake NVML module (pynvml)."""

from __future__ import annotations

import logging
import sys
import time
import types
from typing import Any

import pytest
from conftest import q

import sqltrack as st
from sqltrack import Client, Run
from sqltrack._live.system_metrics import SystemSampler, allocated_gpus


def _counts(client: Client, run_id: int) -> dict[str, int]:
    rows = q(
        client, "SELECT name, count(*) FROM system_metrics WHERE run_id = ? GROUP BY name", run_id
    )
    return {name: int(n) for name, n in rows}


def _fake_nvml(count: int) -> types.ModuleType:
    nvml: Any = types.ModuleType("pynvml")
    nvml.NVML_TEMPERATURE_GPU = 0
    nvml.nvmlInit = lambda: None
    nvml.nvmlDeviceGetCount = lambda: count
    nvml.nvmlDeviceGetHandleByIndex = lambda i: i
    nvml.nvmlDeviceGetUtilizationRates = lambda h: types.SimpleNamespace(gpu=50 + h)
    nvml.nvmlDeviceGetMemoryInfo = lambda h: types.SimpleNamespace(used=(h + 1) * 2**30)
    nvml.nvmlDeviceGetPowerUsage = lambda h: 250_000  # milliwatts
    nvml.nvmlDeviceGetTemperature = lambda h, sensor: 60 + h
    return nvml


def test_samples_at_the_interval_for_the_allocated_gpus_only(
    run: Run, client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "pynvml", _fake_nvml(4))
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "1,3")
    with run.track(system_metrics=0.2):
        end = time.monotonic() + 2.1
        while time.monotonic() < end:  # a busy loop: the CPU measure has something to see
            sum(range(1000))
    counts = _counts(client, run.id)
    assert set(counts) == {
        "cpu_percent", "rss_bytes", "host_memory_used_bytes",
        *(f"gpu{i}.{m}" for i in (1, 3) for m in (
            "utilization_percent", "memory_used_bytes", "power_watts", "temperature_c")),
    }  # fmt: skip
    assert all(9 <= n <= 11 for n in counts.values()), counts  # 10 ± 1 samples
    values = dict(q(client, "SELECT name, max(value) FROM system_metrics GROUP BY name"))
    assert values["gpu3.temperature_c"] == 63 and values["gpu1.power_watts"] == 250
    assert values["gpu3.memory_used_bytes"] == 4 * 2**30
    assert 50 < values["cpu_percent"] <= 200  # busy: about one core
    assert values["rss_bytes"] > 10 * 2**20


def test_allocated_gpus(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    monkeypatch.delenv("SLURM_JOB_GPUS", raising=False)
    assert allocated_gpus(2) == [0, 1]
    monkeypatch.setenv("SLURM_JOB_GPUS", "2")
    assert allocated_gpus(4) == [2]
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert allocated_gpus(4) == []  # no GPU for this job


def test_a_failing_sampler_never_disturbs_the_run(
    run: Run, client: Client, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(self: SystemSampler) -> dict[str, float]:
        raise RuntimeError("no /proc here")

    monkeypatch.setattr(SystemSampler, "measure", broken)
    caplog.set_level(logging.WARNING, "sqltrack")
    with run.track(system_metrics=0.05):
        for step in range(20):
            run.add_metrics({"loss": 1.0}, step=step)
            time.sleep(0.01)
    assert q(client, "SELECT status FROM runs WHERE id = ?", run.id) == [("COMPLETED",)]
    assert len(st.read_metrics(client, run.id)[1]) == 20
    assert caplog.text.count("no /proc here") == 1  # said once


def test_off_by_default_and_from_the_environment(
    run: Run, client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    with run.track():
        time.sleep(0.2)
    assert _counts(client, run.id) == {}
    monkeypatch.setenv("SQLTRACK_SYSTEM_METRICS", "0.1")
    again = st.Run(client, run_id=run.id)
    with again.track():
        time.sleep(0.55)
    assert 4 <= _counts(client, run.id)["rss_bytes"] <= 6


@pytest.mark.parametrize("value", [0, -1, True, "10"])
def test_bad_intervals(run: Run, value: Any) -> None:
    with pytest.raises(st.InvalidValue, match="system_metrics must be seconds"):
        with run.track(system_metrics=value):
            pass


def test_a_bad_environment_value(run: Run, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SQLTRACK_SYSTEM_METRICS", "often")
    with pytest.raises(st.ConfigError, match="SQLTRACK_SYSTEM_METRICS"):
        with run.track():
            pass
