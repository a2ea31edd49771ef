"""Capturing the environment without its secrets (sqltrack.env); no database needed."""

from __future__ import annotations

import pytest

from sqltrack.env import REDACTED, is_secret_name, redact_env


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
