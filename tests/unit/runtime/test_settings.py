"""Per-process settings: YAML plus environment (env wins), frozen, errors that say what to fix."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from kubewright.runtime.settings import ProcessSettings, SettingsError, load_settings, settings_config

pytestmark = pytest.mark.unit


class LeaderSettings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    lease_name: str = "demo"
    lease_duration: float = Field(default=15.0, gt=0)


class DemoSettings(ProcessSettings):
    model_config = settings_config("DEMO_")
    webhook_port: int = Field(default=9443, ge=1, le=65535)
    log_level: Literal["debug", "info", "warning"] = "info"
    leader: LeaderSettings = LeaderSettings()


class Tagged(ProcessSettings):
    model_config = settings_config("TAGGED_")
    tags: list[str] = Field(default_factory=list)


class NeedsCluster(ProcessSettings):
    model_config = settings_config("NEEDS_")
    cluster_name: str


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (
        "DEMO_WEBHOOK_PORT",
        "DEMO_LOG_LEVEL",
        "DEMO_LEADER__LEASE_NAME",
        "DEMO_LEADER__LEASE_DURATION",
        "NEEDS_CLUSTER_NAME",
    ):
        monkeypatch.delenv(name, raising=False)


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(text)
    return path


def test_defaults_without_file_or_environment() -> None:
    loaded = load_settings(DemoSettings)
    assert loaded == DemoSettings()
    assert loaded.webhook_port == 9443


def test_file_values_are_read(tmp_path: Path) -> None:
    path = write(tmp_path, "webhook_port: 8443\nleader:\n  lease_name: from-file\n")
    loaded = load_settings(DemoSettings, path)
    assert loaded.webhook_port == 8443
    assert loaded.leader == LeaderSettings(lease_name="from-file")


def test_environment_wins_over_the_file_including_nested_fields(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write(tmp_path, "webhook_port: 8443\nleader:\n  lease_name: from-file\n  lease_duration: 30\n")
    monkeypatch.setenv("DEMO_WEBHOOK_PORT", "7443")
    monkeypatch.setenv("DEMO_LEADER__LEASE_NAME", "from-env")
    loaded = load_settings(DemoSettings, path)
    assert loaded.webhook_port == 7443
    assert loaded.leader == LeaderSettings(lease_name="from-env", lease_duration=30)  # sibling kept


def test_settings_are_frozen() -> None:
    loaded = load_settings(DemoSettings)
    with pytest.raises(ValidationError, match="frozen"):
        loaded.webhook_port = 1  # type: ignore[misc]
    with pytest.raises(ValidationError, match="frozen"):
        loaded.leader.lease_name = "x"  # type: ignore[misc]


def test_errors_name_the_field_its_variable_what_is_allowed_and_the_value(tmp_path: Path) -> None:
    path = write(tmp_path, "webhook_port: 70000\nlog_level: chatty\nleader:\n  lease_duration: -1\n")
    with pytest.raises(SettingsError) as caught:
        load_settings(DemoSettings, path)
    assert caught.value.problems == [
        "webhook_port (env DEMO_WEBHOOK_PORT): Input should be less than or equal to 65535 (got 70000)",
        "log_level (env DEMO_LOG_LEVEL): Input should be 'debug', 'info' or 'warning' (got 'chatty')",
        "leader.lease_duration (env DEMO_LEADER__LEASE_DURATION): Input should be greater than 0 (got -1)",
    ]
    assert str(path) in str(caught.value)


def test_unknown_keys_are_errors_listing_the_allowed_ones(tmp_path: Path) -> None:
    path = write(tmp_path, "webhook_prot: 1\nleader:\n  lease: x\n")
    with pytest.raises(SettingsError) as caught:
        load_settings(DemoSettings, path)
    assert sorted(caught.value.problems) == [
        "leader.lease: unknown setting; allowed here: lease_duration, lease_name",
        "webhook_prot: unknown setting; allowed here: leader, log_level, webhook_port",
    ]


def test_a_bad_environment_value_says_it_came_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DEMO_WEBHOOK_PORT", "https")
    with pytest.raises(SettingsError) as caught:
        load_settings(DemoSettings)
    (problem,) = caught.value.problems
    assert problem.startswith("webhook_port (env DEMO_WEBHOOK_PORT) [from the environment]: ")
    assert "(got 'https')" in problem


def test_structured_environment_values_must_be_json(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TAGGED_TAGS", "a,b")
    with pytest.raises(SettingsError, match=r'"tags".*written as JSON'):
        load_settings(Tagged)
    monkeypatch.setenv("TAGGED_TAGS", '["a", "b"]')
    assert load_settings(Tagged).tags == ["a", "b"]


def test_missing_required_settings_are_named() -> None:
    with pytest.raises(SettingsError) as caught:
        load_settings(NeedsCluster)
    assert caught.value.problems == ["cluster_name (env NEEDS_CLUSTER_NAME): Field required"]


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("- a\n- b\n", "the top level must be a mapping of settings, not list"),
        ("a: [1, 2\n", "not valid YAML"),
    ],
)
def test_unusable_files_are_reported_with_their_path(tmp_path: Path, text: str, problem: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(SettingsError, match=str(path)) as caught:
        load_settings(DemoSettings, path)
    assert problem in caught.value.problems[0]


def test_a_missing_file_is_reported(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="cannot read the file"):
        load_settings(DemoSettings, tmp_path / "absent.yaml")


def test_an_empty_file_means_defaults(tmp_path: Path) -> None:
    assert load_settings(DemoSettings, write(tmp_path, "")) == DemoSettings()


@pytest.mark.parametrize("prefix", ["", "demo_", "DEMO", "1DEMO_", "DE-MO_"])
def test_env_prefixes_must_be_upper_case_and_end_in_an_underscore(prefix: str) -> None:
    with pytest.raises(ValueError, match="must be upper case"):
        settings_config(prefix)


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    file_port=st.one_of(st.none(), st.integers(1, 65535)),
    env_port=st.one_of(st.none(), st.integers(1, 65535)),
)
def test_the_environment_always_wins(
    file_port: int | None, env_port: int | None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write(tmp_path, "" if file_port is None else f"webhook_port: {file_port}\n")
    if env_port is None:
        monkeypatch.delenv("DEMO_WEBHOOK_PORT", raising=False)
    else:
        monkeypatch.setenv("DEMO_WEBHOOK_PORT", str(env_port))
    expected = env_port if env_port is not None else file_port if file_port is not None else 9443
    assert load_settings(DemoSettings, path).webhook_port == expected
