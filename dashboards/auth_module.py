# The Bokeh auth module of `panel serve --auth-module` (loaded by file path): pages need a hub login.
from dashboards.auth import get_login_url, get_user_async  # noqa: F401
