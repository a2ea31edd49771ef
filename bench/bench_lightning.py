"""A Lightning fit with SqltrackLogger, against no logger and Lightning's other loggers.

A small MLP trained on CPU (one torch thread) for ``--steps`` steps, one epoch of batches
kept in memory, no validation, no checkpoints, no progress bar; every step logged
(``log_every_n_steps=1``: ``train/loss``, ``train/acc`` and Lightning's ``epoch``), with:
no logger (``logger=False``), ``SqltrackLogger`` (SQLite; also PostgreSQL with
``--engine postgres``), ``CSVLogger``, ``TensorBoardLogger`` and ``MLFlowLogger`` (a
``sqlite:///`` store). Each fit runs in a fresh interpreter (this script with ``--one
NAME``), which times only ``trainer.fit``, after an untimed warm-up fit without a logger;
a round runs every configuration once, in an order rotated each round. Figures are
medians over rounds (of each round's ratio, for ratios), with their min and max.

Two measures: the wall time of the fit (and the process's CPU time), against the fit
without a logger; and what logging cost each fit, measured inside it (the training
thread's time in Lightning's work for loggers and in the logger's methods and
properties, and the CPU time of threads a fit without a logger does not have), as a
share of the rest of that fit. Fresh interpreters on a shared machine differ by tens of
percent in speed; the second measure is immune to that, the first is not. Targets:
sqltrack at most 2 % over no logger, and cheaper than each of the other three loggers.

The database (sqltrack's schema, MLflow's tables) exists before the first round; each
fit makes its run there (with sqltrack's default provenance: environment and git state),
logs, and ends it, everything committed before ``fit`` returns. A logger whose package
the children's interpreter lacks (tensorboard, mlflow) is left out, and the script says
so; MLflow is not a dependency of sqltrack: give it an environment of its own
(``--python``; see docs/benchmarks.md).

    python bench/bench_lightning.py --engine sqlite
    python bench/bench_lightning.py --engine postgres        # a throwaway server, or --dsn
    python bench/bench_lightning.py --python /tmp/benchvenv/bin/python --rounds 7  # MLflow
    python bench/bench_lightning.py --quick                  # 50 steps, 1 round: it runs
    python bench/bench_lightning.py --only sqltrack --rounds 1 --profile /tmp/profiles
    python bench/bench_lightning.py --only sqltrack --rounds 1 --paired 10  # one interpreter
"""

from __future__ import annotations

import argparse
import csv
import functools
import inspect
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve()
#: the line of a child's output that holds its result
MARK = "BENCH-LIGHTNING "
#: the configurations, in the table's order: name -> (label, the module it needs)
CONFIGS: dict[str, tuple[str, str | None]] = {
    "none": ("no logger", None),
    "sqltrack-sqlite": ("SqltrackLogger, SQLite", None),
    "sqltrack-postgres": ("SqltrackLogger, PostgreSQL", "psycopg"),
    "csv": ("CSVLogger", None),
    "tensorboard": ("TensorBoardLogger", "tensorboard"),
    "mlflow": ("MLFlowLogger, sqlite:///", "mlflow"),
}
#: what each logger is compared with, for the targets
OTHERS = {"csv": "CSV", "tensorboard": "TB", "mlflow": "MLflow"}
#: the environment variable that gives a child sqltrack's connection parameters (JSON)
CLIENT_ENV = "SQLTRACK_BENCH_CLIENT"


# -- the child: one timed fit ------------------------------------------------------------


def child(args: argparse.Namespace) -> int:
    """Build the model and the logger, warm up, time one ``trainer.fit``; print JSON."""
    import warnings

    warnings.filterwarnings("ignore")  # Lightning's advice (workers, the litlogger tip)
    import logging

    logging.getLogger("lightning").setLevel(logging.ERROR)
    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
    import lightning as L
    import torch
    from torch import nn
    from torch.utils.data import DataLoader, Dataset

    torch.set_num_threads(args.threads)
    width, batch, features, sep = args.width, args.batch, 64, args.separator

    class Batches(Dataset[tuple[torch.Tensor, torch.Tensor]]):
        """``steps`` batches, cycling through 16 made once (so no collation per step)."""

        def __init__(self, steps: int) -> None:
            g = torch.Generator().manual_seed(0)
            self.steps = steps
            self.batches = [
                (torch.randn(batch, features, generator=g), torch.randint(0, 10, (batch,)))
                for _ in range(16)
            ]

        def __len__(self) -> int:
            return self.steps

        def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
            return self.batches[i % len(self.batches)]

    class MLP(L.LightningModule):
        def __init__(self, width: int, lr: float = 0.05) -> None:
            super().__init__()
            self.save_hyperparameters()  # logged by the logger at the fit's start
            self.net = nn.Sequential(
                nn.Linear(features, width), nn.ReLU(),
                nn.Linear(width, width), nn.ReLU(),
                nn.Linear(width, 10),
            )  # fmt: skip

        def training_step(self, batch: Any, index: int) -> torch.Tensor:
            x, y = batch
            out = self.net(x)
            loss = nn.functional.cross_entropy(out, y)
            self.log(f"train{sep}loss", loss)
            self.log(f"train{sep}acc", (out.argmax(1) == y).float().mean())
            return loss

        def configure_optimizers(self) -> torch.optim.Optimizer:
            return torch.optim.SGD(self.parameters(), lr=self.hparams.lr, momentum=0.9)

    def trainer(logger: Any) -> L.Trainer:
        return L.Trainer(
            logger=logger,
            max_epochs=1,
            log_every_n_steps=1,
            enable_progress_bar=False,
            enable_model_summary=False,
            enable_checkpointing=False,
            accelerator="cpu",
            devices=1,
            default_root_dir=os.getcwd(),
        )

    def loader(steps: int) -> DataLoader[Any]:
        return DataLoader(Batches(steps), batch_size=None)

    torch.manual_seed(0)
    trainer(False).fit(MLP(width), loader(args.warmup))  # warm up torch and Lightning, untimed

    names = args.one.split(",")
    for k in range(args.repeat):  # (several: fits in turn, the order rotated each time)
        shift = k % len(names)
        for name in names[shift:] + names[:shift]:
            result = timed_fit(name, args, MLP, loader, trainer)
            result["turn"] = k
            print(MARK + json.dumps(result), flush=True)
    return 0


def timed_fit(
    name: str, args: argparse.Namespace, MLP: Any, loader: Any, trainer: Any
) -> dict[str, Any]:
    """One timed fit of configuration ``name``: its times, and how many steps it stored."""
    import torch

    logger, check = make_logger(name, Path.cwd(), f"train{args.separator}loss")
    torch.manual_seed(1)
    model, data, fit = MLP(args.width), loader(args.steps), trainer(logger)
    meter = Meter()
    meter.watch(fit, logger)
    run = fit.fit
    if args.profile:
        import cProfile

        profile = cProfile.Profile()
        run = functools.partial(profile.runcall, fit.fit)
    cpu0, main0, t0 = time.process_time(), time.thread_time(), time.perf_counter()
    run(model, data)
    seconds = time.perf_counter() - t0
    cpu, main = time.process_time() - cpu0, time.thread_time() - main0
    if args.profile:
        profile.dump_stats(args.profile)  # (the last fit's, with --repeat)
    result = {"config": name, "seconds": seconds, "steps": int(fit.global_step)}
    # the CPU time of the whole process and of the training thread alone (a background
    # writer's is the difference), and the time the training thread spent logging
    result.update(cpu=cpu, main_cpu=main, **meter.split())
    result["logged"] = check()
    return result


class Meter:
    """The time the training thread spends logging, by where: ``lightning``, what Lightning
    does for loggers after each logged step (``_LoggerConnector.log_metrics``: tensors made
    numbers, then each logger's ``log_metrics`` and ``save``, counted apart); and each of
    the logger's methods and properties (a call inside another is not counted twice).
    About 0.3 us per call of its own."""

    METHODS = ("log_metrics", "log_hyperparams", "log_graph", "save", "finalize",
               "after_save_checkpoint")  # fmt: skip
    PROPERTIES = ("experiment", "version", "name", "log_dir", "save_dir", "root_dir")

    def __init__(self) -> None:
        #: seconds by method (outermost calls only); ``nested``: the logger's calls made
        #: from within Lightning's (already in ``lightning``)
        self.seconds: dict[str, float] = {"lightning": 0.0, "nested": 0.0}
        self._in_lightning = False
        self._in_logger = False

    def wrap(self, fn: Any, label: str) -> Any:
        clock, seconds = time.perf_counter, self.seconds
        seconds.setdefault(label, 0.0)

        @functools.wraps(fn)
        def lightning(*args: Any, **kwargs: Any) -> Any:
            if self._in_lightning:
                return fn(*args, **kwargs)
            self._in_lightning = True
            t0 = clock()
            try:
                return fn(*args, **kwargs)
            finally:
                seconds["lightning"] += clock() - t0
                self._in_lightning = False

        @functools.wraps(fn)
        def logger(*args: Any, **kwargs: Any) -> Any:
            if self._in_logger:
                return fn(*args, **kwargs)
            self._in_logger = True
            t0 = clock()
            try:
                return fn(*args, **kwargs)
            finally:
                took = clock() - t0
                seconds[label] += took
                if self._in_lightning:
                    seconds["nested"] += took
                self._in_logger = False

        return lightning if label == "lightning" else logger

    def watch(self, trainer: Any, logger: Any) -> None:
        """Time ``trainer``'s logging and ``logger``'s methods (its class is replaced by a
        subclass whose properties are timed)."""
        connector = trainer._logger_connector
        connector.log_metrics = self.wrap(connector.log_metrics, "lightning")
        if logger is False:
            return
        for name in self.METHODS:
            if hasattr(logger, name):
                setattr(logger, name, self.wrap(getattr(logger, name), name))
        cls = type(logger)
        timed = {}
        for name in self.PROPERTIES:
            prop = inspect.getattr_static(cls, name, None)
            if isinstance(prop, property) and prop.fget is not None:
                timed[name] = property(self.wrap(prop.fget, name))
        logger.__class__ = type(cls.__name__, (cls,), timed)

    def split(self) -> dict[str, float]:
        """Seconds of ``lightning`` (its own part), ``per_step`` (the logger's
        ``log_metrics`` and ``save``) and ``once`` (the rest: opening, hyperparameters,
        properties, ``finalize``)."""
        s = self.seconds
        per_step = s.get("log_metrics", 0.0) + s.get("save", 0.0)
        mine = sum(v for k, v in s.items() if k not in ("lightning", "nested"))
        return {"lightning": s["lightning"] - s["nested"], "per_step": per_step,
                "once": mine - per_step}  # fmt: skip


def make_logger(name: str, folder: Path, loss: str) -> tuple[Any, Any]:
    """The logger of configuration ``name`` (writing into ``folder``), and a function that
    counts the training steps whose metric ``loss`` it stored (None: not checked)."""
    if name == "none":
        return False, lambda: None
    if name.startswith("sqltrack"):
        import sqltrack as st
        from sqltrack.integrations.lightning import SqltrackLogger

        params = json.loads(os.environ[CLIENT_ENV])[name.split("-", 1)[1]]
        client = st.Client.of(**params)
        sq_logger = SqltrackLogger(experiment="bench-lightning", client=client)

        def stored() -> int:
            names, rows = st.read_metrics(client, sq_logger.run.id, [loss])
            return sum(1 for row in rows if row[names.index(loss)] is not None)

        return sq_logger, stored
    if name == "csv":
        from lightning.pytorch.loggers import CSVLogger

        csv_logger = CSVLogger(save_dir=folder)

        def rows() -> int:
            with open(Path(csv_logger.log_dir) / "metrics.csv") as f:
                return sum(1 for row in csv.DictReader(f) if row.get(loss))

        return csv_logger, rows
    if name == "tensorboard":
        from lightning.pytorch.loggers import TensorBoardLogger

        return TensorBoardLogger(save_dir=folder), lambda: None
    if name == "mlflow":
        from lightning.pytorch.loggers import MLFlowLogger

        ml_logger = MLFlowLogger(
            experiment_name="bench-lightning",
            tracking_uri=os.environ["SQLTRACK_BENCH_MLFLOW_URI"],
            artifact_location=str(folder / "mlruns"),
        )

        def logged() -> int:
            history = ml_logger.experiment.get_metric_history(ml_logger.run_id, loss)
            return len(history)

        return ml_logger, logged
    raise ValueError(f"no such configuration: {name}")


# -- the parent: rounds of children, the table, the figures ---------------------------------


def available(python: str) -> dict[str, bool]:
    """Which modules the children's interpreter can import (found, not imported)."""
    modules = ["torch", "lightning", "tensorboardX", *(m for _, m in CONFIGS.values() if m)]
    code = (
        "import importlib.util as u, json, sys\n"
        "print(json.dumps({m: u.find_spec(m) is not None for m in sys.argv[1:]}))"
    )
    done = subprocess.run([python, "-c", code, *modules], capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"cannot run {python}: {done.stderr.strip()[-500:]}")
    found: dict[str, bool] = json.loads(done.stdout)
    found["tensorboard"] |= found["tensorboardX"]  # Lightning's TensorBoardLogger takes either
    return found


def run_child(
    python: str, name: str, args: argparse.Namespace, env: dict[str, str], tmp: Path, r: int
) -> dict[str, Any]:
    """Round ``r``'s fit of configuration ``name``, in a fresh interpreter and a folder of
    its own."""
    profile = Path(args.profile).resolve() / f"{name}-{r + 1}.prof" if args.profile else None
    return run_fits(python, [name], 1, args, env, tmp, profile)[0]


def run_fits(
    python: str,
    names: list[str],
    turns: int,
    args: argparse.Namespace,
    env: dict[str, str],
    tmp: Path,
    profile: Path | None = None,
) -> list[dict[str, Any]]:
    """``turns`` fits of each configuration in ``names``, in turn, in one fresh
    interpreter and a folder of its own."""
    label = ",".join(names)
    folder = Path(tempfile.mkdtemp(prefix=f"{label.replace(',', '+')}-", dir=tmp))
    command = [
        python, "-W", "ignore", str(HERE), "--one", label, "--repeat", str(turns),
        "--steps", str(args.steps), "--warmup", str(args.warmup),
        "--threads", str(args.threads), "--width", str(args.width), "--batch", str(args.batch),
        "--separator", args.separator,
    ]  # fmt: skip
    if profile is not None:
        command += ["--profile", str(profile)]
    done = subprocess.run(command, capture_output=True, text=True, env=env, cwd=folder)
    shutil.rmtree(folder, ignore_errors=True)
    lines = [line for line in done.stdout.splitlines() if line.startswith(MARK)]
    if done.returncode != 0 or len(lines) != turns * len(names):
        raise SystemExit(
            f"the {label} fits failed (exit status {done.returncode}):\n"
            f"{done.stdout[-2000:]}\n{done.stderr[-3000:]}"
        )
    results = [json.loads(line[len(MARK) :]) for line in lines]
    for result in results:
        if result["logged"] is not None and result["logged"] != result["steps"]:
            raise SystemExit(f"{label}: {result['logged']} steps stored of {result['steps']}")
    return results


def spread(values: list[float], fmt: str) -> str:
    """``min to max`` of ``values``, each formatted with ``fmt``."""
    return f"{fmt.format(min(values))} to {fmt.format(max(values))}"


def parent(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from common import open_databases  # (not in the children: they import only theirs)

    found = available(args.python)
    if not (found["torch"] and found["lightning"]):
        print(f"{args.python} cannot import torch and lightning: pip install -e '.[test]'")
        return 0
    names = list(CONFIGS)
    if args.engine != "postgres":
        names.remove("sqltrack-postgres")
    if args.only:
        wanted = {"none"}
        for only in args.only:
            matches = [n for n in names if n == only or n.split("-")[0] == only]
            if not matches:
                parser.error(f"--only {only}: not one of {', '.join(names)} (or sqltrack)")
            wanted.update(matches)
        names = [n for n in names if n in wanted]
    for name in list(names):
        module = CONFIGS[name][1]
        if module and not found[module]:
            print(f"{CONFIGS[name][0]} left out: {args.python} cannot import {module}")
            names.remove(name)

    if args.profile:
        Path(args.profile).mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="sqltrack-bench-lightning-"))
    env = {**os.environ}
    env.pop("SQLTRACK_BENCH_RESULTS", None)  # (the children record nothing)
    clients = {}
    for engine in ("sqlite", "postgres"):
        if f"sqltrack-{engine}" in names:
            client, raw, _ = open_databases(engine, args.dsn if engine == "postgres" else None)
            raw.close()
            clients[engine] = {k: v for k, v in client.engine.params.items() if v is not None}
    env[CLIENT_ENV] = json.dumps(clients)
    if "mlflow" in names:  # its tables made once, as sqltrack's schema is (by setup)
        uri = env["SQLTRACK_BENCH_MLFLOW_URI"] = f"sqlite:///{tmp / 'mlflow.db'}"
        make = "import mlflow, sys; mlflow.MlflowClient(sys.argv[1]).search_experiments()"
        done = subprocess.run([args.python, "-c", make, uri], capture_output=True, text=True)
        if done.returncode != 0:
            raise SystemExit(f"could not make MLflow's database: {done.stderr[-2000:]}")

    ours = f"sqltrack-{args.engine}"
    print(
        f"Lightning fit on CPU ({args.threads} torch thread{'s' * (args.threads > 1)}), "
        f"MLP {args.width} wide, batch {args.batch}, {args.steps:,} steps, every one logged "
        f"(train{args.separator}loss, train{args.separator}acc, epoch); "
        f"{args.rounds} round{'s' * (args.rounds > 1)} of {', '.join(names)}",
        flush=True,
    )
    started = time.monotonic()
    fits: dict[str, list[dict[str, Any]]] = {n: [] for n in names}
    for r in range(args.rounds):
        shift = r % len(names)
        for name in names[shift:] + names[:shift]:
            fits[name].append(run_child(args.python, name, args, env, tmp, r))
        line = ", ".join(f"{n} {fits[n][-1]['seconds']:.2f} s" for n in names)
        print(f"  round {r + 1}: {line}", flush=True)

    took = time.monotonic() - started
    print(f"({len(names) * args.rounds} fits in {took:.0f} s, with each interpreter's start)")
    report(fits, ours, args)
    if args.paired and ours in names:
        paired(run_fits(args.python, ["none", ours], args.paired, args, env, tmp), ours)
    shutil.rmtree(tmp, ignore_errors=True)
    return 0


def report(fits: dict[str, list[dict[str, Any]]], ours: str, args: argparse.Namespace) -> None:
    """Print the tables and record the figures, ``ours`` (a sqltrack configuration)
    against the others."""
    from common import record

    names = list(fits)

    def ratios(a: str, b: str, key: str = "seconds") -> list[float]:
        """Each round's ``key`` of ``a`` over ``b``'s."""
        return [x[key] / y[key] for x, y in zip(fits[a], fits[b], strict=True)]

    def median_of(values: list[float], fmt: str) -> str:
        median = fmt.format(statistics.median(values))
        return median if len(values) < 2 else f"{median} ({spread(values, fmt)})"

    def per_step(name: str, key: str, scale: float = 1e6) -> str:
        return median_of([f[key] * scale / f["steps"] for f in fits[name]], "{:.1f}")

    # What logging cost each fit: the training thread's time in Lightning's work for
    # loggers and in the logger, and the CPU time of threads that a fit without a logger
    # does not have (sqltrack's writer, TensorBoard's).
    idle = statistics.median(f["cpu"] - f["main_cpu"] for f in fits["none"])
    for f in (f for runs in fits.values() for f in runs):
        f["threads"] = max(0.0, f["cpu"] - f["main_cpu"] - idle)
        f["cost"] = f["lightning"] + f["per_step"] + f["once"] + f["threads"]
        f["share"] = 100 * f["cost"] / (f["seconds"] - f["cost"])

    rounds = f"{args.rounds} round{'s' * (args.rounds > 1)}"
    print(
        f"\nMedians of {rounds} (min to max). Over no logger: each round's fit over its fit "
        "without a logger (wall time; the process's CPU time). Logging's share: what logging "
        "cost the fit (below), over the rest of the same fit."
    )
    has_ours = ours in names
    head = "| logger | fit (s) | wall over no logger | CPU over no logger | logging's share |"
    head += f" {CONFIGS[ours][0]} / this: fit; logging |" if has_ours else ""
    print(f"{head}\n|{'---|' * head.count(' |')}")
    for name in names:
        runs = fits[name]
        cells = [
            CONFIGS[name][0],
            median_of([f["seconds"] for f in runs], "{:.3f}"),
            median_of([100 * x - 100 for x in ratios(name, "none")], "{:+.1f} %"),
            median_of([100 * x - 100 for x in ratios(name, "none", "cpu")], "{:+.1f} %"),
            median_of([f["share"] for f in runs], "{:.2f} %"),
        ]
        if name == "none":
            cells[2:4] = ["", ""]
        if has_ours:
            mine = name in ("none", ours)
            both = f"{median_of(ratios(ours, name), '{:.3f}')}; "
            both += f"{statistics.median(ratios(ours, name, 'cost')):.3f}"
            cells.append("" if mine else both)
        print("| " + " | ".join(cells) + " |")
    base = statistics.median(f["seconds"] for f in fits["none"])
    print(f"(no logger: {base * 1e3 / args.steps:.3f} ms per step)")

    print(
        "\nWhat logging cost a fit, per step (us; once: ms per fit): the training thread's "
        "time in Lightning's work for loggers (tensors made numbers) and in the logger's "
        "log_metrics and save; the CPU time of the logger's threads; the logger's other "
        "calls (opening, hyperparameters, finalize)."
    )
    head = "| logger | Lightning's work | log_metrics + save | its threads | once (ms) | in all |"
    print(f"{head}\n|{'---|' * head.count(' |')}")
    for name in names[1:]:
        cells = [
            CONFIGS[name][0],
            per_step(name, "lightning"),
            per_step(name, "per_step"),
            per_step(name, "threads"),
            median_of([f["once"] * 1e3 for f in fits[name]], "{:.1f}"),
            per_step(name, "cost"),
        ]
        print("| " + " | ".join(cells) + " |")

    if has_ours:
        over = statistics.median(ratios(ours, "none")) * 100 - 100
        cpu_over = statistics.median(ratios(ours, "none", "cpu")) * 100 - 100
        share = statistics.median(f["share"] for f in fits[ours])
        print(
            f"\n{CONFIGS[ours][0]}: its fit {over:+.2f} % over no logger's in wall time "
            f"(target <= 2 %; {cpu_over:+.2f} % in CPU time); logging {share:.2f} % of its fit"
        )
        record("lightning: SqltrackLogger's fit over no logger's, wall (%)", over, "<= 2")
        record("lightning: SqltrackLogger's logging, share of its fit (%)", share, "<= 2")
        for name, short in OTHERS.items():
            if name in names:
                vs = statistics.median(ratios(ours, name))
                cost_vs = statistics.median(ratios(ours, name, "cost"))
                faster = "yes" if vs < 1 else "NO"
                print(
                    f"  / {CONFIGS[name][0]}: fit {vs:.3f} (target < 1: {faster}), logging "
                    f"{cost_vs:.3f} (target < 1: {'yes' if cost_vs < 1 else 'NO'})"
                )
                record(f"lightning: SqltrackLogger's fit / {short} logger's", vs, "< 1")
                record(f"lightning: SqltrackLogger's logging / {short} logger's", cost_vs, "< 1")


def paired(results: list[dict[str, Any]], ours: str) -> None:
    """Report the fits of one interpreter: no logger's and ``ours``, in turns."""
    from common import record

    turns: dict[int, dict[str, dict[str, Any]]] = {}
    for result in results:
        turns.setdefault(result["turn"], {})[result["config"]] = result

    def over(key: str) -> list[float]:
        return [100 * t[ours][key] / t["none"][key] - 100 for t in turns.values()]

    wall, cpu = over("seconds"), over("cpu")
    base = statistics.median(t["none"]["seconds"] for t in turns.values())
    print(
        f"\nIn one interpreter, {len(turns)} turns of no logger and {CONFIGS[ours][0]} "
        f"(no logger: {base * 1e3 / results[0]['steps']:.3f} ms per step): its fit "
        f"{statistics.median(wall):+.2f} % over no logger's in wall time "
        f"({spread(wall, '{:+.2f} %')}; target <= 2 %), {statistics.median(cpu):+.2f} % in "
        f"CPU time ({spread(cpu, '{:+.2f} %')})"
    )
    record(
        "lightning: SqltrackLogger's fit over no logger's, one interpreter, wall (%)",
        statistics.median(wall),
        "<= 2",
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--engine", choices=["postgres", "sqlite"], default="sqlite")
    parser.add_argument("--dsn", help="an existing PostgreSQL server (--engine postgres)")
    parser.add_argument("--steps", type=int, default=2000, help="training steps per fit")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument(
        "--only",
        action="append",
        metavar="NAME",
        help="only these loggers, and no logger (repeatable: sqltrack, sqltrack-sqlite, "
        "sqltrack-postgres, csv, tensorboard, mlflow)",
    )
    parser.add_argument("--quick", action="store_true", help="50 steps, 1 round: it runs")
    parser.add_argument(
        "--python", default=sys.executable, help="the children's interpreter (e.g. with mlflow)"
    )
    parser.add_argument("--threads", type=int, default=1, help="torch's threads in a fit")
    parser.add_argument("--width", type=int, default=128, help="the MLP's hidden width")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--warmup", type=int, default=50, help="steps of the untimed fit")
    parser.add_argument(
        "--separator",
        default="/",
        help="of the metric names (train/loss; '_': train_loss, names sqltrack stores in "
        "the wide table, as columns)",
    )
    parser.add_argument(
        "--profile",
        metavar="DIR",
        help="cProfile each fit's training thread into DIR/NAME-ROUND.prof (figures then "
        "include the profiler's cost)",
    )
    parser.add_argument(
        "--paired",
        type=int,
        default=0,
        metavar="TURNS",
        help="then, in one interpreter, TURNS fits without a logger and with sqltrack's, "
        "in turn: the wall time over no logger that interpreters' speeds do not blur",
    )
    parser.add_argument("--one", help=argparse.SUPPRESS)  # a child: its fits (NAME,NAME)
    parser.add_argument("--repeat", type=int, default=1, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.quick:
        args.steps, args.rounds, args.warmup = 50, 1, 5
    if args.one:
        return child(args)
    return parent(args, parser)


if __name__ == "__main__":
    sys.exit(main())
