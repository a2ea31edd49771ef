"""Experiments and experiment_* functions, on both engines."""

from __future__ import annotations

import pytest
from conftest import json_column, q

import sqltrack as st
from sqltrack import Client, Experiment, InvalidValue, NotFound


def test_by_name_is_created_once(client: Client) -> None:
    a = Experiment(client, name="resnet")
    b = Experiment(client, name="resnet")
    assert a.id == b.id
    assert q(client, "SELECT id, name, comment FROM experiments") == [(a.id, "resnet", None)]
    assert json_column(client, "experiments", "tags", a.id) == {}


def test_by_id(client: Client) -> None:
    exp = Experiment(client, name="x")
    assert Experiment(client, exp.id).id == exp.id
    assert Experiment(client, exp.id, "x").id == exp.id
    with pytest.raises(InvalidValue, match="is named 'x', not 'y'"):
        Experiment(client, exp.id, "y")
    with pytest.raises(NotFound, match="experiment 424242 does not exist"):
        Experiment(client, 424242)
    with pytest.raises(InvalidValue, match="give an experiment_id or a name"):
        Experiment(client)


def test_with_explicit_id_then_generated(client: Client) -> None:
    explicit = Experiment(client, 7, "seven")
    assert explicit.id == 7
    generated = [Experiment(client, name=f"e{i}").id for i in range(10)]
    assert 7 not in generated and len(set(generated)) == 10
    with pytest.raises(InvalidValue, match="taken by experiment 7"):
        Experiment(client, 100, "seven")


@pytest.mark.parametrize("bad", ["", "   ", None, 3, "a\x00b"])
def test_invalid_names(client: Client, bad: object) -> None:
    with pytest.raises(InvalidValue):
        Experiment(client, name=bad)  # type: ignore[arg-type]
    assert q(client, "SELECT count(*) FROM experiments") == [(0,)]


def test_name_and_comment(client: Client) -> None:
    exp = Experiment(client, name="old").set_name("new").set_comment("a comment; with 'quotes'")
    assert q(client, "SELECT name, comment FROM experiments WHERE id = ?", exp.id) == [
        ("new", "a comment; with 'quotes'")
    ]
    st.experiment_set_comment(client, exp.id, None)
    assert q(client, "SELECT comment FROM experiments") == [(None,)]
    Experiment(client, name="other")
    with pytest.raises(InvalidValue, match="'other' is taken"):
        st.experiment_set_name(client, exp.id, "other")
    with pytest.raises(NotFound):
        st.experiment_set_comment(client, 999, "x")


def test_tags(client: Client) -> None:
    exp = Experiment(client, name="t")
    assert exp.add_tags("a", "b") is exp
    exp.add_tags("b", "c")
    assert set(json_column(client, "experiments", "tags", exp.id)) == {"a", "b", "c"}
    st.experiment_remove_tags(client, exp.id, "a", "missing")
    assert set(json_column(client, "experiments", "tags", exp.id)) == {"b", "c"}
    st.experiment_set_tags(client, exp.id, "x", "we\"ird 'tag';")
    assert set(json_column(client, "experiments", "tags", exp.id)) == {"x", "we\"ird 'tag';"}
    exp.set_tags()
    assert json_column(client, "experiments", "tags", exp.id) == {}
    with pytest.raises(InvalidValue, match="tags must be non-empty strings"):
        exp.add_tags("")
    with pytest.raises(NotFound):
        st.experiment_add_tags(client, 999, "a")


def test_tags_are_queryable_as_json_keys(client: Client, engine: str) -> None:
    a = Experiment(client, name="a").add_tags("baseline")
    Experiment(client, name="b").add_tags("other")
    if engine == "postgres":
        rows = client.execute("SELECT id FROM experiments WHERE tags ? 'baseline'")
    else:
        rows = client.execute("SELECT id FROM experiments WHERE json_extract(tags, '$.baseline')")
    assert rows == [(a.id,)]


def test_links(client: Client) -> None:
    a, b = Experiment(client, name="a"), Experiment(client, name="b")
    assert a.add_link("follows", b.id) is a
    a.add_link("follows", b.id)  # twice is fine
    st.experiment_add_link(client, b.id, "refines", a.id)
    assert sorted(q(client, "SELECT from_id, kind, to_id FROM experiment_links")) == sorted(
        [(a.id, "follows", b.id), (b.id, "refines", a.id)]
    )
    a.remove_link("follows", b.id)
    st.experiment_remove_link(client, b.id, "refines", a.id)
    assert q(client, "SELECT count(*) FROM experiment_links") == [(0,)]
    with pytest.raises(NotFound, match="does not exist"):
        a.add_link("follows", 999)
    with pytest.raises(InvalidValue, match="link kind"):
        a.add_link("", b.id)


def test_deleting_an_experiment_cascades(client: Client) -> None:
    exp = Experiment(client, name="gone")
    run = exp.get_run()
    run.add_metrics({"loss": 1.0})
    other = Experiment(client, name="stays")
    other.add_link("after", exp.id)
    q(client, "DELETE FROM experiments WHERE id = ?", exp.id)
    for table in ("runs", "metrics", "experiment_links"):
        assert q(client, f"SELECT count(*) FROM {table}") == [(0,)]


def test_finding_an_experiment_by_name_burns_no_id(client: Client) -> None:
    """Looked up before it is inserted: ids stay 1, 2, 3 however often names are used."""
    ids = [Experiment(client, name=name).id for name in ["a", "b", "a", "a", "b", "c"]]
    assert ids == [1, 2, 1, 1, 2, 3]
