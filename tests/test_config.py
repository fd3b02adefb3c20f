"""The server configuration file: loading, defaults, and mistakes named by file, line and field."""

from pathlib import Path

import pytest

from bot.config import AdapterSettings, ServerConfig, config_path, load_config
from bot.descriptor.errors import InputErrors

GOOD = """\
adapters:
  - infrastructureTemplateId: urn:dmb:itm:sqlite-storage-provisioner:0
    url: http://127.0.0.1:8091/datamesh.specificprovisioner
    timeout: 30
  - infrastructureTemplateId: urn:dmb:itm:sqlite-storage-provisioner:0
    url: https://prod-adapter.example.com/datamesh.specificprovisioner
    environments: [production]
policies: [governance]
"""


def write(tmp_path: Path, text: str) -> str:
    path = tmp_path / "meshbot.yaml"
    path.write_text(text)
    return str(path)


def errors_of(path: str) -> list[str]:
    with pytest.raises(InputErrors) as raised:
        load_config(path)
    return [str(error) for error in raised.value.errors]


def test_no_file_means_defaults():
    assert load_config(None) == ServerConfig()


def test_good_file(tmp_path):
    path = write(tmp_path, GOOD)
    config = load_config(path)
    assert config.adapters == [
        AdapterSettings("urn:dmb:itm:sqlite-storage-provisioner:0",
                        "http://127.0.0.1:8091/datamesh.specificprovisioner", None, 30.0),
        AdapterSettings("urn:dmb:itm:sqlite-storage-provisioner:0",
                        "https://prod-adapter.example.com/datamesh.specificprovisioner", ("production",), 600.0),
    ]
    assert config.policy_folders == [(tmp_path / "governance").resolve()]
    assert config.file == path


def test_config_path_prefers_the_flag_then_the_environment(monkeypatch):
    monkeypatch.setenv("MESHBOT_CONFIG", "/etc/meshbot.yaml")
    assert config_path("x.yaml") == "x.yaml"
    assert config_path(None) == "/etc/meshbot.yaml"
    monkeypatch.delenv("MESHBOT_CONFIG")
    assert config_path(None) is None


def test_unknown_key_is_named_with_the_known_ones_at_its_own_line(tmp_path):
    path = write(tmp_path, GOOD + "adaptors: []\n")
    assert errors_of(path) == [
        f"{path}:9:1: configuration: unknown key 'adaptors' (known keys: adapters, policies, environments, "
        "marketplace, redis_url, deployments, deploy, merge_requests, releases, catch_up, policy_engines, "
        "compliance, access, public_url)"
    ]


def test_each_unknown_key_is_reported_at_its_own_line_and_column(tmp_path):
    path = write(tmp_path, GOOD.replace("    timeout: 30\n", "    timeout: 30\n    retries: 3\n    \"ca-bundle\": x\n")
                 + "deploy:\n  only_changed: true\n  onlyChanged:\n    - x\n")
    assert errors_of(path) == [
        f"{path}:5:5: adapters.0: unknown key 'retries' (known keys: infrastructureTemplateId, url, environments, "
        "timeout, ca_bundle)",
        f"{path}:6:6: adapters.0: unknown key 'ca-bundle' (known keys: infrastructureTemplateId, url, environments, "
        "timeout, ca_bundle)",
        f"{path}:13:3: deploy: unknown key 'onlyChanged' (known keys: only_changed)",
    ]


def test_adapter_mistakes_point_at_their_line(tmp_path):
    text = ("adapters:\n  - infrastructureTemplateId: a\n    url: ftp://x\n    timeout: -1\n"
            "  - url: http://x\n")
    path = write(tmp_path, text)
    assert errors_of(path) == [
        f"{path}:4:14: adapters.0.timeout: -1 is less than or equal to the minimum of 0",
        f"{path}:3:10: adapters.0.url: 'ftp://x' is not an http(s) URL",
        f"{path}:5:5: adapters.1: 'infrastructureTemplateId' is required",
    ]


def test_two_adapters_for_the_same_template_and_environment(tmp_path):
    text = GOOD + ("  - infrastructureTemplateId: urn:dmb:itm:sqlite-storage-provisioner:0\n"
                   "    url: http://other\n    environments: [qa, production]\n")
    text = text.replace("policies: [governance]\n", "") + "policies: []\n"
    path = write(tmp_path, text)
    assert errors_of(path) == [
        f"{path}:8:5: adapters.2: a second adapter for 'urn:dmb:itm:sqlite-storage-provisioner:0' in production "
        "(the first is adapters.1); give each one distinct environments"
    ]


def test_two_catch_all_adapters_for_one_template(tmp_path):
    text = "adapters:\n  - {infrastructureTemplateId: a, url: 'http://x'}\n  - {infrastructureTemplateId: a, url: 'http://y'}\n"
    path = write(tmp_path, text)
    assert "in every environment" in errors_of(path)[0]


def test_missing_file(tmp_path):
    assert errors_of(str(tmp_path / "nope.yaml")) == [f"{tmp_path / 'nope.yaml'}: configuration file not found"]


def test_malformed_yaml(tmp_path):
    path = write(tmp_path, "adapters: [\n")
    assert errors_of(path)[0].startswith(f"{path}:2:1: malformed YAML")


FULL = GOOD + """\
environments:
  development:
  production: {merge_request_deploys: false}
marketplace:
  notify: [https://marketplace.example.com/api/deployments]
redis_url: redis://redis.internal:6379/0
deployments: {history: 20}
"""


def test_engine_keys(tmp_path):
    config = load_config(write(tmp_path, FULL))
    assert config.environments == {"development": {}, "production": {"merge_request_deploys": False}}
    assert config.marketplace == ["https://marketplace.example.com/api/deployments"]
    assert config.redis_url == "redis://redis.internal:6379/0"
    assert config.history == 20
    assert config.environment_error("production") is None
    assert config.environment_error("qa") == (
        "environment 'qa' is not in the server configuration (known: development, production)"
    )


def test_environments_as_a_list_and_defaults(tmp_path):
    config = load_config(write(tmp_path, "environments: [development, production]\n"))
    assert config.environments == {"development": {}, "production": {}}
    assert ServerConfig().environment_error("anything") is None
    assert ServerConfig().history == 50


def test_credentials_in_redis_url_are_refused(tmp_path):
    path = write(tmp_path, "redis_url: redis://user:secret@redis.internal:6379/0\n")
    assert errors_of(path) == [
        f"{path}:1:12: redis_url: credentials do not belong in the configuration file; set REDIS_URL in the "
        "environment"
    ]


def test_bad_environment_name_and_marketplace_url(tmp_path):
    path = write(tmp_path, "environments: [dev/1]\nmarketplace: {notify: [ftp://x]}\n")
    errors = errors_of(path)
    assert len(errors) == 2
    assert errors[0] == f"{path}:1:16: environments.0: 'dev/1' does not match '^[A-Za-z0-9][A-Za-z0-9_.-]*$'"
    assert errors[1] == f"{path}:2:24: marketplace.notify.0: 'ftp://x' is not an http(s) URL"


def test_merge_request_and_release_settings(tmp_path):
    config = load_config(write(tmp_path, "merge_requests: {environment: qa}\n"
                                         "releases: {tag: 'release-{version}', environments: [staging, production]}\n"
                                         "public_url: https://meshbot.example.com\n"))
    assert (config.merge_request_environment, config.release_tag, config.release_environments, config.public_url) == (
        "qa", "release-{version}", ["staging", "production"], "https://meshbot.example.com")
    defaults = load_config(None)
    assert (defaults.merge_request_environment, defaults.release_tag, defaults.release_environments) == (
        "development", "v{version}", ["production"])


def test_a_release_tag_pattern_needs_the_version(tmp_path):
    path = write(tmp_path, "releases:\n  tag: release\n")
    assert errors_of(path) == [
        f"{path}:2:8: releases.tag: 'release' must contain {{version}} once, e.g. 'v{{version}}'"]


def test_reviewed_environments_default_to_the_merge_request_then_the_release_environments(tmp_path):
    defaults = load_config(None)
    assert (defaults.review_environments, defaults.validate_with_adapters) == (["development", "production"], False)
    assert defaults.gates("development") and defaults.gates("production")
    config = load_config(write(tmp_path, "merge_requests: {environment: qa}\n"
                                         "releases: {environments: [qa, production]}\n"))
    assert config.review_environments == ["qa", "production"]


def test_reviewed_and_gating_environments(tmp_path):
    config = load_config(write(tmp_path, "environments: [development, qa, production]\n"
                                         "merge_requests:\n"
                                         "  environments: [development, qa, production]\n"
                                         "  gating_environments: [production]\n"
                                         "  validate_with_adapters: true\n"))
    assert config.review_environments == ["development", "qa", "production"]
    assert [name for name in config.review_environments if config.gates(name)] == ["production"]
    assert config.validate_with_adapters


def test_reviewed_environments_must_be_known_and_gating_ones_reviewed(tmp_path):
    path = write(tmp_path, "environments: [development, production]\n"
                           "merge_requests:\n"
                           "  environments: [development, staging]\n"
                           "  gating_environments: [production]\n")
    assert errors_of(path) == [
        f"{path}:3:31: merge_requests.environments: 'staging' is not in `environments` (known: development, "
        "production)",
        f"{path}:4:25: merge_requests.gating_environments: 'production' is not reviewed (add it to "
        "merge_requests.environments)",
    ]


def test_release_stages_keep_the_plain_list_and_chain_with_after(tmp_path):
    path = write(tmp_path, "releases:\n  environments: [qa, {name: production, after: qa}, "
                           "{name: dr, after: production, promotion: automatic}]\n")
    config = load_config(str(path))
    assert config.release_environments == ["qa", "production", "dr"]
    assert [(s.name, s.after, s.promotion) for s in config.stages] == [
        ("qa", None, "automatic"), ("production", "qa", "merge-request"), ("dr", "production", "automatic")]
    assert [s.name for s in config.next_stages("qa")] == ["production"]
    assert config.stage("dr") is not None and config.stage("development") is None
    assert [s.name for s in load_config(None).stages] == ["production"]


def test_release_stage_mistakes_point_at_their_line(tmp_path):
    path = write(tmp_path, "releases:\n  environments:\n    - {name: production, after: qa}\n    - qa\n"
                           "    - {name: x, promotion: automatic}\n    - {name: qa}\n")
    assert errors_of(path) == [
        f"{path}:3:33: releases.environments.0.after: 'qa' is not an earlier stage (it is the first stage)",
        f"{path}:5:28: releases.environments.2.promotion: a stage without `after` is deployed by the release tag "
        "itself; give `after: STAGE` to promote from another stage",
        f"{path}:6:7: releases.environments.3: stage 'qa' is listed twice",
    ]


def test_prune_and_drift_interval_per_environment_with_strict_production_defaults(tmp_path):
    path = write(tmp_path, "environments:\n  production: {prune: never, drift_interval_seconds: 3600}\n"
                           "  qa:\n  prod: {}\ndeploy: {only_changed: true}\n")
    config = load_config(str(path))
    assert (config.rules("production").prune, config.rules("production").drift_interval_seconds) == ("never", 3600)
    assert (config.rules("qa").prune, config.rules("qa").drift_interval_seconds) == ("auto", 86400)
    assert config.rules("prod").prune == "confirm"
    assert config.only_changed and not load_config(None).only_changed
    bad = write(tmp_path, "environments:\n  qa: {prune: sometimes}\n")
    assert errors_of(bad)[0].startswith(f"{bad}:2:")
    assert "'sometimes' is not one of ['auto', 'confirm', 'never']" in errors_of(bad)[0]


def test_policy_engines_compliance_and_access_are_read(tmp_path):
    path = tmp_path / "meshbot.yaml"
    path.write_text(
        "policy_engines:\n  cue: {url: 'https://policies.internal/v1/evaluate', timeout: 3}\n  opa: {url: 'http://127.0.0.1:8181/x'}\n"
        "compliance: {interval_seconds: 3600, issues: false}\n"
        "access:\n  refs: {'user:alice': 'user:alice@acme.com'}\n  user_ref: 'user:{name}@acme.com'\n"
    )
    config = load_config(str(path))
    assert config.policy_engines["cue"].url == "https://policies.internal/v1/evaluate"
    assert (config.policy_engines["cue"].timeout, config.policy_engines["opa"].timeout) == (3.0, 10.0)
    assert (config.compliance.interval_seconds, config.compliance.issues) == (3600, False)
    assert config.access.ref("user", "alice") == "user:alice@acme.com"
    assert config.access.ref("user", "bob") == "user:bob@acme.com"
    assert config.access.ref("group", "acme/finance") == "group:acme/finance"


def test_defaults_of_policy_engines_compliance_and_access():
    config = load_config(None)
    assert config.policy_engines == {}
    assert (config.compliance.interval_seconds, config.compliance.issues) == (86400, True)
    assert config.access.ref("user", "alice") == "user:alice"


def test_an_access_ref_template_without_name_is_refused(tmp_path):
    path = tmp_path / "meshbot.yaml"
    path.write_text("access:\n  user_ref: 'user:alice'\n")
    with pytest.raises(InputErrors) as raised:
        load_config(str(path))
    assert ":2:" in str(raised.value.errors[0].position) or raised.value.errors[0].position.line == 2
