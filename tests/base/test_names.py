"""Which metric and schema names are accepted (sqltrack._base.names)."""

from __future__ import annotations

import pytest
from conftest import metric_columns, metric_count, q

import sqltrack as st
from sqltrack import Client, InvalidMetricName, Run
from sqltrack._base.names import RESERVED_WORDS, check_metric_name, is_column_name, suggest_name


@pytest.mark.parametrize("name", ["loss", "train_loss", "_private", "a1", "x" * 63, "top5_acc"])
def test_valid_names(client: Client, run: Run, name: str) -> None:
    run.add_metrics({name: 1.0})
    assert name in metric_columns(client)
    # psql users can type it without quotes
    assert q(client, f"SELECT {name} FROM metrics") == [(1.0,)]


@pytest.mark.parametrize(
    "name",
    ["train/loss", "Loss", "val loss", "1st", "order", "select", "user", "x" * 64, "é",
     "日本", "ctid", "rowid", "lr-Adam", "val.acc", "m" * 250],
)  # fmt: skip
def test_metric_names_that_are_no_column_names_are_stored_narrow(
    client: Client, run: Run, name: str
) -> None:
    columns_before = metric_columns(client)
    run.add_metrics({"fine": 1.0, name: 2.0})
    assert name not in metric_columns(client)
    assert set(metric_columns(client)) - set(columns_before) == {"fine"}
    assert q(client, "SELECT n.name FROM metric_names n") == [(name,)]
    names, rows = st.read_metrics(client, run.id)
    assert dict(zip(names[3:], rows[0][3:], strict=True)) == {"fine": 1.0, name: 2.0}


@pytest.mark.parametrize(
    "name, suggestion",
    [
        ('a"b', "a_b"),
        ("a;DROP TABLE runs", "a_DROP TABLE runs"),
        ("(x)", "_x_"),
        ("a\nb", "a_b"),
        (" loss", "loss"),
        ("loss ", "loss"),
        ("x'y", "x_y"),
        ("step", "step_"),
        ("run_id", "run_id_"),
        ("progress", "progress_"),
        ("", "metric"),
    ],
)
def test_invalid_names_are_rejected_with_a_suggestion(
    client: Client, run: Run, name: str, suggestion: str
) -> None:
    columns_before = metric_columns(client)
    with pytest.raises(InvalidMetricName) as info:
        run.add_metrics({"fine": 1.0, name: 1.0})
    assert f"try {suggestion!r}" in str(info.value)
    check_metric_name(suggestion)  # the suggestion itself is valid
    assert metric_columns(client) == columns_before and metric_count(client) == 0
    assert q(client, "SELECT count(*) FROM metric_points") == [(0,)]


def test_name_checks_without_database() -> None:
    with pytest.raises(InvalidMetricName, match="must be a str"):
        check_metric_name(3)
    with pytest.raises(InvalidMetricName, match="251 characters long, the limit is 250"):
        check_metric_name("a" * 251)
    with pytest.raises(ValueError):  # InvalidMetricName is a ValueError
        check_metric_name("Bad;")
    assert check_metric_name("Bad") == "Bad"  # case-sensitive, not refused
    for word in RESERVED_WORDS:
        assert suggest_name(word) != word
        check_metric_name(suggest_name(word))
        assert not is_column_name(word)


@pytest.mark.parametrize(
    ("name", "suggested"),
    [("café", "cafe"), ("Überlänge/Loss", "uberlange_loss"), ("naïve-acc", "naive_acc")],
)
def test_suggestions_drop_accents_not_letters(name: str, suggested: str) -> None:
    assert suggest_name(name) == suggested
    check_metric_name(suggested)
