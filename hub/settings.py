"""JupyterHub and dask-gateway settings derived from the Kowalski config (one source of truth).

``hub/jupyterhub_config.py`` and ``hub/dask_gateway_config.py`` are two-line files that load the
Kowalski config (defaults < config.yaml < environment < var/secrets.yaml) and call these.
"""

from __future__ import annotations

import hashlib
import os
import re
import sys
from pathlib import Path

from kowalski.config import Config
from kowalski.services.hub import MARKER, chp_bin, hub_state_dir

GATEWAY = "dask-gateway"
GATEWAY_PREFIX = f"/services/{GATEWAY}"
DASHBOARDS = "dashboards"
VENV_BIN = Path(sys.executable).parent


def _key(secret: str) -> bytes:
    """32 bytes from a generated secret (cookie secret, auth_state crypt key)."""
    return hashlib.sha256(str(secret).encode()).digest()


def memory_gb(text) -> float:
    m = re.fullmatch(r"\s*([\d.]+)\s*([KMGT]?)i?B?\s*", str(text), re.I)
    if not m:
        raise ValueError(f"not a memory size: {text!r} (e.g. 2G, 512M)")
    return float(m.group(1)) * {"": 2**-30, "K": 2**-20, "M": 2**-10, "G": 1, "T": 2**10}[m.group(2).upper()]


def hub_url(config: Config) -> str:
    hc = config["hub"]
    return str(hc.get("url") or f"http://{hc['host']}:{hc['port']}").rstrip("/")


def gateway_env(config: Config) -> dict[str, str]:
    """What a user's server needs for ``Gateway()`` without arguments (as Pangeo sets it)."""
    g = config["hub"]["gateway"]
    return {
        "DASK_GATEWAY__ADDRESS": hub_url(config) + GATEWAY_PREFIX,
        "DASK_GATEWAY__PROXY_ADDRESS": f"gateway://127.0.0.1:{int(g['tcp_port'])}",
        "DASK_GATEWAY__PUBLIC_ADDRESS": GATEWAY_PREFIX + "/",
        "DASK_GATEWAY__AUTH__TYPE": "jupyterhub",
    }


def configure_hub(c, config: Config) -> None:
    hc = config["hub"]
    state = hub_state_dir(config)
    users = state / "users"
    users.mkdir(parents=True, exist_ok=True)
    api_url = str(config["api"]["url"]).rstrip("/")

    # --- addresses ---
    # listen on host:port; hub.url is where browsers reach it (the same on one machine; in a
    # container the hub listens on 0.0.0.0 behind a published port)
    c.JupyterHub.bind_url = f"http://{hc['host']}:{int(hc['port'])}"
    c.JupyterHub.hub_ip = str(hc.get("hub_ip") or "127.0.0.1")
    c.JupyterHub.hub_port = int(hc["hub_port"])
    c.ConfigurableHTTPProxy.api_url = f"http://127.0.0.1:{int(hc['proxy_api_port'])}"
    c.ConfigurableHTTPProxy.command = [str(chp_bin(config) / "configurable-http-proxy")]
    c.ConfigurableHTTPProxy.pid_file = str(state / "proxy.pid")
    c.ConfigurableHTTPProxy.should_start = True

    # --- state and secrets (generated in var/secrets.yaml like every other secret) ---
    c.JupyterHub.db_url = f"sqlite:///{state / 'jupyterhub.sqlite'}"
    c.JupyterHub.cookie_secret = _key(config["secrets"]["hub_cookie_secret"])
    c.CryptKeeper.keys = [_key(config["secrets"]["hub_crypt_key"])]
    c.JupyterHub.pid_file = str(state / "jupyterhub.pid")
    c.JupyterHub.cleanup_servers = True
    c.JupyterHub.cleanup_proxy = True

    # --- logins: the Kowalski API decides ---
    c.JupyterHub.authenticator_class = "hub.auth.KowalskiAuthenticator"
    c.KowalskiAuthenticator.api_url = api_url
    c.KowalskiAuthenticator.admin_username = str(config["admin"]["username"])
    c.KowalskiAuthenticator.api_timeout = float(hc["api_timeout_s"])
    c.Authenticator.enable_auth_state = True
    c.Authenticator.allow_all = True           # every Kowalski user may use the hub
    c.Authenticator.auth_refresh_age = int(hc["auth_refresh_s"])
    c.Authenticator.refresh_pre_spawn = True

    # --- one JupyterLab process per user ---
    c.JupyterHub.spawner_class = "hub.spawner.KowalskiSpawner"
    c.KowalskiSpawner.api_url = api_url
    c.KowalskiSpawner.api_timeout = float(hc["api_timeout_s"])
    c.KowalskiSpawner.home_dir_template = str(users / "{username}")
    c.KowalskiSpawner.notebooks_dir = str(config.path("hub.notebooks"))
    c.Spawner.notebook_dir = str(users / "{username}")
    c.Spawner.cmd = [str(VENV_BIN / "jupyterhub-singleuser")]
    c.Spawner.default_url = "/lab"
    c.Spawner.args = ["--allow-root"] if os.geteuid() == 0 else []
    c.Spawner.mem_limit = str(hc["user"]["mem_limit"])
    c.Spawner.cpu_limit = float(hc["user"]["cpu_limit"])
    c.Spawner.start_timeout = int(hc["spawn_timeout_s"])
    c.Spawner.http_timeout = int(hc["spawn_timeout_s"])
    c.Spawner.environment = {
        "KOWALSKI_URL": api_url,
        "PATH": os.pathsep.join([str(VENV_BIN), os.environ.get("PATH", "/usr/bin:/bin")]),
        MARKER: str(state),
        **gateway_env(config),
    }

    # --- dask-gateway as a hub-managed service ---
    g = hc["gateway"]
    service_env = {k: v for k, v in os.environ.items() if k.startswith("KOWALSKI_")}
    service_env.update({"KOWALSKI_ROOT": str(config.root), MARKER: str(state)})
    c.JupyterHub.services = [{
        "name": GATEWAY,
        "url": f"http://127.0.0.1:{int(g['port'])}",
        "api_token": str(config["secrets"]["hub_gateway_token"]),
        "command": [str(VENV_BIN / "dask-gateway-server"), "-f", str(config.root / "hub" / "dask_gateway_config.py")],
        "cwd": str(state),
        "environment": service_env,
        "display": False,
    }]
    # users may use the gateway; their servers' tokens may too (dask-gateway checks this scope)
    access = f"access:services!service={GATEWAY}"
    c.JupyterHub.load_roles = [
        {"name": "user", "scopes": ["self", access]},
        {"name": "server", "scopes": ["users:activity!user", "access:servers!server", "read:users:name!user", access]},
    ]
    if hc["dashboards"].get("enabled", True):
        add_dashboards(c, config, service_env)


def add_dashboards(c, config: Config, env: dict[str, str]) -> None:
    """The Panel dashboards as a service behind the hub's OAuth, started by the hub (managed) or,
    with ``hub.dashboards.url``, running elsewhere (its own container) with a token of its own.
    Users log in to it with their hub login (no consent page); the service reads the logged-in
    user's Kowalski token from the hub's auth_state (hence its admin:auth_state scope) and acts
    with it, so the API's data rights apply on every page."""
    d = config["hub"]["dashboards"]
    service = {"name": DASHBOARDS, "oauth_no_confirm": True, "display": True,
               "info": {"description": "Alert browser and object pages"}}
    if d.get("url"):  # run elsewhere (its own container): the hub only routes to it and trusts its token
        service.update(url=str(d["url"]), api_token=str(config["secrets"]["hub_dashboards_token"]))
    else:
        service.update(url=f"http://127.0.0.1:{int(d['port'])}", command=[sys.executable, "-m", "dashboards.serve"],
                       cwd=str(config.root), environment=env)
    c.JupyterHub.services.append(service)
    c.JupyterHub.load_roles.append(
        {"name": "dashboards-service", "scopes": ["read:users", "admin:auth_state"], "services": [DASHBOARDS]})
    for role in c.JupyterHub.load_roles:
        if role["name"] == "user":
            role["scopes"].append(f"access:services!service={DASHBOARDS}")
    c.JupyterHub.template_vars = {"announcement_login": "Log in with your Kowalski username and password."}


def configure_gateway(c, config: Config) -> None:
    g = config["hub"]["gateway"]
    state = hub_state_dir(config)
    c.DaskGateway.address = "127.0.0.1:0"                  # private API: only the proxy talks to it
    c.Proxy.address = f"127.0.0.1:{int(g['port'])}"       # HTTP, behind the hub at /services/dask-gateway/
    c.Proxy.tcp_address = f"127.0.0.1:{int(g['tcp_port'])}"
    c.Proxy.prefix = GATEWAY_PREFIX
    c.DaskGateway.authenticator_class = "dask_gateway_server.auth.JupyterHubAuthenticator"
    c.JupyterHubAuthenticator.jupyterhub_service_name = GATEWAY  # requires the access scope
    c.DaskGateway.backend_class = "hub.gateway.KowalskiLocalBackend"
    c.KowalskiLocalBackend.clusters_per_user = int(g["clusters_per_user"])
    c.KowalskiLocalBackend.clusters_directory = str(state / "dask-clusters")
    c.KowalskiLocalBackend.inherited_environment = [
        "PATH", "PYTHONPATH", "VIRTUAL_ENV", "LANG", "LC_ALL", "KOWALSKI_ROOT", MARKER]
    # in-memory state: the gateway stops every cluster when it stops (and with it, the hub)
    c.KowalskiLocalBackend.stop_clusters_on_shutdown = True
    c.ClusterConfig.scheduler_cmd = [str(VENV_BIN / "dask"), "scheduler"]
    c.ClusterConfig.worker_cmd = [str(VENV_BIN / "dask"), "worker"]
    c.ClusterConfig.cluster_max_cores = float(g["cluster_max_cores"])
    c.ClusterConfig.cluster_max_memory = str(g["cluster_max_memory"])
    c.ClusterConfig.cluster_max_workers = int(g["cluster_max_workers"])
    c.ClusterConfig.idle_timeout = float(g["idle_timeout_s"])
    c.ClusterConfig.scheduler_memory = "512M"
    c.ClusterConfig.environment = {"DASK_DISTRIBUTED__WORKER__PROFILE__ENABLED": "False"}
    from hub.gateway import cluster_options

    c.Backend.cluster_options = cluster_options(
        int(g["worker_cores"]), int(g["worker_cores_max"]), memory_gb(g["worker_memory"]),
        memory_gb(g["worker_memory_max"]), float(g["idle_timeout_s"]))
