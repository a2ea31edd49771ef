"""Detecting command-line arguments (sqltrack.args); no database needed."""

from __future__ import annotations

import pytest

from sqltrack.args import detect_args, parse_value


@pytest.mark.parametrize(
    "argv, expected",
    [
        ([], {}),
        (["--lr", "0.1", "--epochs", "3"], {"lr": 0.1, "epochs": 3}),
        (["--lr=1e-3", "--name=resnet"], {"lr": 0.001, "name": "resnet"}),
        (
            ["--amp", "--epochs", "3", "--deterministic"],
            {"amp": True, "epochs": 3, "deterministic": True},
        ),
        (["--learning-rate", "0.1"], {"learning_rate": 0.1}),
        (["-b", "32", "-v"], {"b": 32, "v": True}),
        (["--layers", "2", "4", "8"], {"layers": [2, 4, 8]}),
        (["--tag", "a", "--tag", "b", "--tag", "c"], {"tag": ["a", "b", "c"]}),
        (["data/train", "--lr", "0.1"], {"lr": 0.1, "_positional": ["data/train"]}),
        (
            ["--lr", "0.1", "--", "--not-an-option", "x"],
            {"lr": 0.1, "_positional": ["--not-an-option", "x"]},
        ),
        (["--offset", "-3", "--scale", "-1.5e-2"], {"offset": -3, "scale": -0.015}),
        (["--eq=a=b"], {"eq": "a=b"}),
        (["--flag=true", "--other=False"], {"flag": True, "other": False}),
    ],
)
def test_detect_args(argv: list[str], expected: dict[str, object]) -> None:
    assert detect_args(argv) == expected


@pytest.mark.parametrize(
    "text, value",
    [
        ("3", 3),
        ("-3", -3),
        ("0.5", 0.5),
        (".5", 0.5),
        ("1e-3", 0.001),
        ("TRUE", True),
        ("nan", "nan"),
        ("inf", "inf"),
        ("1e400", "1e400"),
        ("007", "007"),
        ("1_000", "1_000"),
        ("0x10", "0x10"),
        ("", ""),
        ("resnet50", "resnet50"),
    ],
)
def test_parse_value(text: str, value: object) -> None:
    assert parse_value(text) == value
    assert type(parse_value(text)) is type(value)


def test_detect_args_reads_sys_argv(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sys.argv", ["train.py", "--seed", "1"])
    assert detect_args() == {"seed": 1}
