"""Learning curves into an image (sqltrack._read.plot, `sqltrack plot`), on both engines."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from conftest import cli_options

import sqltrack as st
from sqltrack import Client, Experiment
from sqltrack._read.plot import curve_labels, plot_curves
from sqltrack.cli import main

pytest.importorskip("matplotlib", reason="sqltrack plot needs matplotlib (the test extra)")


def test_sqltrack_plot_draws_curves(
    client: Client, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: Any
) -> None:
    exp = Experiment(client, name="curves")
    runs = [exp.get_run(), exp.get_run()]
    for i, run in enumerate(runs):
        for step in range(20):
            run.add_metrics({"val_loss": 1.0 / (step + 1 + i)}, step=step, progress=step / 20)
    out = tmp_path / "curves.png"
    ids = [str(r.id) for r in runs]
    assert (
        main(
            [
                "plot",
                *cli_options(client),
                *ids,
                "--metric",
                "val_loss",
                "-o",
                str(out),
            ]
        )
        == 0
    )
    assert capsys.readouterr().out.strip() == f"{out}: 2 runs, 40 points of val_loss"
    png = out.read_bytes()
    assert png.startswith(b"\x89PNG") and len(png) > 10_000  # lines, labels, a legend
    svg = tmp_path / "curves.svg"
    assert main(["plot", *cli_options(client), ids[0], "--metric", "val_loss", "--x",
                 "progress", "-o", str(svg)]) == 0  # fmt: skip
    assert "<svg" in svg.read_text()
    assert main(["plot", *cli_options(client), ids[0], "--metric", "nope", "-o", str(out)]) == 1
    assert "no such metric: 'nope'" in capsys.readouterr().err
    import builtins

    real_import = builtins.__import__

    def no_matplotlib(name: str, *args: Any, **kwargs: Any) -> Any:
        if name.startswith("matplotlib"):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_matplotlib)
    assert main(["plot", *cli_options(client), ids[0], "--metric", "val_loss"]) == 1
    assert "pip install 'sqltrack[plot]'" in capsys.readouterr().err


@pytest.fixture
def figures(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """The figures that plot_curves saves, kept for the test to look at."""
    from matplotlib.figure import Figure

    saved: list[Any] = []
    real = Figure.savefig

    def keep(self: Any, *args: Any, **kwargs: Any) -> Any:
        saved.append(self)
        return real(self, *args, **kwargs)

    monkeypatch.setattr(Figure, "savefig", keep)
    return saved


@pytest.fixture
def sweep(client: Client) -> list[st.Run]:
    """Three runs of "sweep" that differ in lr (two of them share it) and a fourth with no
    args, each with train_loss at every step and val_loss at a few."""
    exp = Experiment(client, name="sweep")
    runs = []
    for lr in (0.1, 0.01, 0.01, None):
        run = exp.get_run()
        if lr is not None:
            run.set_args({"lr": lr, "seed": 0, "opt": "adam"})
        for step in range(20):
            values = {"train_loss": 1.0 / (step + 1) + (lr or 0)}
            if step % 5 == 4:
                values["val_loss"] = values["train_loss"] + 0.1
            run.add_metrics(values, step=step, progress=step / 20)
        runs.append(run)
    return runs


@pytest.mark.parametrize("metrics", [["train_loss,val_loss"], ["train_loss", "val_loss"]])
def test_several_metrics_one_panel_each_with_a_title_and_args_in_the_legend(
    client: Client,
    sweep: list[st.Run],
    figures: list[Any],
    metrics: list[str],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    out = tmp_path / "curves.svg"
    ids = [str(r.id) for r in sweep]
    flags = [item for m in metrics for item in ("--metric", m)]
    assert main(["plot", *cli_options(client), *ids, *flags, "--log-y", "-o", str(out)]) == 0
    assert capsys.readouterr().out == f"{out}: 4 runs, 96 points of train_loss, val_loss\n"
    assert "<svg" in out.read_text()
    [figure] = figures
    top, bottom = figure.axes
    assert figure._suptitle.get_text() == "sweep: train_loss, val_loss"
    assert (top.get_ylabel(), bottom.get_ylabel(), bottom.get_xlabel()) == (
        "train_loss",
        "val_loss",
        "step",
    )
    assert top.get_yscale() == bottom.get_yscale() == "log" and top.get_xscale() == "linear"
    _, b, c, d = sweep  # the args that differ, a missing one too (as sqltrack compare)
    labels = [t.get_text() for t in top.get_legend().get_texts()]
    assert labels == ["lr=0.1, opt=adam, seed=0", f"lr=0.01, opt=adam, seed=0 (run {b.id})",
                      f"lr=0.01, opt=adam, seed=0 (run {c.id})", f"run {d.id}"]  # fmt: skip
    colours = [[line.get_color() for line in ax.get_lines()] for ax in (top, bottom)]
    assert colours[0] == colours[1] and len(set(colours[0])) == 4  # a run's colour, each panel


def test_log_x_and_the_python_function(
    client: Client, sweep: list[st.Run], figures: list[Any], tmp_path: Path
) -> None:
    path = tmp_path / "x.png"
    points = plot_curves(client, [sweep[0].id, sweep[1].id], "val_loss", path, log_x=True)
    assert points == 8 and path.read_bytes().startswith(b"\x89PNG")
    [ax] = figures[0].axes
    assert ax.get_xscale() == "log" and ax.get_yscale() == "linear"
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["lr=0.1", "lr=0.01"]
    assert figures[0]._suptitle.get_text() == "sweep: val_loss"
    with pytest.raises(st.InvalidValue, match="at least one metric"):
        plot_curves(client, [sweep[0].id], " , ", path)


def test_legend_labels() -> None:
    assert curve_labels({1: {"lr": 0.1}, 2: {"lr": 0.2}}) == {1: "lr=0.1", 2: "lr=0.2"}
    assert curve_labels({1: {"lr": 0.1}}) == {1: "run 1"}  # nothing differs
    assert curve_labels({1: {"a": 1, "b": "x"}, 2: {"a": 1}}) == {1: "b=x", 2: "run 2"}
    long = {1: {"path": "/data/" + "x" * 40}, 2: {"path": "/data/y"}, 3: {"path": [1, 2]}}
    assert curve_labels(long) == {1: f"path=/data/{'x' * 17}…", 2: "path=/data/y", 3: "path=[1, 2]"}


@pytest.mark.parametrize(
    ("name", "what"),
    [("x.jpgg", "unknown image format 'jpgg'"), ("x", "no image format (no suffix)")],
)
def test_an_unknown_image_format_is_one_line(
    client: Client,
    sweep: list[st.Run],
    name: str,
    what: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    out = tmp_path / name
    command = ["plot", *cli_options(client), str(sweep[0].id), "--metric", "train_loss"]
    assert main([*command, "-o", str(out)]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"sqltrack: error: {out}: {what}; matplotlib writes ")
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    assert all(f".{f}" in err for f in ("png", "svg", "pdf", "jpg"))
    assert not [p for p in tmp_path.iterdir() if p.name.startswith("x")]  # nothing written
