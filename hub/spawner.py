"""One local ``jupyterhub-singleuser`` (JupyterLab) process per user, in ``<state>/users/<name>``.

Each server gets ``KOWALSKI_URL`` and ``KOWALSKI_TOKEN`` (set by the authenticator from the
user's auth_state) so ``kowalski.client.connect()`` works, and the dask-gateway settings so
``dask_gateway.Gateway()`` needs no arguments. The example notebooks are copied into a new
user's directory (never over the user's own copies). A server is not started while the Kowalski
API is unreachable: the user is told why and nothing is left running.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from jupyterhub.spawner import SimpleLocalProcessSpawner
from tornado.httpclient import AsyncHTTPClient, HTTPClientError
from traitlets import Float, Unicode


LAB_SETTINGS = {
    "@jupyterlab/notebook-extension/tracker": {"autoStartDefaultKernel": True},
    "@jupyterlab/apputils-extension/notification": {"fetchNews": "false"},
}


class KowalskiAPIDown(Exception):
    """Shown to the user on the spawn page (``jupyterhub_message``)."""

    def __init__(self, message: str):
        super().__init__(message)
        self.jupyterhub_message = message


class KowalskiSpawner(SimpleLocalProcessSpawner):
    api_url = Unicode("http://127.0.0.1:4000", config=True, help="Kowalski REST API base URL")
    notebooks_dir = Unicode("", config=True, help="example notebooks copied into a new user's directory")
    api_timeout = Float(10.0, config=True)

    async def _check_api(self) -> None:
        try:
            await AsyncHTTPClient().fetch(self.api_url.rstrip("/") + "/", raise_error=False,
                                          connect_timeout=self.api_timeout, request_timeout=self.api_timeout)
        except (OSError, HTTPClientError) as exc:
            self.log.warning("not starting %s's server: Kowalski API at %s unreachable: %s",
                             self.user.name, self.api_url, exc)
            raise KowalskiAPIDown(f"The Kowalski API at {self.api_url} is not answering, so your server was not "
                                  f"started (notebooks read the archive through it). Try again in a moment.") from None

    def _prepare_home(self) -> None:
        home = Path(self.home_dir)
        home.mkdir(parents=True, exist_ok=True)
        # JupyterLab defaults for a new user: start the notebook's kernel without asking, no news feed
        # (this machine reaches no news server); the user can change both in Settings
        for name, value in LAB_SETTINGS.items():
            f = home / ".jupyter" / "lab" / "user-settings" / f"{name}.jupyterlab-settings"
            if not f.exists():
                f.parent.mkdir(parents=True, exist_ok=True)
                f.write_text(json.dumps(value, indent=2))
        src = Path(self.notebooks_dir) if self.notebooks_dir else None
        if src and src.is_dir():
            for nb in sorted(src.glob("*.ipynb")):
                dest = home / nb.name
                if not dest.exists():
                    shutil.copyfile(nb, dest)

    async def start(self):
        await self._check_api()
        self._prepare_home()
        return await super().start()
