"""Pure functions: argument detection, secret redaction, SQL helpers (no database)."""

from __future__ import annotations

import pytest

from sqltrack.args import detect_args, parse_value
from sqltrack.engines import split_sqlite_script, to_pyformat
from sqltrack.env import REDACTED, is_secret_name, redact_env


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


@pytest.mark.parametrize(
    "name",
    [
        "PASSWORD",
        "PGPASSWORD",
        "DB_PASS",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_ACCESS_KEY_ID",
        "HF_TOKEN",
        "HUGGING_FACE_HUB_TOKEN",
        "WANDB_API_KEY",
        "OPENAI_API_KEY",
        "GITHUB_PAT",
        "apiKey",
        "my-secret",
        "GOOGLE_APPLICATION_CREDENTIALS",
        "SQLTRACK_DSN_PASSWORD",
        "AZURE_STORAGE_KEY",
        "SLACK_WEBHOOK_TOKEN",
        "NPM_AUTH",
        "COOKIE",
        "PRIVATE_KEY",
        "MLFLOW_TRACKING_PASSWORD",
        "SSH_PASSPHRASE",
        "JWT",
        "CLIENTSECRET",
    ],
)
def test_secret_names(name: str) -> None:
    assert is_secret_name(name)


@pytest.mark.parametrize(
    "name",
    [
        "PATH",
        "HOME",
        "PWD",
        "OLDPWD",
        "USER",
        "SLURM_JOB_ID",
        "CUDA_VISIBLE_DEVICES",
        "KEYBOARD",
        "MONKEY_PATCH",
        "LANG",
        "SSH_AUTH_SOCK",
        "PYTHONPATH",
        "OMP_NUM_THREADS",
    ],
)
def test_harmless_names(name: str) -> None:
    assert not is_secret_name(name)


def test_redact_env_values() -> None:
    env = {
        "DATABASE_URL": "postgresql://me:pw%40x@db.example.org:5432/app",
        "REDIS": "redis://:onlypass@cache:6379/0",
        "CONN": "host=db user=me password='s3 cret' dbname=x",
        "PLAIN_URL": "https://example.org/a:b@c",
        "HF_TOKEN": "hf_abc",
        "HOME": "/home/me",
    }
    out = redact_env(env)
    assert out["DATABASE_URL"] == f"postgresql://me:{REDACTED}@db.example.org:5432/app"
    assert out["REDIS"] == f"redis://:{REDACTED}@cache:6379/0"
    assert out["CONN"] == f"host=db user=me password={REDACTED} dbname=x"
    assert out["HF_TOKEN"] == REDACTED
    assert out["HOME"] == "/home/me"
    assert "pw%40x" not in str(out) and "onlypass" not in str(out) and "s3 cret" not in str(out)


@pytest.mark.parametrize(
    "query, expected",
    [
        ("SELECT :a, :b_2", "SELECT %(a)s, %(b_2)s"),
        ("SELECT x::text FROM t WHERE y = :y", "SELECT x::text FROM t WHERE y = %(y)s"),
        ("SELECT ':not' || \":nor\" FROM t", "SELECT ':not' || \":nor\" FROM t"),
        ("SELECT 5 % 2, '100%' -- 50% :c\n", "SELECT 5 %% 2, '100%%' -- 50%% :c\n"),
        ("SELECT 'it''s :x'", "SELECT 'it''s :x'"),
    ],
)
def test_to_pyformat(query: str, expected: str) -> None:
    assert to_pyformat(query) == expected


def test_split_sqlite_script() -> None:
    script = """
    -- a comment; with a semicolon
    CREATE TABLE a (x TEXT DEFAULT ';');
    CREATE TRIGGER t AFTER INSERT ON a BEGIN
        UPDATE a SET x = 'y;z';
    END;
    /* trailing comment */
    """
    statements = list(split_sqlite_script(script))
    assert len(statements) == 2
    assert statements[1].rstrip().endswith("END;")
