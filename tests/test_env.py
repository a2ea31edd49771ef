"""Capturing the environment and arguments without their secrets (sqltrack.env)."""

from __future__ import annotations

import sys
from typing import Any

import pytest

from sqltrack.args import detect_args
from sqltrack.env import REDACTED, is_secret_name, redact_args, redact_env


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


def test_webhook_urls_are_secrets() -> None:
    env = {
        "SLACK_WEBHOOK_URL": "https://hooks.slack.com/services/T0/B0/xyz",
        "NOTIFY_URL": "https://example.org/hook?token=abc&channel=ml",
    }
    assert redact_env(env) == {
        "SLACK_WEBHOOK_URL": REDACTED,
        "NOTIFY_URL": f"https://example.org/hook?token={REDACTED}&channel=ml",
    }


def test_command_line_secrets_are_redacted_like_the_environment() -> None:
    argv = [
        "--db-password", "S3cretPW!",
        "--api_key=sk-123",
        "--dsn", "postgres://a:S3cretPW!@h/d",
        "--num-passes", "3",  # a number is never a credential
        "--lr", "0.1",
        "--tokens", "a", "b",
    ]  # fmt: skip
    assert redact_args(detect_args(argv)) == {
        "db_password": REDACTED,
        "api_key": REDACTED,
        "dsn": f"postgres://a:{REDACTED}@h/d",
        "num_passes": 3,
        "lr": 0.1,
        "tokens": [REDACTED, REDACTED],
    }


@pytest.mark.usefixtures("client")
def test_set_args_stores_no_secret(run: Any, client: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """'auto' and an explicit Namespace alike: what the database holds is redacted."""
    import argparse

    from conftest import json_column

    monkeypatch.setattr(sys, "argv", ["train.py", "--api-key", "sk-123", "--lr", "0.1"])
    run.set_args("auto")
    assert json_column(client, "runs", "args", run.id) == {"api_key": REDACTED, "lr": 0.1}
    run.set_args(argparse.Namespace(hf_token="hf_abc", epochs=3))
    assert json_column(client, "runs", "args", run.id) == {"hf_token": REDACTED, "epochs": 3}
