"""The container build's inputs agree with the project: the pinned lock satisfies pyproject's
runtime dependencies, the Dockerfile copies every package pyproject installs, the defaults and the
output schema are package data, and both compose files are valid (docker-compose's own check).
Building and running the stack is `make compose-test` (minutes; not part of `make test`)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tomllib

import pytest
from packaging.requirements import Requirement
from packaging.version import Version

from tests.conftest import ROOT

PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())


def canon(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def test_lock_pins_every_runtime_dependency_within_its_range():
    lock = {}
    for line in (ROOT / "images" / "requirements.lock").read_text().splitlines():
        if line and not line.startswith("#"):
            name, _, version = line.partition("==")
            lock[canon(name)] = Version(version)
    for spec in PYPROJECT["project"]["dependencies"]:
        req = Requirement(spec)
        assert canon(req.name) in lock, f"{req.name} is not in images/requirements.lock: run `make images-lock`"
        assert req.specifier.contains(lock[canon(req.name)], prereleases=True), \
            f"{req.name}: locked {lock[canon(req.name)]} outside {req.specifier}: run `make images-lock`"


def test_dockerfile_copies_every_installed_package():
    packages = {p.rstrip("*") for p in PYPROJECT["tool"]["setuptools"]["packages"]["find"]["include"]}
    copied = set(re.findall(r"^COPY (\w+) /src/\1$", (ROOT / "images" / "Dockerfile").read_text(), re.M))
    assert copied == packages, f"Dockerfile copies {sorted(copied)}, pyproject installs {sorted(packages)}"


def test_defaults_and_schemas_are_package_data():
    data = PYPROJECT["tool"]["setuptools"]["package-data"]
    for package, pattern in (("kowalski", "config.defaults.yaml"), ("broker", "delivery/*.avsc")):
        assert pattern in data[package], (package, data)
    assert (ROOT / "kowalski" / "config.defaults.yaml").is_file()
    assert list((ROOT / "broker" / "delivery").glob("*.avsc"))


@pytest.mark.skipif(shutil.which("docker-compose") is None,
                    reason="docker-compose not installed (`make compose-test` installs it)")
def test_compose_files_are_valid_and_refuse_missing_secrets(tmp_path):
    env = tmp_path / ".env"
    keys = re.findall(r"^(KOWALSKI_\w+)=$", (ROOT / ".env.example").read_text(), re.M)
    assert keys, ".env.example lists no secret"
    env.write_text("".join(f"{k}=x\n" for k in keys))
    clean = {k: v for k, v in os.environ.items() if not k.startswith("KOWALSKI_")}  # the file decides
    files = ["-f", str(ROOT / "docker-compose.yaml"), "-f", str(ROOT / "docker-compose.local.yaml")]
    ok = subprocess.run(["docker-compose", "--env-file", str(env), *files, "config", "-q"],
                        capture_output=True, text=True, cwd=ROOT, env=clean)
    assert ok.returncode == 0, ok.stderr
    env.write_text("".join(f"{k}=x\n" for k in keys[1:]))  # the first secret missing
    bad = subprocess.run(["docker-compose", "--env-file", str(env), *files, "config", "-q"],
                         capture_output=True, text=True, cwd=ROOT, env=clean)
    assert bad.returncode != 0 and f"set {keys[0]} in .env" in bad.stderr, bad.stderr
