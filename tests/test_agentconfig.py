"""pa.config: agent-managed JSON values, read lazily, cached per namespace, reloaded on demand,
keeping the last good values (with one warning per bad file version) when a file is malformed."""

from __future__ import annotations

import json
import logging
import threading
from pathlib import Path
from typing import Any

import pytest

from pontem_async import agentconfig
from pontem_async.agentconfig import AgentConfig


@pytest.fixture
def config_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("PONTEM_CONFIG_DIR", str(tmp_path))
    return tmp_path


@pytest.fixture
def cfg() -> AgentConfig:
    return AgentConfig()


def write(directory: Path, namespace: str, content: Any) -> None:
    path = directory / f"{namespace}.json"
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content if isinstance(content, str) else json.dumps(content))


def warnings_of(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == "pontem_async" and r.levelno == logging.WARNING
    ]


def test_reads_values_of_any_json_type(config_dir: Path, cfg: AgentConfig) -> None:
    write(config_dir, "scoring", {"threshold": 0.9, "labels": ["a"], "limits": {"max": 3}})
    assert cfg("scoring", "threshold", default=0.85) == 0.9
    assert cfg("scoring", "labels") == ["a"]
    assert cfg("scoring", "limits") == {"max": 3}
    assert cfg("scoring", "absent", default=0.85) == 0.85
    assert cfg("scoring", "absent") is None


def test_missing_file_gives_the_default(config_dir: Path, cfg: AgentConfig) -> None:
    assert cfg("nothing", "threshold", default=0.85) == 0.85
    assert dict(cfg.namespace("nothing")) == {}


def test_default_directory_is_the_pontem_agents(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PONTEM_CONFIG_DIR", raising=False)
    opened: list[str] = []
    real_open = open

    def spy(path: str, *args: Any, **kwargs: Any) -> Any:
        opened.append(path)
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(agentconfig, "open", spy, raising=False)
    AgentConfig()("scoring", "threshold")
    assert opened == ["/var/lib/pontem/config/scoring.json"]


def test_read_is_lazy_and_cached(config_dir: Path, cfg: AgentConfig) -> None:
    write(config_dir, "scoring", {"threshold": 0.9})
    fresh = AgentConfig()  # nothing read yet: a change before first access is seen
    write(config_dir, "scoring", {"threshold": 0.7})
    assert fresh("scoring", "threshold") == 0.7
    write(config_dir, "scoring", {"threshold": 0.5})
    assert fresh("scoring", "threshold") == 0.7  # cached
    assert cfg("scoring", "threshold") == 0.5


def test_reload_rereads_every_cached_namespace(config_dir: Path, cfg: AgentConfig) -> None:
    write(config_dir, "a", {"k": 1})
    write(config_dir, "b", {"k": 1})
    assert (cfg("a", "k"), cfg("b", "k")) == (1, 1)
    write(config_dir, "a", {"k": 2})
    (config_dir / "b.json").unlink()
    cfg.reload()
    assert (cfg("a", "k"), cfg("b", "k", default="gone")) == (2, "gone")


def test_reload_follows_a_changed_config_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cfg: AgentConfig
) -> None:
    for name, value in (("one", 1), ("two", 2)):
        (tmp_path / name).mkdir()
        write(tmp_path / name, "ns", {"k": value})
    monkeypatch.setenv("PONTEM_CONFIG_DIR", str(tmp_path / "one"))
    assert cfg("ns", "k") == 1
    monkeypatch.setenv("PONTEM_CONFIG_DIR", str(tmp_path / "two"))
    assert cfg("ns", "k") == 1
    cfg.reload()
    assert cfg("ns", "k") == 2


@pytest.mark.parametrize("bad", ["{not json", "[1, 2]", '"text"', "null", b'{"k": "\xff"}'])
def test_malformed_file_keeps_last_good_values_with_one_warning(
    config_dir: Path, cfg: AgentConfig, caplog: pytest.LogCaptureFixture, bad: str | bytes
) -> None:
    write(config_dir, "scoring", {"threshold": 0.9})
    assert cfg("scoring", "threshold") == 0.9
    write(config_dir, "scoring", bad)
    with caplog.at_level(logging.WARNING, logger="pontem_async"):
        cfg.reload()
        cfg.reload()
        assert cfg("scoring", "threshold") == 0.9
    [warning] = warnings_of(caplog)
    assert str(config_dir / "scoring.json") in warning
    assert warning.endswith("keeping the last good values")


def test_unreadable_file_keeps_defaults_with_one_warning(
    config_dir: Path, cfg: AgentConfig, caplog: pytest.LogCaptureFixture
) -> None:
    (config_dir / "ns.json").mkdir()
    with caplog.at_level(logging.WARNING, logger="pontem_async"):
        assert cfg("ns", "k", default=1) == 1
        cfg.reload()
    [warning] = warnings_of(caplog)
    assert "cannot be read" in warning


def test_each_bad_version_warns_once_and_a_good_one_recovers(
    config_dir: Path, cfg: AgentConfig, caplog: pytest.LogCaptureFixture
) -> None:
    write(config_dir, "scoring", "{bad one")
    with caplog.at_level(logging.WARNING, logger="pontem_async"):
        assert cfg("scoring", "threshold", default=0.85) == 0.85
        cfg.reload()
        write(config_dir, "scoring", "{bad two")
        cfg.reload()
        cfg.reload()
    assert len(warnings_of(caplog)) == 2
    assert warnings_of(caplog)[0].endswith("using defaults")
    write(config_dir, "scoring", {"threshold": 0.6})
    cfg.reload()
    assert cfg("scoring", "threshold") == 0.6


def test_returned_values_are_copies_and_the_snapshot_is_read_only(
    config_dir: Path, cfg: AgentConfig
) -> None:
    write(config_dir, "ns", {"labels": ["a"], "limits": {"max": 3}})
    cfg("ns", "labels").append("b")
    snapshot = cfg.namespace("ns")
    snapshot["limits"]["max"] = 99
    assert (cfg("ns", "labels"), cfg("ns", "limits")) == (["a"], {"max": 3})
    with pytest.raises(TypeError):
        snapshot["new"] = 1  # type: ignore[index]


def test_snapshot_does_not_change_on_reload(config_dir: Path, cfg: AgentConfig) -> None:
    write(config_dir, "ns", {"k": 1})
    snapshot = cfg.namespace("ns")
    write(config_dir, "ns", {"k": 2})
    cfg.reload()
    assert (snapshot["k"], cfg.namespace("ns")["k"]) == (1, 2)


@pytest.mark.parametrize(
    ("namespace", "key", "argument"),
    [
        (3, "k", "namespace"),
        ("", "k", "namespace"),
        ("a/b", "k", "namespace"),
        ("..", "k", "namespace"),
        ("../etc/passwd", "k", "namespace"),
        ("a\\b", "k", "namespace"),
        ("ns", 3, "key"),
    ],
)
def test_invalid_arguments_raise_value_error_naming_them(
    cfg: AgentConfig, namespace: Any, key: Any, argument: str
) -> None:
    with pytest.raises(ValueError, match=rf"^{argument}: "):
        cfg(namespace, key)
    if argument == "namespace":
        with pytest.raises(ValueError, match=r"^namespace: "):
            cfg.namespace(namespace)


def test_concurrent_first_access_reads_once(
    config_dir: Path, cfg: AgentConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(config_dir, "ns", {"k": 1})
    reads: list[str] = []
    real_read = agentconfig._read_into

    def counting(namespace: str, state: Any) -> None:
        reads.append(namespace)
        real_read(namespace, state)

    monkeypatch.setattr(agentconfig, "_read_into", counting)
    results: list[Any] = []
    threads = [threading.Thread(target=lambda: results.append(cfg("ns", "k"))) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert (results, reads) == ([1] * 16, ["ns"])


def test_module_level_config_is_the_callable(config_dir: Path) -> None:
    write(config_dir, "module_level_test", {"k": "v"})
    agentconfig.config.reload()
    assert agentconfig.config("module_level_test", "k") == "v"
