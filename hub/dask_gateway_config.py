# dask-gateway configuration (a hub-managed service): everything comes from the Kowalski config.
from kowalski.config import load_config

from hub.settings import configure_gateway

configure_gateway(c, load_config())  # noqa: F821 - `c` is given by dask-gateway-server
