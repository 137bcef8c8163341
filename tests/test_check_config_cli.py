"""`pontem-async check-config FILE [--json]`: the resolved configuration with every credential
redacted, exit status 0; `error: <key path>: <message>` on stderr and exit status 2 otherwise."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from pontem_async.dictconfig import add_check_config_arguments, check_config

SECRETS = ("s3cr3t-url", "s3cr3t-dsn", "s3cr3t-hdr", "s3cr3t-pw", "s3cr3t-key", "s3cr3t-env")

# A third-party handler, importable by the child process through PYTHONPATH.
HANDLER_MODULE = """
from pontem_async.handlers.base import Handler


class SecretHandler(Handler):
    env_overrides = {"url": "PONTEM_AMQP_URL"}
    secret_fields = frozenset({"dsn"})

    def __init__(self, url="amqp://localhost/", *, dsn=None, headers=None, password=None,
                 options=None, **kw):
        super().__init__(**kw)
        if not url.startswith("amqp://"):
            raise ValueError(f"url: expected an amqp:// URL, got {url!r}")
        self.url = url

    async def emit(self, batch):
        pass
"""

CONFIG = """\
version: 1
service: {name: checkout, attributes: {deployment.environment: prod}}
install_signal_handlers: false
handlers:
  fanout:
    class: secret_handlers.SecretHandler
    url: amqp://user:s3cr3t-url@broker:5672/
    dsn: postgres://s3cr3t-dsn
    headers: {Authorization: Bearer s3cr3t-hdr, X-Trace: plain}
    password: s3cr3t-pw
    options: {api_key: s3cr3t-key, region: eu}
"""

EXPECTED_FANOUT = {
    "class": "secret_handlers.SecretHandler",
    "kinds": ["event", "log", "metric", "profile", "series"],
    "level": "trace",
    "filter": None,
    "url": "amqp://user:***@broker:5672/",
    "dsn": "***",
    "headers": {"Authorization": "***", "X-Trace": "***"},
    "password": "***",
    "options": {"api_key": "***", "region": "eu"},
}


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name in list(os.environ):
        if name.startswith("PONTEM_"):
            monkeypatch.delenv(name)
    (tmp_path / "secret_handlers.py").write_text(HANDLER_MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    return tmp_path


def cli(
    workdir: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    child_env = {k: v for k, v in os.environ.items() if not k.startswith("PONTEM_")}
    child_env["PYTHONPATH"] = os.pathsep.join([str(workdir), child_env.get("PYTHONPATH", "")])
    child_env.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "pontem_async", "check-config", *args],
        cwd=workdir,
        env=child_env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_prints_the_resolved_config_with_secrets_redacted(workdir: Path) -> None:
    path = workdir / "config.yaml"
    path.write_text(CONFIG)
    done = cli(workdir, str(path), "--json")
    assert (done.returncode, done.stderr) == (0, "")
    shown = json.loads(done.stdout)
    assert shown["handlers"] == {"fanout": EXPECTED_FANOUT}
    assert shown["service"] == {
        "name": "checkout",
        "version": None,
        "attributes": {"deployment.environment": "prod"},
    }
    for secret in SECRETS:
        assert secret not in done.stdout


def test_secret_from_the_environment_is_redacted_too(workdir: Path) -> None:
    path = workdir / "config.yaml"
    path.write_text(CONFIG)
    done = cli(workdir, str(path), env={"PONTEM_AMQP_URL": "amqp://env:s3cr3t-env@other/"})
    assert done.returncode == 0, done.stderr
    shown = yaml.safe_load(done.stdout)  # without --json: YAML
    assert shown["handlers"]["fanout"]["url"] == "amqp://env:***@other/"
    for secret in SECRETS:
        assert secret not in done.stdout


def test_bad_file_exits_2_naming_the_key_path(workdir: Path) -> None:
    path = workdir / "config.json"
    path.write_text(json.dumps({"service": {"name": "s"}, "pipeline": {"queue_size": -1}}))
    done = cli(workdir, str(path))
    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr == "error: pipeline.queue_size: expected a positive integer, got -1\n"


def test_error_message_never_shows_a_url_password(workdir: Path) -> None:
    path = workdir / "config.yaml"
    path.write_text(CONFIG.replace("amqp://user:s3cr3t-url@", "http://user:s3cr3t-url@"))
    done = cli(workdir, str(path))
    assert done.returncode == 2
    assert done.stderr == (
        "error: handlers.fanout.url: expected an amqp:// URL, got 'http://user:***@broker:5672/'\n"
    )


def test_unparsable_file_exits_2_naming_file_and_line(workdir: Path) -> None:
    path = workdir / "config.json"
    path.write_text('{"version": 1,\n "service": }')
    done = cli(workdir, str(path))
    assert done.returncode == 2
    assert done.stderr.startswith(f"error: {path}:2:13: invalid JSON: ")


def run(*argv: str) -> int:
    parser = argparse.ArgumentParser()
    add_check_config_arguments(parser)
    args = parser.parse_args(argv)
    status: int = args.run(args)
    return status


def test_run_function_prints_json_and_returns_0(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = workdir / "config.yaml"
    path.write_text(CONFIG)
    assert run(str(path), "--json") == 0
    out, err = capsys.readouterr()
    assert json.loads(out) == check_config(path)
    assert json.loads(out)["handlers"]["fanout"] == EXPECTED_FANOUT
    assert err == ""


def test_run_function_returns_2_on_config_error(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = workdir / "config.yaml"
    path.write_text(CONFIG.replace("secret_handlers.SecretHandler", "secret_handlers.Nope"))
    assert run(str(path)) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err == (
        "error: handlers.fanout.class: cannot import 'secret_handlers.Nope': "
        "AttributeError: 'secret_handlers' has no attribute 'Nope'\n"
    )


def test_embedded_default_is_shown_from_the_emit_section(workdir: Path) -> None:
    path = workdir / "config.json"
    path.write_text(json.dumps({"service": {"name": "s"}, "emit": {"dir": "out"}}))
    shown = check_config(path)
    assert shown["emit"] == {"dir": "out", "target": "file"}
    assert shown["handlers"]["file"]["class"] == "pontem_async.handlers.file.RotatingFileHandler"
    assert sorted(shown["handlers"]) == ["console", "file"]


def test_redaction_rules() -> None:
    from pontem_async._redact import redact, redact_text

    assert redact_text("amqp://user:p@ss@host/vhost and https://x:y@z/") == (
        "amqp://user:***@host/vhost and https://x:***@z/"
    )
    assert redact_text("amqp://guest@host/ text://x extra") == "amqp://guest@host/ text://x extra"
    data = {
        "Password": "a",
        "client_secret": "b",
        "X-Api-Key": "c",
        "apikey": "d",
        "auth": "e",
        "credentials": {"k": "v"},
        "token": None,
        "passwd": 1,
        "headers": {"h": "v"},
        "region": "eu",
        "nested": [{"access_token": "t"}],
    }
    assert redact(data) == {
        "Password": "***",
        "client_secret": "***",
        "X-Api-Key": "***",
        "apikey": "***",
        "auth": "***",
        "credentials": "***",
        "token": None,
        "passwd": "***",
        "headers": {"h": "***"},
        "region": "eu",
        "nested": [{"access_token": "***"}],
    }
