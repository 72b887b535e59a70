"""Config layering: defaults < config.yaml < environment; generated secrets; redaction; CLI."""

import subprocess
import sys

import pytest
import yaml

from kowalski.config import DEFAULTS_FILE, ConfigError, load_config
from tests.conftest import ROOT, isolated_environ


def _root(tmp_path, local: dict | None = None):
    tmp_path.mkdir(parents=True, exist_ok=True)
    if local is not None:
        (tmp_path / "config.yaml").write_text(yaml.safe_dump(local))
    return tmp_path


def test_layering_defaults_local_env(tmp_path):
    root = _root(tmp_path, {"database": {"name": "from_file"}, "kafka": {"bootstrap_servers": "h:1"}})
    cfg = load_config(root=root, environ={})
    assert cfg["database"]["name"] == "from_file"
    assert cfg["database"]["uri"] == "mongodb://127.0.0.1:27017/"  # untouched default survives the merge
    assert cfg["kafka"]["bootstrap_servers"] == "h:1"
    env = {
        "KOWALSKI_KAFKA_BOOTSTRAP_SERVERS": "k:9",           # single underscores, resolved on known keys
        "KOWALSKI_DATABASE__EMBEDDED__PORT": "27999",        # explicit nesting, YAML-typed
        "KOWALSKI_MONGODB_URI": "mongodb://db.example:27017/",
        "KOWALSKI_API_JWT_EXP_DELTA_SECONDS": "3600",
    }
    cfg = load_config(root=root, environ=env)
    assert cfg["kafka"]["bootstrap_servers"] == "k:9"
    assert cfg["database"]["embedded"]["port"] == 27999
    assert cfg["database"]["uri"] == "mongodb://db.example:27017/"
    assert cfg["api"]["jwt_exp_delta_seconds"] == 3600
    assert cfg["database"]["name"] == "from_file"


def test_unknown_env_key_and_bad_yaml_are_clear_errors(tmp_path):
    root = _root(tmp_path)
    with pytest.raises(ConfigError, match="KOWALSKI_NOPE_X: no such config key"):
        load_config(root=root, environ={"KOWALSKI_NOPE_X": "1"})
    (tmp_path / "config.yaml").write_text("database: [unclosed\n")
    with pytest.raises(ConfigError, match="config.yaml: invalid YAML"):
        load_config(root=root, environ={})


def test_generated_secrets_persist_and_are_redacted(tmp_path):
    root = _root(tmp_path)
    env = {"KOWALSKI_PATHS__VAR": str(tmp_path / "var")}
    a = load_config(root=root, environ=env)
    b = load_config(root=root, environ=env)
    pw = a["admin"]["password"]
    assert pw and len(pw) >= 24 and pw == b["admin"]["password"]
    assert a["secrets"]["jwt_secret_key"] == b["secrets"]["jwt_secret_key"]
    secrets_file = tmp_path / "var" / "secrets.yaml"
    assert oct(secrets_file.stat().st_mode & 0o777) == "0o600"
    red = a.redacted()
    assert red["admin"]["password"] == "********" and pw not in yaml.safe_dump(red)
    # a password set by the operator wins over the generated one
    c = load_config(root=root, environ={**env, "KOWALSKI_ADMIN__PASSWORD": "s3cret"})
    assert c["admin"]["password"] == "s3cret"
    # credentials inside a URI are redacted too
    d = load_config(root=root, environ={**env, "KOWALSKI_MONGODB_URI": "mongodb://u:pw@h:1/"})
    assert d.redacted()["database"]["uri"] == "mongodb://u:********@h:1/"


def _cli(*args, env):
    return subprocess.run([sys.executable, "-m", "kowalski.cli", *args], capture_output=True, text=True,
                          env=env, cwd=ROOT)


def test_cli_config_get(tmp_path):
    """The CLI on a project root of the test's own (the packaged defaults only), with no KOWALSKI_*
    variable from the developer's environment: what it prints comes from the defaults and from here."""
    root = _root(tmp_path / "root")
    env = isolated_environ(tmp_path, KOWALSKI_ROOT=str(root), KOWALSKI_PATHS__VAR=str(tmp_path / "var"),
                           KOWALSKI_DATABASE__NAME="cli_db")
    r = _cli("config", "get", "database.name", env=env)
    assert r.returncode == 0 and r.stdout.strip() == "cli_db"
    hidden = _cli("config", "get", "admin.password", env=env)
    shown = _cli("config", "get", "admin.password", "--reveal", env=env)
    assert hidden.stdout.strip() == "********"
    stored = yaml.safe_load((tmp_path / "var" / "secrets.yaml").read_text())
    assert shown.stdout.strip() == stored["admin.password"]
    full = _cli("config", env=env)
    assert full.returncode == 0 and stored["admin.password"] not in full.stdout
    defaults = yaml.safe_load(DEFAULTS_FILE.read_text())
    assert yaml.safe_load(full.stdout)["kafka"]["bootstrap_servers"] == defaults["kafka"]["bootstrap_servers"]
    bad = _cli("config", "get", "no.such.key", env=env)
    assert bad.returncode == 2 and bad.stderr.strip() == "kowalski: error: no config key 'no.such.key'"
