"""The example notebooks, executed against the running stack as a real hub user: a public-only
Kowalski user (member of group 1) logs in, the hub starts their server, and each notebook runs in
a kernel with exactly that server's environment (their Kowalski token, the hub token the gateway
accepts). Any cell error fails the test."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from tests.hub.conftest import ROOT

NOTEBOOKS = sorted(p.name for p in (ROOT / "notebooks").glob("*.ipynb"))


def test_there_are_notebooks_and_their_outputs_are_stripped():
    assert len(NOTEBOOKS) >= 4
    for name in NOTEBOOKS:
        nb = nbformat.read(ROOT / "notebooks" / name, as_version=4)
        for cell in nb.cells:
            if cell.cell_type == "code":
                assert not cell.outputs and cell.execution_count is None, f"{name}: outputs not stripped"


@pytest.fixture(scope="module")
def user_env(hub_stack):
    name, pw = hub_stack.new_user()
    r = hub_stack.api.put(f"/api/users/{name}/groups", {"groups": [1]}, token=hub_stack.api.admin_token)
    assert r.status_code == 200, r.text
    s, r = hub_stack.login(name, pw)
    assert r.status_code == 302
    hub_stack.spawn(s, name)
    admin, _ = hub_stack.login(*hub_stack.admin)
    env = hub_stack.server_env(admin, name)
    yield env
    hub_stack.hub_api(s, "DELETE", f"/users/{name}/server")


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_runs_as_a_hub_user(user_env, name):
    home = Path(user_env["HOME"])
    assert (home / name).is_file()  # the hub copied the examples into the user's directory
    nb = nbformat.read(home / name, as_version=4)
    client = NotebookClient(nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(home)}})
    client.execute(env=user_env)  # raises CellExecutionError on the first failing cell
    assert all(c.get("execution_count") for c in nb.cells if c.cell_type == "code")
