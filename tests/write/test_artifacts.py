"""Artifacts (sqltrack._write.artifacts, `sqltrack artifacts`), on both engines."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from conftest import cli_options, env_for, q

import sqltrack as st
from sqltrack import Client, Experiment, InvalidValue, NotFound, Run, SchemaError
from sqltrack._base.digests import file_digest
from sqltrack._db import schema
from sqltrack._write import samples
from sqltrack._write.artifacts import verify_artifacts
from sqltrack.cli import main


def _file(path: Path, content: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    return path


def test_versions_checksums_and_lookups(run: Run, client: Client, tmp_path: Path) -> None:
    first = run.log_artifact(
        _file(tmp_path / "model.pt", b"weights v1"), kind="checkpoint", step=10
    )
    assert (first.name, first.version, first.kind, first.run_id, first.step) == (
        "model.pt", 1, "checkpoint", run.id, 10,
    )  # fmt: skip
    assert first.uri == str((tmp_path / "model.pt").resolve())
    assert first.sha256 == hashlib.sha256(b"weights v1").hexdigest() and first.size == 10
    second = run.log_artifact(
        tmp_path / "model.pt", name="model.pt", kind="checkpoint", step=20, metadata={"ema": True}
    )
    assert second.version == 2 and second.metadata == {"ema": True}
    assert st.get_artifact(client, "model.pt") == second  # the latest
    assert st.get_artifact(client, "model.pt", 1) == first
    assert st.latest_artifact_version(client, "model.pt") == 2
    assert st.latest_artifact_version(client, "nothing") == -1
    assert st.artifact_exists(client, "model.pt") and st.artifact_exists(client, "model.pt", 2)
    assert not st.artifact_exists(client, "model.pt", 3)
    assert not st.artifact_exists(client, "nothing")
    with pytest.raises(NotFound, match="no artifact 'model.pt' version 7"):
        st.get_artifact(client, "model.pt", 7)
    with pytest.raises(NotFound, match="no artifact 'nothing'"):
        st.get_artifact(client, "nothing")
    remote = st.run_log_artifact(
        client,
        run.id,
        "s3://user:secret@bucket/exports/model.onnx",
        kind="model",
        sha256="a" * 64,
        size=123,
    )
    assert remote.name == "model.onnx" and "secret" not in remote.uri
    assert (remote.sha256, remote.size) == ("a" * 64, 123)
    assert [a.version for a in st.find_artifacts(client, run_id=run.id)] == [1, 2, 1]
    assert [a.name for a in st.find_artifacts(client, kind="model")] == ["model.onnx"]
    row = q(client, "SELECT name, version, sha256 FROM artifacts WHERE id = ?", second.id)
    assert row == [("model.pt", 2, second.sha256)]  # what psql sees


@pytest.mark.parametrize(
    ("args", "kwargs", "message"),
    [
        (("missing.bin",), {}, "no such file or directory"),
        (("s3://b/k",), {"kind": "Checkpoint"}, "lowercase word"),
        (("s3://b/k",), {"step": "10"}, "step must be an integer"),
        (("s3://b/k",), {"metadata": [1]}, "expected a dict"),
        (("s3://b/k",), {"sha256": "xyz"}, "64 lowercase hex digits"),
        (("s3://b/k",), {"size": -1}, "non-negative integer"),
        (("s3://b/k",), {"name": ""}, "non-empty string"),
    ],
)
def test_bad_input_raises_at_once(
    run: Run, client: Client, args: tuple[Any, ...], kwargs: dict[str, Any], message: str
) -> None:
    with pytest.raises(InvalidValue, match=message):
        run.log_artifact(*args, **kwargs)
    assert q(client, "SELECT count(*) FROM artifacts") == [(0,)]


def test_a_local_file_takes_no_given_checksum(run: Run, tmp_path: Path) -> None:
    with pytest.raises(InvalidValue, match="computed for a local file"):
        run.log_artifact(_file(tmp_path / "f", b"x"), sha256="a" * 64)


def test_a_missing_run_is_not_found(client: Client, tmp_path: Path) -> None:
    with pytest.raises(NotFound, match="run 424242 does not exist"):
        st.run_log_artifact(client, 424242, "s3://b/k")


def test_directories_hash_their_manifest(tmp_path: Path) -> None:
    folder = tmp_path / "ckpt"
    _file(folder / "a.bin", b"aaa")
    _file(folder / "sub" / "b.bin", b"bb")
    manifest = (
        f"{hashlib.sha256(b'aaa').hexdigest()}  a.bin\n"
        f"{hashlib.sha256(b'bb').hexdigest()}  sub/b.bin\n"
    )
    assert file_digest(folder) == (hashlib.sha256(manifest.encode()).hexdigest(), 5)
    data = bytes(range(256)) * 20_000  # 5 MB: several chunks
    big = _file(tmp_path / "big", data)
    assert file_digest(big) == (hashlib.sha256(data).hexdigest(), len(data))


def test_verify_flags_a_changed_byte_and_a_missing_file(
    run: Run, client: Client, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    kept = run.log_artifact(_file(tmp_path / "kept.bin", b"same"))
    changed = run.log_artifact(_file(tmp_path / "changed.bin", b"abcdef"))
    gone = run.log_artifact(_file(tmp_path / "gone.bin", b"zzz"))
    run.log_artifact("https://example.org/data.csv")  # no checksum: unchecked
    options = cli_options(client)
    assert main(["artifacts", "verify", *options]) == 0
    assert "4 artifacts: 3 ok, 0 missing, 0 changed, 1 unchecked" in capsys.readouterr().out
    (tmp_path / "changed.bin").write_bytes(b"abcdeg")  # one byte, same size
    (tmp_path / "gone.bin").unlink()
    outcomes = {a.name: o for a, o in verify_artifacts(client)}
    assert outcomes == {
        kept.name: "ok",
        changed.name: "changed",
        gone.name: "missing",
        "data.csv": "unchecked",
    }
    assert main(["artifacts", "verify", *options]) == 1
    out = capsys.readouterr().out
    rows = [line.split()[:2] for line in out.splitlines()]
    assert ["changed", changed.name] in rows and ["missing", gone.name] in rows
    assert "4 artifacts: 1 ok, 1 missing, 1 changed, 1 unchecked" in out
    assert main(["artifacts", "--run", str(run.id), "--format", "csv", *options]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "id,name,version,kind,run_id,step,uri,size,sha256" and len(lines) == 5


def test_lineage_and_the_best_checkpoint(client: Client, tmp_path: Path) -> None:
    exp = Experiment(client, name="lineage")
    train = exp.get_run()
    with train.track():
        for step, loss in enumerate([0.5, 0.4, 0.3, 0.45, 0.9]):
            train.add_metrics({"val_loss": loss}, step=step)
            if step % 2 == 1:  # checkpoints at steps 1 and 3
                path = _file(tmp_path / f"ckpt{step}.pt", bytes([step]))
                train.log_artifact(path, name="ckpt", kind="checkpoint", step=step)
    best = st.best_checkpoint(client, train.id)  # val_loss is lowest at step 2
    assert (best.name, best.version, best.step) == ("ckpt", 1, 1)
    worst = st.best_checkpoint(client, train.id, "val_loss:max")  # step 4: last before it
    assert (worst.version, worst.step) == (2, 3)
    other = exp.get_run().add_metrics({"val_loss": 1.0}, step=0)
    with pytest.raises(NotFound, match="logged no checkpoint up to step 0"):
        st.best_checkpoint(client, other.id)
    with pytest.raises(NotFound, match="has no value of 'val_loss'"):
        st.best_checkpoint(client, exp.get_run().id)
    evaluate = exp.get_run()
    used = evaluate.use_artifact("ckpt", 1)
    evaluate.use_artifact("ckpt", 1)  # again: nothing new
    assert used == best
    consumers = q(
        client,
        "SELECT u.run_id FROM artifact_uses u JOIN artifacts a ON a.id = u.artifact_id "
        "WHERE a.name = ? AND a.version = ?",
        "ckpt",
        1,
    )
    assert consumers == [(evaluate.id,)]
    with pytest.raises(InvalidValue, match="name:min or name:max"):
        st.best_checkpoint(client, train.id, "val_loss:last")
    with pytest.raises(InvalidValue, match="no such numeric metric"):
        st.best_checkpoint(client, train.id, "nope:min")


def test_artifacts_dataframe(run: Run, client: Client) -> None:
    pytest.importorskip("pandas", reason="artifacts_dataframe needs pandas (the test extra)")
    run.log_artifact("s3://b/one", kind="model")
    run.log_artifact("s3://b/two")
    df = st.artifacts_dataframe(client, run_id=run.id)
    assert df["name"].tolist() == ["one", "two"] and df["kind"].tolist() == ["model", "file"]
    assert list(df.columns) == list(st.Artifact._fields)


def test_an_old_schema_says_to_set_up(
    empty_client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    builtin = schema.builtin_scripts
    monkeypatch.setattr(  # a database of version 3 (later versions build on version 4)
        schema, "builtin_scripts", lambda e: [p for p in builtin(e) if p.name < "v004"]
    )
    schema.setup(empty_client)
    run = Experiment(empty_client, name="old").get_run()
    with pytest.raises(SchemaError, match="sqltrack setup"):
        run.log_artifact("s3://b/k")
    with pytest.raises(SchemaError, match="sqltrack setup"):
        st.latest_artifact_version(empty_client, "k")


_LOGGER = """
import sys
import time
import sqltrack as st
client = st.Client()
run = st.Run(client, run_id=int(sys.argv[1]))
print("ready", flush=True)
sys.stdin.readline()  # all start together
print(run.log_artifact("s3://bucket/shared", name="shared").version)
"""


def test_processes_logging_one_name_at_once_get_versions_without_gaps(
    run: Run, client: Client, db_params: dict[str, Any]
) -> None:
    """32 real processes log the same name at the same moment: versions 1..32."""
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", _LOGGER, str(run.id)],
            env=env_for(db_params),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(32)
    ]
    for p in processes:  # every one connected and waiting
        assert p.stdout is not None and p.stdout.readline() == "ready\n"
    for p in processes:
        assert p.stdin is not None
        p.stdin.write("go\n")
        p.stdin.flush()
    outputs = [p.communicate(timeout=120) for p in processes]
    for p, (_, err) in zip(processes, outputs, strict=True):
        assert p.returncode == 0, err
    assert sorted(int(out) for out, _ in outputs) == list(range(1, 33))
    stored = q(client, "SELECT version FROM artifacts WHERE name = ? ORDER BY version", "shared")
    assert [v for (v,) in stored] == list(range(1, 33))


def test_samples_store_each_conditioning_once(run: Run, client: Client, tmp_path: Path) -> None:
    prompt = "a cat on a skateboard"
    for step in (100, 200):
        image = run.log_artifact(
            _file(tmp_path / f"s{step}.png", bytes([step % 256])), kind="sample", step=step
        )
        run.log_sample(step, prompt, {"clip": step / 1000}, kind="image", artifact=image)
        run.log_sample(step, {"label": 3, "guidance": 7.5}, None, kind="image")
    st.run_log_sample(client, run.id, 300, {"guidance": 7.5, "label": 3}, "text out")  # same
    st.run_log_sample(client, run.id, 300, None, {"unconditional": True})
    assert q(client, "SELECT type FROM conditionings ORDER BY id") == [("text",), ("object",)]
    # every output for one prompt across the run's checkpoints: one short query
    rows = q(
        client,
        "SELECT s.step, s.output, a.uri FROM samples s "
        "JOIN conditionings c ON c.id = s.conditioning_id "
        "LEFT JOIN artifacts a ON a.id = s.artifact_id "
        "WHERE s.run_id = ? AND c.sha256 = ? ORDER BY s.step",
        run.id,
        samples.conditioning_key(prompt)[0],
    )
    assert [(r[0], st.json_value(r[1])) for r in rows] == [
        (100, {"clip": 0.1}),
        (200, {"clip": 0.2}),
    ]
    assert rows[0][2].endswith("s100.png")
    assert q(client, "SELECT count(*) FROM samples WHERE conditioning_id IS NULL") == [(1,)]
    with pytest.raises(InvalidValue, match="lowercase word"):
        run.log_sample(1, "x", None, kind="Image")
    with pytest.raises(InvalidValue, match="step must be an integer"):
        run.log_sample("1", "x", None)  # type: ignore[arg-type]
    with pytest.raises(InvalidValue, match="conditioning"):
        run.log_sample(1, {"x": object()}, None)
    with pytest.raises(NotFound, match="artifact 999"):
        run.log_sample(1, "x", None, artifact=999)


def test_a_call_tried_again_with_its_key_makes_no_second_row(
    run: Run, client: Client, tmp_path: Path
) -> None:
    """What a retry after a commit whose answer was lost does: the same call again, with
    the key sqltrack made for it. It finds its artifact (and sample) instead of making
    version 2 (and a second sample); a new call makes a new one."""
    path = _file(tmp_path / "model.pt", b"weights")
    first = run.log_artifact(path, kind="checkpoint", step=1, uid="call-1")
    again = run.log_artifact(path, kind="checkpoint", step=1, uid="call-1")
    assert again == first and first.version == 1
    assert run.log_artifact(path, kind="checkpoint", step=1).version == 2  # a new call
    sample = run.log_sample(1, "a prompt", "an answer", uid="sample-1")
    assert run.log_sample(1, "a prompt", "an answer", uid="sample-1") == sample
    assert run.log_sample(1, "a prompt", "an answer") != sample
    assert q(client, "SELECT count(*) FROM samples") == [(2,)]
    assert q(client, "SELECT uid FROM artifacts WHERE id = ?", first.id) == [("call-1",)]
    with pytest.raises(InvalidValue, match="uid must be a non-empty string"):
        run.log_artifact(path, uid="")


def test_a_database_before_version_8_still_logs_without_keys(
    empty_client: Client, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    builtin = schema.builtin_scripts
    monkeypatch.setattr(
        schema, "builtin_scripts", lambda e: [p for p in builtin(e) if p.name < "v008"]
    )
    schema.setup(empty_client)
    run = Experiment(empty_client, name="v7").get_run()
    path = _file(tmp_path / "model.pt", b"weights")
    assert [run.log_artifact(path, uid="same").version for _ in range(2)] == [1, 2]
    assert run.log_sample(0, None, "out") != run.log_sample(0, None, "out")


# -- only regular files are read ------------------------------------------------------------


def test_special_files_are_never_read(client: Client, run: Run, tmp_path: Path) -> None:
    """/dev/zero, a FIFO, a link to either inside a directory: an error naming the file,
    at once (before: hashing /dev/zero never ended)."""
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    folder = tmp_path / "ckpt"
    folder.mkdir()
    (folder / "weights.bin").write_bytes(b"w" * 10)
    (folder / "zero").symlink_to("/dev/zero")
    started = time.monotonic()
    for path in ("/dev/zero", fifo, folder):
        with pytest.raises(InvalidValue, match="not a regular file"):
            run.log_artifact(path)
    assert time.monotonic() - started < 2
    assert q(client, "SELECT count(*) FROM artifacts") == [(0,)]


def test_links_inside_a_directory(client: Client, run: Run, tmp_path: Path) -> None:
    """A link to a regular file is hashed as that file, under the link's path; a link to
    a directory is not followed."""
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "big.bin").write_bytes(b"b" * 100)
    folder = tmp_path / "ckpt"
    folder.mkdir()
    (folder / "weights.bin").write_bytes(b"w" * 10)
    (folder / "linked.bin").symlink_to(outside / "big.bin")
    (folder / "more").symlink_to(outside)
    artifact = run.log_artifact(folder)
    assert artifact.size == 110


def test_verify_never_reads_a_special_file(client: Client, run: Run, tmp_path: Path) -> None:
    weights = tmp_path / "weights.bin"
    weights.write_bytes(b"w")
    artifact = run.log_artifact(weights)
    q(client, "UPDATE artifacts SET uri = '/dev/zero' WHERE id = ?", artifact.id)
    started = time.monotonic()
    [(_, outcome)] = verify_artifacts(client, run.id)
    assert outcome == "changed" and time.monotonic() - started < 2
