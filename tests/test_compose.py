"""docker-compose.yml: every service checked for health, started in order, configured by name."""

import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def test_it_has_postgres_redis_web_and_worker(compose):
    assert {"postgres", "redis", "web", "worker"} <= set(compose["services"])


def test_every_long_running_service_has_a_healthcheck(compose):
    for name, service in compose["services"].items():
        if name == "migrate":
            continue
        assert service["healthcheck"]["test"], f"{name} has no healthcheck"


def test_web_and_worker_wait_for_healthy_dependencies(compose):
    for name in ("web", "worker"):
        depends = compose["services"][name]["depends_on"]
        assert depends["postgres"]["condition"] == "service_healthy", name
        assert depends["redis"]["condition"] == "service_healthy", name
        assert depends["migrate"]["condition"] == "service_completed_successfully", name


def test_every_variable_it_sets_is_one_settings_reads_and_the_readme_names(compose):
    settings_source = (ROOT / "chatsite" / "settings.py").read_text()
    readme = (ROOT / "README.md").read_text()
    read = set(re.findall(r'env\w*\(\s*"([A-Z_]+)"', settings_source))
    read |= set(re.findall(r'os\.getenv\(\s*"([A-Z_]+)"', settings_source))
    for name in compose["services"]["web"]["environment"]:
        assert name in read, f"settings.py never reads {name}"
        assert f"`{name}`" in readme, f"the README does not document {name}"


def test_prometheus_comes_with_the_monitoring_profile_and_scrapes_web_and_workers(compose):
    prometheus = compose["services"]["prometheus"]
    assert prometheus["profiles"] == ["monitoring"]
    assert prometheus["healthcheck"]["test"]
    assert "./deploy/prometheus:/etc/prometheus:ro" in prometheus["volumes"]
    config = yaml.safe_load((ROOT / "deploy" / "prometheus" / "prometheus.yml").read_text())
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    web, worker = jobs["chatsite-web"], jobs["chatsite-worker"]
    assert web["dns_sd_configs"][0]["names"] == ["web"]
    assert web["dns_sd_configs"][0]["port"] == 8000
    # The token Prometheus sends is the one the web processes are given.
    secret = compose["secrets"]["metrics_token"]["environment"]
    assert compose["services"]["web"]["environment"][secret] == "${CHAT_METRICS_TOKEN:-}"
    assert web["authorization"]["credentials_file"] == "/run/secrets/metrics_token"
    port = compose["services"]["worker"]["environment"]["CHAT_WORKER_METRICS_PORT"]
    assert worker["dns_sd_configs"][0] == {
        **worker["dns_sd_configs"][0],
        "names": ["worker"],
        "port": port,
    }
    for rules in config["rule_files"]:
        assert (ROOT / "deploy" / "prometheus" / rules.rsplit("/", 1)[-1]).exists()


def test_several_uvicorn_workers_share_their_metrics_through_an_empty_tmpfs(compose):
    web = compose["services"]["web"]
    folder = web["environment"]["PROMETHEUS_MULTIPROC_DIR"]
    assert folder in web["tmpfs"]
    assert "--workers" in web["command"]


def test_web_runs_web_workers_uvicorn_processes_two_unless_told(compose):
    web = compose["services"]["web"]
    command = web["command"]
    assert command[:2] == ["uvicorn", "chatsite.asgi:application"]
    assert command[command.index("--workers") + 1] == "${WEB_WORKERS:-2}"
    # Several processes serve one reply only through Redis, on one shared database.
    assert web["environment"]["REDIS_URL"].startswith("redis://")
    assert web["environment"]["DATABASE_URL"].startswith("postgres://")
    assert "`WEB_WORKERS`" in (ROOT / "README.md").read_text()
