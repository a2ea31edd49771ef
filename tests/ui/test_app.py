"""The dashboard's web app (sqltrack.ui) through Starlette's TestClient, on both engines:
the JSON API as docs/ui.md documents it, its errors, and what keeps it safe."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from conftest import cli_options
from starlette.testclient import TestClient

from sqltrack import Client, Experiment, InvalidValue, Run
from sqltrack.cli import main
from sqltrack.ui import create_app
from sqltrack.ui._app import POLICY, STATIC

HOSTILE = "<img src=x onerror=alert(1)></script>"


@pytest.fixture
def runs(client: Client) -> list[Run]:
    exp = Experiment(client, name=HOSTILE)
    made = []
    for seed in range(3):
        run = exp.get_run().set_args({"lr": 0.1, "seed": seed}).add_tags(HOSTILE)
        with run.track(buffered=True):
            for step in range(2000):
                run.add_metrics({"loss": 1 / (step + 1), "eval/acc": step / 2000}, step=step)
        made.append(run)
    made[0].log_artifact("s3://b/ckpt", name="ckpt", kind="checkpoint", step=1999)
    return made


@pytest.fixture
def api(client: Client) -> Iterator[TestClient]:
    with TestClient(create_app(client, experiment=HOSTILE)) as test_client:
        yield test_client


def test_the_api_answers_as_documented(api: TestClient, runs: list[Run]) -> None:
    assert api.get("/api/experiments").json() == [{"id": 1, "name": HOSTILE, "runs": 3}]
    assert api.get("/api/config").json()["experiment"] == HOSTILE
    listed = api.get("/api/runs", params={"experiment": HOSTILE}).json()
    assert [r["id"] for r in listed["runs"]] == [r.id for r in runs]
    first = listed["runs"][0]
    assert set(first) >= {"id", "status", "args", "tags", "summaries", "duration", "started"}
    assert first["summaries"]["loss"] == {"min": 1 / 2000, "max": 1.0, "last": 1 / 2000}
    filtered = api.get(
        "/api/runs", params=[("experiment", HOSTILE), ("arg", "seed=1"), ("status", "COMPLETED")]
    ).json()
    assert [r["id"] for r in filtered["runs"]] == [runs[1].id]
    assert api.get("/api/runs", params={"experiment": HOSTILE, "tag": "x"}).json()["runs"] == []
    page = api.get(f"/api/runs/{runs[0].id}").json()
    assert page["artifacts"][0]["name"] == "ckpt" and page["tags"] == [HOSTILE]
    curves = api.get(
        f"/api/runs/{runs[0].id}/metrics", params={"names": "loss,eval/acc", "points": 50}
    ).json()["metrics"]
    assert set(curves) == {"loss", "eval/acc"}
    assert len(curves["loss"]["step"]) <= 50 and curves["loss"]["step"][-1] == 1999
    assert max(curves["loss"]["value"]) == 1.0
    newer = api.get(f"/api/runs/{runs[0].id}/metrics?names=loss&after=1997").json()
    assert newer == {"metrics": {"loss": {"step": [1998, 1999], "value": [1 / 1999, 1 / 2000]}}}
    names = api.get("/api/metrics", params={"experiment": HOSTILE, "q": "ACC"}).json()
    assert names == {"metrics": ["eval/acc"]}
    assert api.get(f"/api/runs/{runs[0].id}/system").json() == {"system": {}}


def test_errors_are_one_line_of_json_with_a_status(api: TestClient, runs: list[Run]) -> None:
    def error(path: str, status: int) -> str:
        response = api.get(path)
        assert response.status_code == status, path
        text = response.json()["error"]
        assert "\n" not in text
        return str(text)

    assert error("/api/runs/42", 404) == "run 42 does not exist"
    assert error("/api/runs?experiment=nope", 404) == "experiment 'nope' does not exist"
    assert "give the experiment" in error("/api/runs", 400)
    assert "give the metrics" in error(f"/api/runs/{runs[0].id}/metrics", 400)
    assert "points must be" in error(f"/api/runs/{runs[0].id}/metrics?names=loss&points=x", 400)
    assert "points must be" in error(f"/api/runs/{runs[0].id}/metrics?names=loss&points=1", 400)
    assert "points must be" in error(f"/api/runs/{runs[0].id}/metrics?names=loss&points=0", 400)
    assert "after must be" in error(f"/api/runs/{runs[0].id}/metrics?names=loss&after=x", 400)
    assert "key=value" in error("/api/runs?experiment=e&arg=lr", 400)
    assert "status" in error(f"/api/runs?experiment={HOSTILE}&status=ASLEEP", 400)
    assert api.get("/api/runs/x").status_code == 404  # (no such route)
    assert "ISO 8601" in error(f"/api/runs?experiment={HOSTILE}&since=yesterday", 400)
    assert "time zone" in error(f"/api/runs?experiment={HOSTILE}&since=2026-01-01T00:00", 400)


def test_since_answers_only_the_runs_that_changed(
    api: TestClient, client: Client, runs: list[Run]
) -> None:
    """How the page follows a live experiment without reading every run each time."""
    import time
    from datetime import datetime, timedelta

    full = api.get("/api/runs", params={"experiment": HOSTILE}).json()
    now = datetime.fromisoformat(full["now"])
    assert abs(now - datetime.now(now.tzinfo)) < timedelta(seconds=5)
    time.sleep(0.05)  # (times on SQLite are text: a later time sorts later)
    ask = {"experiment": HOSTILE, "since": full["now"], "metrics": "loss"}
    assert api.get("/api/runs", params=ask).json()["runs"] == []
    runs[1].add_metrics({"loss": 0.0}, step=5000)  # moves its time_updated
    new = Experiment(client, name=HOSTILE).get_run()  # created since
    changed = api.get("/api/runs", params=ask).json()
    assert [r["id"] for r in changed["runs"]] == [runs[1].id, new.id]
    assert changed["runs"][0]["summaries"]["loss"]["last"] == 0.0
    assert changed["runs"][1]["summaries"] == {}
    assert changed["now"] > full["now"]
    status = {**ask, "status": "RUNNING", "since": full["now"].replace("+00:00", "Z")}
    assert api.get("/api/runs", params=status).json()["runs"] == []  # filters still apply


def test_curves_carry_the_progress_of_their_steps_when_asked(client: Client) -> None:
    """For a chart against progress (epochs): the progress logged with each point, from
    the raw values (a short curve) and from metric blocks (a long one), both storages."""
    run = Experiment(client, name="epochs").get_run()
    with run.track(buffered=True):
        for step in range(3000):
            run.add_metrics({"loss": 1 / (step + 1), "x/new": step}, step=step, progress=step / 600)
    with TestClient(create_app(client)) as api:
        for points in (50, 5000):
            ask = {"names": "loss,x/new,never", "points": points, "progress": "1"}
            got = api.get(f"/api/runs/{run.id}/metrics", params=ask).json()["metrics"]
            for name in ("loss", "x/new"):
                curve = got[name]
                assert len(curve["progress"]) == len(curve["step"]) > 0
                assert curve["progress"] == [step / 600 for step in curve["step"]]
            assert got["never"] == {"step": [], "value": [], "progress": []}
        plain = api.get(f"/api/runs/{run.id}/metrics", params={"names": "loss"}).json()
        assert set(plain["metrics"]["loss"]) == {"step", "value"}  # only when asked
        bad = api.get(f"/api/runs/{run.id}/metrics", params={"names": "loss", "progress": "yes"})
        assert bad.status_code == 400 and "progress must be" in bad.json()["error"]


def test_newest_answers_the_runs_of_the_highest_ids_first(api: TestClient, runs: list[Run]) -> None:
    """What the page draws before the whole list of a large experiment has arrived."""
    ask = {"experiment": HOSTILE, "newest": 2}
    newest = api.get("/api/runs", params=ask).json()["runs"]
    assert [r["id"] for r in newest] == [runs[1].id, runs[2].id]  # by id, as every list
    assert newest[0]["summaries"]["loss"]["last"] == 1 / 2000
    assert [r["id"] for r in api.get("/api/runs", params={**ask, "newest": 10}).json()["runs"]] == [
        r.id for r in runs
    ]
    seed0 = api.get("/api/runs", params={**ask, "arg": "seed=0"}).json()["runs"]
    assert [r["id"] for r in seed0] == [runs[0].id]  # of those that match the filters
    for bad in ("0", "x", "10001", "-1"):
        response = api.get("/api/runs", params={**ask, "newest": bad})
        assert response.status_code == 400 and "newest must be" in response.json()["error"]


def test_nothing_writes(api: TestClient, client: Client, runs: list[Run]) -> None:
    for method in ("post", "put", "patch", "delete"):
        for path in ("/", "/api/experiments", "/api/runs", f"/api/runs/{runs[0].id}"):
            assert getattr(api, method)(path).status_code == 405, (method, path)
    assert client.query("SELECT count(*) FROM runs")[0][0] == 3


def test_every_response_carries_the_security_headers(api: TestClient, runs: list[Run]) -> None:
    for path in ("/", "/static/ui.js", "/api/experiments", "/api/runs/42", "/nope"):
        headers = api.get(path).headers
        assert headers["content-security-policy"] == POLICY, path
        assert headers["x-content-type-options"] == "nosniff"
        assert headers["x-frame-options"] == "DENY"
        assert ("no-store" in headers.get("cache-control", "")) == path.startswith("/api/")
    assert "script-src 'self';" in POLICY and "'unsafe-inline'" not in POLICY
    assert api.get("/").headers["content-type"] == "text/html; charset=utf-8"


def test_a_loopback_server_answers_only_its_own_names(client: Client, runs: list[Run]) -> None:
    """DNS rebinding: a page of evil.example whose name now points at 127.0.0.1 sends
    ``Host: evil.example``; it is refused before anything is read."""
    app = create_app(client, hosts=["127.0.0.1", "localhost"])
    with TestClient(app, base_url="http://127.0.0.1:8000") as ours:
        assert ours.get("/api/experiments").status_code == 200
        assert ours.get("/api/experiments", headers={"host": "localhost:8000"}).status_code == 200
        refused = ours.get("/api/experiments", headers={"host": "evil.example:8000"})
        assert refused.status_code == 400 and HOSTILE not in refused.text


def test_the_page_loads_nothing_from_elsewhere_and_runs_no_inline_script() -> None:
    page = (STATIC / "index.html").read_text()
    assert re.findall(r"<script\b[^>]*>", page) == [
        '<script src="static/uPlot.iife.min.js" defer>', '<script src="static/ui.js" defer>'
    ]  # fmt: skip
    assert " on" not in re.sub(r"<script.*?</script>", "", page).replace("\n", " ").lower()
    for path in STATIC.iterdir():
        text = path.read_text("utf-8")
        urls = set(re.findall(r"(?:https?:)?//[\w.-]+\.\w+", text)) - {"//github.com"}
        # uPlot's home page (in its header) and the SVG namespace: names, not requests
        assert not urls - {"https://github.com", "http://www.w3.org"}, (path.name, urls)
    script = (STATIC / "ui.js").read_text()
    assert "innerHTML" not in script and "insertAdjacentHTML" not in script
    assert "eval(" not in script and "new Function" not in script


def test_create_app_refuses_bad_arguments(client: Client) -> None:
    with pytest.raises(InvalidValue, match="client must be a sqltrack.Client"):
        create_app("sqlite:///x.db")  # type: ignore[arg-type]
    with pytest.raises(InvalidValue, match="connections"):
        create_app(client, connections=0)
    with pytest.raises(InvalidValue, match="experiment must be a name"):
        create_app(client, experiment=3)  # type: ignore[arg-type]


def test_sqltrack_ui_says_what_it_needs(
    client: Client, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["ui", *cli_options(client), "--port", "0"]) == 1
    assert "--port must be from 1 to 65535" in capsys.readouterr().err
    monkeypatch.setitem(__import__("sys").modules, "sqltrack.ui", None)  # the extra missing
    assert main(["ui", *cli_options(client)]) == 1
    err = capsys.readouterr().err
    assert err.startswith(
        "sqltrack: error: sqltrack ui needs its extra: pip install 'sqltrack[ui]'"
    )
    assert err.count("\n") == 1
