"""Layered configuration: kowalski/config.defaults.yaml < config.yaml < environment < generated secrets.

Environment variables start with ``KOWALSKI_``. ``__`` separates nesting levels explicitly
(``KOWALSKI_KAFKA__BOOTSTRAP_SERVERS``); a single ``_`` is resolved greedily against the keys
that exist in the defaults (``KOWALSKI_KAFKA_BOOTSTRAP_SERVERS``). ``KOWALSKI_MONGODB_URI`` is
an alias of ``database.uri``. Values are parsed as YAML scalars (``true``, ``5``, ``null``).
"""

from __future__ import annotations

import copy
import os
import re
import secrets as _secrets
from pathlib import Path
from typing import Any, Mapping

import yaml

# The defaults ship inside the package (an installed image has no source checkout); the project
# root -- where config.yaml and, by default, var/ live -- is the checkout, else KOWALSKI_ROOT or the cwd.
DEFAULTS_FILE = Path(__file__).resolve().with_name("config.defaults.yaml")
_CHECKOUT = Path(__file__).resolve().parent.parent
PROJECT_ROOT = _CHECKOUT if (_CHECKOUT / "pyproject.toml").exists() else Path.cwd()
ENV_PREFIX = "KOWALSKI_"
ENV_ALIASES = {"KOWALSKI_MONGODB_URI": "database.uri"}
# Environment variables that configure the tooling itself, not config keys.
ENV_IGNORED = {"KOWALSKI_CONFIG", "KOWALSKI_ROOT", "KOWALSKI_LOG_LEVEL",
               "KOWALSKI_URL", "KOWALSKI_TOKEN"}  # the last two: kowalski.client's, in users' servers
ENV_IGNORED_PREFIXES = ("KOWALSKI_TEST_",)  # test-suite switches
SECRET_KEY_PATTERN = re.compile(r"(password|secret|token|api_key|private)", re.I)
GENERATED_SECRETS = ("admin.password", "secrets.jwt_secret_key", "secrets.hub_cookie_secret",
                     "secrets.hub_crypt_key", "secrets.hub_gateway_token", "secrets.hub_dashboards_token")


class ConfigError(Exception):
    """A configuration problem the operator must fix (bad YAML, unknown key...)."""


def deep_merge(base: dict, override: Mapping) -> dict:
    """Return ``base`` updated recursively with ``override`` (dicts merge, the rest replaces)."""
    out = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def _load_yaml(path: Path) -> dict:
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: invalid YAML ({exc.__class__.__name__}): fix or remove the file") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    return data


def _resolve_env_key(tree: Mapping, name: str) -> list[str] | None:
    """Map ``kafka_bootstrap_servers`` to ``["kafka", "bootstrap_servers"]`` using known keys."""
    if "__" in name:
        return [part for part in name.split("__")]
    if name in tree:
        return [name]
    for key in sorted(tree, key=len, reverse=True):
        if name.startswith(key + "_") and isinstance(tree[key], Mapping):
            rest = _resolve_env_key(tree[key], name[len(key) + 1 :])
            if rest:
                return [key, *rest]
    return None


def _set_path(tree: dict, path: list[str], value: Any) -> None:
    node = tree
    for part in path[:-1]:
        if not isinstance(node.get(part), dict):
            node[part] = {}
        node = node[part]
    node[path[-1]] = value


def env_overrides(tree: Mapping, environ: Mapping[str, str]) -> dict:
    out: dict = {}
    for var, raw in environ.items():
        if not var.startswith(ENV_PREFIX) or var in ENV_IGNORED or var.startswith(ENV_IGNORED_PREFIXES):
            continue
        try:
            value = yaml.safe_load(raw) if raw != "" else ""
        except yaml.YAMLError:
            value = raw
        if var in ENV_ALIASES:
            path = ENV_ALIASES[var].split(".")
        else:
            path = _resolve_env_key(tree, var[len(ENV_PREFIX) :].lower())
            if path is None:
                raise ConfigError(f"{var}: no such config key (see `kowalski config`)")
        _set_path(out, path, value)
    return out


def get_path(tree: Mapping, dotted: str) -> Any:
    node: Any = tree
    for part in dotted.split("."):
        if isinstance(node, Mapping) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            raise KeyError(dotted)
    return node


class Config(dict):
    """The merged configuration (a dict) with a few conveniences."""

    def get_path(self, dotted: str, default: Any = KeyError) -> Any:
        try:
            return get_path(self, dotted)
        except KeyError:
            if default is KeyError:
                raise
            return default

    @property
    def root(self) -> Path:
        return Path(self["_root"])

    def path(self, dotted: str) -> Path:
        """A path from config, relative paths taken from the project root."""
        p = Path(str(self.get_path(dotted)))
        return p if p.is_absolute() else (self.root / p).resolve()

    @property
    def var_dir(self) -> Path:
        return self.path("paths.var")

    def redacted(self) -> dict:
        return redact(self)


def redact(tree: Any, key: str = "") -> Any:
    if isinstance(tree, Mapping):
        return {k: redact(v, k) for k, v in tree.items() if not str(k).startswith("_")}
    if isinstance(tree, list):
        return [redact(v) for v in tree]
    if tree is not None and SECRET_KEY_PATTERN.search(key):
        return "********"
    if isinstance(tree, str) and "://" in tree and "@" in tree:
        return re.sub(r"://([^:/@]+):([^@]+)@", r"://\1:********@", tree)
    return tree


def _ensure_secrets(cfg: dict, var_dir: Path) -> None:
    """Fill unset generated secrets from var/secrets.yaml, creating them on first use."""
    missing = [k for k in GENERATED_SECRETS if get_path(cfg, k) in (None, "")]
    if not missing:
        return
    path = var_dir / "secrets.yaml"
    stored: dict = {}
    if path.exists():
        try:
            stored = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path} is corrupt: delete it to regenerate secrets") from exc
    changed = False
    for key in missing:
        if not stored.get(key):
            stored[key] = _secrets.token_urlsafe(24 if "password" in key else 48)
            changed = True
        _set_path(cfg, key.split("."), stored[key])
    if changed:
        var_dir.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(yaml.safe_dump(stored))
        tmp.chmod(0o600)
        tmp.replace(path)


def load_config(
    root: Path | str | None = None,
    environ: Mapping[str, str] | None = None,
    local_file: Path | str | None = None,
    generate_secrets: bool = True,
) -> Config:
    environ = os.environ if environ is None else environ
    root = Path(root or environ.get("KOWALSKI_ROOT") or PROJECT_ROOT).resolve()
    cfg = _load_yaml(DEFAULTS_FILE)
    local = Path(local_file or environ.get("KOWALSKI_CONFIG") or root / "config.yaml")
    if local.exists():
        cfg = deep_merge(cfg, _load_yaml(local))
    cfg = deep_merge(cfg, env_overrides(cfg, environ))
    cfg["_root"] = str(root)
    config = Config(cfg)
    if generate_secrets:
        _ensure_secrets(config, config.var_dir)
    return config


_cached: Config | None = None


def get_config(reload: bool = False) -> Config:
    """The process-wide config, loaded once."""
    global _cached
    if _cached is None or reload:
        _cached = load_config()
    return _cached
