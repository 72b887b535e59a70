"""``python -m dashboards.serve``: ``panel serve`` of the dashboards, started by JupyterHub as the
managed service ``dashboards`` (hub/settings.py) and proxied at ``/services/dashboards/``.

Everything comes from the Kowalski config and the environment the hub gives a managed service
(``JUPYTERHUB_SERVICE_PREFIX``, ``JUPYTERHUB_API_TOKEN``, ...). Pages need a hub login
(``auth_module.py``, HubOAuth); ``routes.py`` adds the OAuth callback and the deep links.
"""

from __future__ import annotations

import hashlib
import os
import signal
import sys
from pathlib import Path
from urllib.parse import urlsplit

from kowalski.config import Config, load_config

HERE = Path(__file__).resolve().parent
APPS = ("alerts", "object", "filters", "monitor")  # dashboards/apps/<name>.py, one page each
PREFIX = "/services/dashboards"


def cookie_secret(config: Config) -> str:
    """Signs the service's login cookie: derived from the hub's generated cookie secret, so there
    is no new secret to keep, yet the hub's own cookies cannot be forged from it."""
    return hashlib.sha256(b"kowalski-dashboards\0" + str(config["secrets"]["hub_cookie_secret"]).encode()).hexdigest()


def panel_argv(config: Config, environ=os.environ) -> list[str]:
    prefix = environ.get("JUPYTERHUB_SERVICE_PREFIX", PREFIX + "/").rstrip("/")
    hub = urlsplit(str(config["hub"].get("url") or f"http://{config['hub']['host']}:{config['hub']['port']}"))
    origins = {hub.netloc, f"localhost:{hub.port}", f"127.0.0.1:{hub.port}"}
    dash = config["hub"]["dashboards"]
    argv = ["panel", "serve", *[str(HERE / "apps" / f"{a}.py") for a in APPS],
            "--address", str(dash.get("host") or "127.0.0.1"), "--port", str(int(dash["port"])),
            "--prefix", prefix, "--index", "alerts", "--num-procs", "1",
            "--auth-module", str(HERE / "auth_module.py"), "--plugins", "dashboards.routes",
            "--liveness", "--log-level", "info"]
    for o in sorted(origins):
        argv += ["--allow-websocket-origin", o]
    return argv


def warm_up() -> None:
    """Import every page's modules before serving, then move what they made out of the garbage
    collector's reach (gc.freeze): the first visitor does not pay for the imports, and a full
    collection no longer walks the hundreds of thousands of objects of Bokeh, Panel, HoloViews,
    astropy and pandas, which made one page load in ten take 0.5–1 s longer."""
    import gc
    import importlib

    for page in APPS:
        importlib.import_module(f"dashboards.pages.{page}")
    importlib.import_module("holoviews.operation.datashader")  # the alert browser's sky of many results
    gc.collect()
    gc.freeze()


def main() -> None:
    config = load_config()
    os.environ["BOKEH_COOKIE_SECRET"] = cookie_secret(config)
    # JupyterHub stops a managed service with SIGINT, then SIGTERM: a Panel server keeps no state
    # worth a graceful shutdown, so leave at once instead of making the hub wait for its timeouts
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: os._exit(0))
    from panel.command import main as panel_main

    warm_up()
    sys.argv = panel_argv(config)
    panel_main(sys.argv[1:])


if __name__ == "__main__":
    main()
