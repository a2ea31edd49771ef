"""Capturing the environment and arguments without their secrets (sqltrack._base.secrets)."""

from __future__ import annotations

import sys
from typing import Any

import pytest

from sqltrack._base.secrets import REDACTED, is_secret_name, redact_args, redact_env, redact_text
from sqltrack.args import detect_args


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
        "PGPASSFILE",  # a path: the password is in the file
        "SSH_ASKPASS",  # a program that asks
        "GIT_ASKPASS",
        "PIN_MEMORY",
        "I_MPI_PIN",
        "TOKENIZERS_PARALLELISM",
        "tokenizer",
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
        "--num-passes", "3",  # not a secret name
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


@pytest.mark.parametrize(
    "name",
    [
        "MYSQL_PWD",
        "DB_PWD",
        "SSHPASS",
        "LDAP_BINDPW",
        "ROOTPW",
        "GPGPASSPHRASE",
        "PKCS11_PIN",
        "pin",
    ],
)
def test_password_abbreviations_are_secret_names(name: str) -> None:
    assert is_secret_name(name)
    assert redact_env({name: "hunter2", "PWD": "/home/me"}) == {name: REDACTED, "PWD": "/home/me"}


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (
            "DefaultEndpointsProtocol=https;AccountName=x;AccountKey=abc==;EndpointSuffix=core.windows.net",
            f"DefaultEndpointsProtocol=https;AccountName=x;AccountKey={REDACTED};EndpointSuffix=core.windows.net",
        ),
        (
            "Endpoint=sb://ns.servicebus.windows.net/;SharedAccessKeyName=Root;SharedAccessKey=k3y=",
            f"Endpoint=sb://ns.servicebus.windows.net/;SharedAccessKeyName=Root;SharedAccessKey={REDACTED}",
        ),
        (
            "BlobEndpoint=https://x.blob.core.windows.net/;SharedAccessSignature=sv=2021&sig=ab%3D",
            f"BlobEndpoint=https://x.blob.core.windows.net/;SharedAccessSignature={REDACTED}",
        ),
        ("AccountKey=abc==;AccountName=x", f"AccountKey={REDACTED};AccountName=x"),
        ("sv=2021-06-08&ss=b&srt=sco&sig=abcd%3D", f"sv=2021-06-08&ss=b&srt=sco&sig={REDACTED}"),
        (
            "BlobEndpoint=https://x/;sv=2021&sig=abcd%3D",
            f"BlobEndpoint=https://x/;sv=2021&sig={REDACTED}",
        ),
        (
            "Server=db;User ID=me;Password=my pass;Database=y",
            f"Server=db;User ID=me;Password={REDACTED};Database=y",
        ),
        ("Driver={ODBC};UID=me;PWD=s3cret;", f"Driver={{ODBC}};UID=me;PWD={REDACTED};"),
    ],
)
def test_connection_string_parts_and_sas_signatures(value: str, expected: str) -> None:
    assert redact_env({"AZURE_STORAGE_CONNECTION_STRING": value}) == {
        "AZURE_STORAGE_CONNECTION_STRING": expected
    }


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("user=me password='s3 cret' dbname=x", f"user=me password={REDACTED} dbname=x"),
        ("host=db password=a;b dbname=x", f"host=db password={REDACTED} dbname=x"),
        ("password=a;b", f"password={REDACTED}"),
        ("bad password=abc at line 3; retrying", f"bad password={REDACTED} at line 3; retrying"),
    ],
)
def test_libpq_passwords_are_not_cut_at_a_semicolon(value: str, expected: str) -> None:
    """A libpq value ends at a space, and may hold a ``;``: no connection-string part."""
    assert redact_text(value) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("https://TOKEN@host/simple", f"https://{REDACTED}@host/simple"),
        ("https://abc123@o1.ingest.sentry.io/42", f"https://{REDACTED}@o1.ingest.sentry.io/42"),
        ("https://ghp_xxx@github.com/x/y.git", f"https://{REDACTED}@github.com/x/y.git"),
        (
            "git+https://me@github.com/x/y.git@v1.0",
            f"git+https://{REDACTED}@github.com/x/y.git@v1.0",
        ),
        ("wss://t0k@stream.example/feed", f"wss://{REDACTED}@stream.example/feed"),
        ("https://TOKEN:@pypi.fury.io/me/", f"https://{REDACTED}:@pypi.fury.io/me/"),
        ("https://ghp_x:x-oauth-basic@github.com/x", f"https://{REDACTED}:{REDACTED}@github.com/x"),
        ("ssh://glpat-abc@gitlab.com/x", f"ssh://{REDACTED}@gitlab.com/x"),
        ("postgresql://" + "0f" * 16 + "@db/x", f"postgresql://{REDACTED}@db/x"),
        ("redis://" + "A" * 40 + "@cache/0", f"redis://{REDACTED}@cache/0"),
    ],
)
def test_tokens_as_the_user_of_a_url(value: str, expected: str) -> None:
    assert redact_text(value) == expected


def test_tokens_as_the_user_of_a_url_in_env_and_args() -> None:
    env = {
        "PIP_INDEX_URL": "https://s3cr3t@pypi.example/simple",
        "SENTRY_DSN": "https://abc123@o1.ingest.sentry.io/42",
    }
    assert redact_env(env) == {
        "PIP_INDEX_URL": f"https://{REDACTED}@pypi.example/simple",
        "SENTRY_DSN": f"https://{REDACTED}@o1.ingest.sentry.io/42",
    }
    args = detect_args(["--remote", "https://ghp_xxx@github.com/x/y.git"])
    assert redact_args(args) == {"remote": f"https://{REDACTED}@github.com/x/y.git"}


@pytest.mark.parametrize(
    "value",
    [
        "ssh://git@host/x",
        "git+ssh://git@github.com/x/y.git",
        "postgresql://alice@db/x",
        "postgresql://service_account_reporting@db/x",
        "ftp://anonymous@ftp.example/pub",
        "git@github.com:x/y",  # scp-like: no scheme
        "https://github.com/x/y.git@v1.0",  # an @ in the path
        "https://example.org/users/alice@example.org",
        "see https://example.org and mail alice@example.org",
    ],
)
def test_user_names_of_urls_are_kept(value: str) -> None:
    assert redact_text(value) == value


@pytest.mark.usefixtures("client")
def test_an_artifact_uri_keeps_no_token(run: Any) -> None:
    artifact = run.log_artifact("https://ghp_xxx@files.example/f.bin")
    assert artifact.uri == f"https://{REDACTED}@files.example/f.bin"


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("token", 314159),
        ("pin", 1234),
        ("password", 123456),
        ("otp", 123456),
        ("api_key", 12345),
        ("hf_token", 3.14),
        ("db_pass", 42),
        ("salt", 7),
    ],
)
def test_numbers_of_secret_arguments_are_redacted(name: str, value: object) -> None:
    assert redact_args({name: value}) == {name: REDACTED}
    assert redact_args({name: [value, value]}) == {name: [REDACTED, REDACTED]}
    assert redact_args(detect_args([f"--{name}", str(value)])) == {name: REDACTED}


@pytest.mark.parametrize(
    "name",
    [
        "num_passes", "max_tokens", "max_new_tokens", "num_tokens", "n_tokens",
        "tokens_per_batch", "token_budget", "train_tokens", "max_token_len", "key_dim",
        "key_size", "n_keys", "num_keys", "num_key_value_heads", "pad_token_id", "eos_token_id",
        "pass_rate", "pass_k", "pass_at_k", "auth_timeout", "token_ttl", "password_min_length",
        "top_k", "lr", "sig_level", "key_seed", "epochs",
    ],
)  # fmt: skip
def test_hyperparameters_that_look_secret_stay_numbers(name: str) -> None:
    assert redact_args({name: 64}) == {name: 64}
    assert redact_args({name: [0.5, 2]}) == {name: [0.5, 2]}


def test_flags_of_secret_arguments_stay() -> None:
    assert redact_args(detect_args(["--use-auth", "--token", "true"])) == {
        "use_auth": True,
        "token": True,
    }


def test_tuples_are_redacted_like_lists() -> None:
    args = {"api_keys": ("k1", "k2"), "dsns": ("postgres://a:pw@h/d",)}
    assert redact_args(args) == {
        "api_keys": [REDACTED, REDACTED],
        "dsns": [f"postgres://a:{REDACTED}@h/d"],
    }


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("postgres://u:p@SS@db/x", f"postgres://u:{REDACTED}@db/x"),
        ("postgres://u:p@S@S@db/x?opt=a@b", f"postgres://u:{REDACTED}@db/x?opt=a@b"),
        ("https://me:p@ss@host/f.bin#a@b", f"https://me:{REDACTED}@host/f.bin#a@b"),
        ("postgres://u:p/ss@db/x", f"postgres://u:{REDACTED}@db/x"),  # as before
        (
            "x postgres://a:p@1@h1/x,postgres://b:p@2@h2/y",
            f"x postgres://a:{REDACTED}@h1/x,postgres://b:{REDACTED}@h2/y",
        ),
    ],
)
def test_a_password_with_an_at_sign_is_redacted_whole(value: str, expected: str) -> None:
    assert redact_text(value) == expected
