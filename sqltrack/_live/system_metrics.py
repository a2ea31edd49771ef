"""System metrics sampled while a run is tracked: ``track(system_metrics=SECONDS)``.

A daemon thread samples every ``SECONDS`` (also ``$SQLTRACK_SYSTEM_METRICS``) and writes
one row per measure to the narrow table ``system_metrics`` (run_id, time, name, value;
schema version 6), through a connection of its own:

- ``cpu_percent``: this process's CPU time over wall time since the last sample (100 =
  one core busy), ``rss_bytes``: its resident memory, ``host_memory_used_bytes``: the
  machine's memory in use (total minus available);
- per GPU allocated to this job (``CUDA_VISIBLE_DEVICES``, else ``SLURM_JOB_GPUS``, else
  all), through NVML (``pip install 'sqltrack[gpu]'``: nvidia-ml-py): ``gpuN.
  utilization_percent``, ``gpuN.memory_used_bytes``, ``gpuN.power_watts``,
  ``gpuN.temperature_c`` (N: the physical index). Without NVML: no GPU measures.

Samples are kept in memory and written every :attr:`SystemSampler.write_seconds` (30 s)
and when the run ends, releasing the connection in between. The sampler never raises
into training: an error is logged once and that sample (or
measure) is skipped; samples taken while the database is unreachable are dropped.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from datetime import datetime, timezone
from typing import Any

from .._db.client import Client
from .._db.schema import SYSTEM_METRICS, applied

log = logging.getLogger("sqltrack")
_INSERT = (
    "INSERT INTO system_metrics (run_id, time, name, value) VALUES (:run, :time, :name, :value) "
    "ON CONFLICT (run_id, name, time) DO NOTHING"
)


def sampling_interval(seconds: Any) -> float | None:
    """``track(system_metrics=…)``: seconds > 0, or None for ``$SQLTRACK_SYSTEM_METRICS``
    (:func:`interval_from_env`)."""
    if seconds is None:
        return interval_from_env()
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or not seconds > 0:
        from ..errors import InvalidValue

        raise InvalidValue(f"system_metrics must be seconds > 0, got {seconds!r}")
    return float(seconds)


def interval_from_env() -> float | None:
    """``$SQLTRACK_SYSTEM_METRICS`` as seconds (None when unset, empty or 0)."""
    text = os.environ.get("SQLTRACK_SYSTEM_METRICS", "").strip()
    if not text:
        return None
    try:
        seconds = float(text)
    except ValueError:
        from ..errors import ConfigError

        raise ConfigError(
            f"SQLTRACK_SYSTEM_METRICS must be seconds between samples, got {text!r}"
        ) from None
    return seconds if seconds > 0 else None


def allocated_gpus(count: int) -> list[int]:
    """The physical indices of the GPUs this job may use, of ``count`` present."""
    for variable in ("CUDA_VISIBLE_DEVICES", "SLURM_JOB_GPUS"):
        text = os.environ.get(variable)
        if text is not None:
            return [int(i) for i in text.split(",") if i.strip().isdigit() and int(i) < count]
    return list(range(count))


def _rss_bytes() -> float:
    with open("/proc/self/statm") as f:
        return float(int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE"))


def _host_memory_used() -> float:
    values = {}
    with open("/proc/meminfo") as f:
        for line in f:
            key, _, rest = line.partition(":")
            values[key] = int(rest.split()[0]) * 1024
    return float(values["MemTotal"] - values["MemAvailable"])


class SystemSampler:
    """The sampling thread of one tracked run (:meth:`start`, :meth:`stop`)."""

    #: samples are kept in memory and written this often (seconds), and at the end: a
    #: job connects to the database once per interval, not once per sample
    write_seconds = 30.0

    def __init__(self, client: Client, run_id: int, seconds: float) -> None:
        self.run_id = run_id
        self.seconds = seconds
        self._client = Client.of(**client.engine.params)
        self._stop = threading.Event()
        self._warned: set[str] = set()
        self._samples: list[tuple[datetime, dict[str, float]]] = []
        self._written = time.monotonic()
        self._cpu = (time.process_time(), time.monotonic())
        self._nvml: Any = None
        self._gpus: list[tuple[int, Any]] = []
        self._thread = threading.Thread(
            target=self._loop, name=f"sqltrack-system-{run_id}", daemon=True
        )

    def start(self) -> SystemSampler:
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop sampling (waits for a sample being written) and close the connection."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=15.0)  # (a connect attempt takes up to 10 s)
        self._client.discard()

    def _warn_once(self, what: str, exc: BaseException) -> None:
        if what not in self._warned:
            self._warned.add(what)
            log.warning("sqltrack: run %s: system metric %s: %s", self.run_id, what, exc)

    def _open_gpus(self) -> None:
        try:
            import pynvml  # type: ignore[import-not-found]  # nvidia-ml-py: sqltrack[gpu]
        except ImportError:
            return
        try:
            pynvml.nvmlInit()
            allowed = allocated_gpus(pynvml.nvmlDeviceGetCount())
            self._gpus = [(i, pynvml.nvmlDeviceGetHandleByIndex(i)) for i in allowed]
            self._nvml = pynvml
        except Exception as e:
            self._warn_once("gpu", e)

    def measure(self) -> dict[str, float]:
        """One sample of every measure that can be read (the others are skipped)."""
        values: dict[str, float] = {}
        cpu, now = time.process_time(), time.monotonic()
        last_cpu, last_now = self._cpu
        self._cpu = (cpu, now)
        if now > last_now:
            values["cpu_percent"] = 100.0 * (cpu - last_cpu) / (now - last_now)
        reads = (("rss_bytes", _rss_bytes), ("host_memory_used_bytes", _host_memory_used))
        for name, read in reads:
            try:
                values[name] = read()
            except Exception as e:
                self._warn_once(name, e)
        nvml = self._nvml
        for index, handle in self._gpus:
            try:
                values[f"gpu{index}.utilization_percent"] = float(
                    nvml.nvmlDeviceGetUtilizationRates(handle).gpu
                )
                values[f"gpu{index}.memory_used_bytes"] = float(
                    nvml.nvmlDeviceGetMemoryInfo(handle).used
                )
                values[f"gpu{index}.power_watts"] = nvml.nvmlDeviceGetPowerUsage(handle) / 1000
                values[f"gpu{index}.temperature_c"] = float(
                    nvml.nvmlDeviceGetTemperature(handle, nvml.NVML_TEMPERATURE_GPU)
                )
            except Exception as e:
                self._warn_once(f"gpu{index}", e)
        return values

    def _write(self, samples: list[tuple[datetime, dict[str, float]]]) -> None:
        client = self._client
        with client:
            for when, values in samples:
                at = client.engine.adapt_datetime(when)
                for name, value in values.items():
                    params = {"run": self.run_id, "time": at, "name": name, "value": value}
                    client.query(_INSERT, params)
        client.release()  # a server connection only while writing (many jobs, few slots)

    def _flush(self) -> None:
        samples, self._samples = self._samples, []
        self._written = time.monotonic()
        if samples:
            try:
                self._write(samples)
            except Exception as e:  # never into training: said once, the samples dropped
                self._client.discard()
                self._warn_once("write", e)

    def _loop(self) -> None:
        try:
            if not applied(self._client, SYSTEM_METRICS):
                log.warning(
                    "sqltrack: run %s: no system metrics: the database needs %s "
                    "(run `sqltrack setup`)",
                    self.run_id,
                    SYSTEM_METRICS,
                )
                return
            self._client.release()
            self._open_gpus()
        except Exception as e:
            self._warn_once("setup", e)
            return
        due = time.monotonic()
        while True:  # at a fixed rate: the time a sample takes does not add up
            due = max(due + self.seconds, time.monotonic())  # (samples missed: not caught up)
            if self._stop.wait(due - time.monotonic()):
                self._flush()
                return
            try:
                self._samples.append((datetime.now(timezone.utc), self.measure()))
            except Exception as e:
                self._warn_once("sample", e)
            if time.monotonic() - self._written >= self.write_seconds:
                self._flush()
