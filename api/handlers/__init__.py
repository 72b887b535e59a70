"""Route modules: each ends with its own ``default_handlers`` route table."""

from api.handlers import auth, classifications, cutouts, docs, filters, queries, skymap, users

MODULES = (auth, users, queries, cutouts, classifications, filters, skymap, docs)


def all_handlers() -> list[tuple]:
    routes: list[tuple] = []
    for mod in MODULES:
        routes.extend(mod.default_handlers)
    return routes
