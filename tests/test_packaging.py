"""The Dockerfile, docker-compose.yml and the systemd units hold together without Docker: the image installs what
./dev installs, and every meshbot command they run exists with the options they give it."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys

import pytest
import yaml

from bot.cli.main import main
from tests.paths import ROOT

DOCKERFILE = (ROOT / "Dockerfile").read_text()
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
UNITS = sorted((ROOT / "docs" / "deploy").glob("*.service"))
PIP_NOISE = {"--disable-pip-version-check", "--no-cache-dir", "--quiet"}


def pip_steps(text: str, pip: str) -> list[list[str]]:
    """Each `pip ...` command in text (pip spelled as given), as its arguments without output-only options."""
    steps = []
    for match in re.finditer(re.escape(pip) + r"((?:[^&\n\\;}]|\\\n)*)", text):
        words = [word for word in shlex.split(match.group(1).replace("\\\n", " ")) if word not in PIP_NOISE]
        steps.append([{"$LOCK": "requirements.lock"}.get(word, word) for word in words])
    return steps


def test_the_image_installs_what_dev_installs_for_the_tests():
    dev = (ROOT / "dev").read_text()
    setup = dev[dev.index("setup() {"):dev.index("\n}\n", dev.index("setup() {"))]
    expected = pip_steps(setup, '"${pip[@]}"')
    assert expected == [["install", "--require-hashes", "-r", "requirements.lock"],
                        ["install", "--no-deps", "--no-build-isolation", "-e", "."], ["check"]]
    assert pip_steps(DOCKERFILE, "python -m pip") == expected


def test_the_image_is_python_3_11_slim_non_root_and_serves_by_default():
    assert re.search(r"^FROM python:3\.11-slim\b", DOCKERFILE, re.MULTILINE)
    users = re.findall(r"^USER (\S+)", DOCKERFILE, re.MULTILINE)
    assert users and users[-1] not in ("root", "0")
    assert re.search(r"^HEALTHCHECK .*\n?.*/healthz", DOCKERFILE, re.MULTILINE)
    entrypoint = yaml.safe_load(re.search(r"^ENTRYPOINT (.+)$", DOCKERFILE, re.MULTILINE).group(1))
    command = yaml.safe_load(re.search(r"^CMD (.+)$", DOCKERFILE, re.MULTILINE).group(1))
    assert entrypoint == ["meshbot"] and command[0] == "serve" and "0.0.0.0" in command
    check_command(command)


def test_compose_runs_web_workers_redis_with_aof_and_the_adapter():
    services = COMPOSE["services"]
    assert set(services) == {"web", "worker", "redis", "adapter"}
    assert services["web"]["command"][:1] == ["serve"] and "--workers" in services["web"]["command"]
    assert services["worker"]["command"] == ["worker"] and "container_name" not in services["worker"]  # scalable
    assert services["adapter"]["command"][:2] == ["adapter", "serve"]
    redis = services["redis"]
    assert redis["command"][redis["command"].index("--appendonly") + 1] == "yes"
    assert any(volume.endswith(":/data") for volume in redis["volumes"]) and "redis-data" in COMPOSE["volumes"]
    for name in ("web", "worker"):
        service = services[name]
        assert service["environment"]["REDIS_URL"].startswith("redis://redis:")
        assert service["env_file"] == "meshbot.env"
        mounted = {volume.split(":")[1]: volume.split(":")[0] for volume in service["volumes"]}
        assert (ROOT / mounted[service["environment"]["MESHBOT_CONFIG"]]).is_file()
    assert "meshbot.env" in (ROOT / ".gitignore").read_text().split()


@pytest.mark.parametrize("service", ["web", "worker", "adapter"])
def test_every_compose_command_exists_with_its_options(service):
    check_command(COMPOSE["services"][service]["command"])


@pytest.mark.parametrize("unit", UNITS, ids=lambda unit: unit.name)
def test_the_systemd_units_run_meshbot_commands_that_exist(unit):
    text = unit.read_text()
    start = re.search(r"^ExecStart=/opt/meshbot/bin/meshbot (.+)$", text, re.MULTILINE)
    assert start, "ExecStart runs /opt/meshbot/bin/meshbot"
    check_command(shlex.split(start.group(1)))
    assert re.search(r"^User=meshbot$", text, re.MULTILINE) and "EnvironmentFile=/etc/meshbot/meshbot.env" in text


def test_the_mounted_configuration_is_valid(capsys):
    assert main(["config", "check", str(ROOT / "docs" / "deploy" / "meshbot.yaml")]) == 0
    assert capsys.readouterr().out.strip().endswith(": ok")


def check_command(arguments: list[str]) -> None:
    """The meshbot command (and sub-action) exists, and each --option given is one its --help lists."""
    words = [word for word in arguments if not word.startswith("-")]
    command = words[:2] if words[:1] == ["adapter"] else words[:1]
    completed = subprocess.run([sys.executable, "-m", "bot.cli", *command, "--help"], cwd=ROOT, capture_output=True,
                               text=True, timeout=60, env={**os.environ, "COLUMNS": "200"})
    assert completed.returncode == 0, completed.stderr
    options = {word.split("=")[0] for word in arguments if word.startswith("--")}
    assert sorted(option for option in options if option not in completed.stdout) == []
