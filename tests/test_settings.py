"""Settings: defaults, then the instance's pligt.toml, then PLIGT_* variables."""

from __future__ import annotations

from pathlib import Path

import pytest

from pligt.core.errors import ConfigurationError
from pligt.settings import load_settings
from pligt.settings import resolve_instance
from pligt.web import create_app
from tests.support.app import Instance


def test_defaults_live_in_the_instance_folder(tmp_path: Path) -> None:
    s = load_settings(tmp_path, env={})
    assert s.instance == tmp_path
    assert s.storage == (tmp_path / "files").as_uri()
    assert s.catalog == str(tmp_path / "catalog.sqlite3")
    assert (s.retention_days, s.max_upload_bytes) == (183, 2 * 1024**3)
    # NetarchiveSuite's defaults: 1200 s at 500 KiB/s per fetch, 1 GB per domain and job.
    assert (s.fetch_budget_bytes, s.site_budget_bytes) == (614_400_000, 1_000_000_000)
    assert (s.host, s.port) == ("127.0.0.1", 8000)


def test_instance_from_argument_then_environment_then_cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert resolve_instance(tmp_path / "a", {"PLIGT_INSTANCE": str(tmp_path / "b")}) == tmp_path / "a"
    assert resolve_instance(None, {"PLIGT_INSTANCE": str(tmp_path / "b")}) == tmp_path / "b"
    monkeypatch.chdir(tmp_path)
    assert resolve_instance(None, {}) == tmp_path / "instance"


def test_file_then_environment_override_defaults(tmp_path: Path) -> None:
    (tmp_path / "pligt.toml").write_text('retention_days = 200\nsite_name = "Konsulent ApS"\nport = 9000\n')
    s = load_settings(tmp_path, env={"PLIGT_PORT": "9100", "PLIGT_REALM": "Deposit"})
    assert (s.retention_days, s.site_name, s.port, s.realm) == (200, "Konsulent ApS", 9100, "Deposit")


@pytest.mark.parametrize(
    ("config", "env", "says"),
    [
        ("retention_days = 90\n", {}, "minimum of 183"),
        ("", {"PLIGT_RETENTION_DAYS": "182"}, "minimum of 183"),
        ("", {"PLIGT_PORT": "eighty"}, "PLIGT_PORT"),
        ("prot = 3\n", {}, "unknown setting 'prot'"),
        ("", {"PLIGT_STORAGEE": "x"}, "unknown setting 'storagee'"),
        ("retention_days = [\n", {}, "not valid TOML"),
        ("", {"PLIGT_WORKERS": "0"}, "workers"),
        ("", {"PLIGT_REALM": 'a"b'}, "realm"),
        ("", {"PLIGT_BASE_URL": "ftp://x"}, "base_url"),
        ("realm = 5\n", {}, "must be a string"),
    ],
)
def test_bad_values_stop_start_up_with_one_clear_line(
    tmp_path: Path, config: str, env: dict[str, str], says: str
) -> None:
    (tmp_path / "pligt.toml").write_text(config)
    with pytest.raises(ConfigurationError, match=says) as info:
        load_settings(tmp_path, env=env)
    assert "\n" not in info.value.message


@pytest.mark.parametrize(("url", "says"), [("ftp://nowhere/x", "unknown scheme"), ("file://rel/x", "file:///")])
def test_bad_storage_url_stops_start_up(tmp_path: Path, url: str, says: str) -> None:
    with pytest.raises(ConfigurationError, match=says):
        load_settings(tmp_path, env={"PLIGT_STORAGE": url})


def test_uninitialised_instance_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="pligt init"):
        create_app(load_settings(tmp_path, env={}))


def test_create_app_from_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, instance: Instance) -> None:
    monkeypatch.setenv("PLIGT_INSTANCE", str(instance.path))
    app = create_app()
    assert app.extensions["pligt"].settings.instance == instance.path
    assert app.test_client().get("/healthz").status_code == 200
