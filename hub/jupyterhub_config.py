# JupyterHub configuration: everything comes from the Kowalski config (see hub/settings.py).
# Started by `kowalski up hub` as `jupyterhub -f hub/jupyterhub_config.py`.
from kowalski.config import load_config

from hub.settings import configure_hub

configure_hub(c, load_config())  # noqa: F821 - `c` is given by JupyterHub
