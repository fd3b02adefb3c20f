"""The server configuration: one YAML file the platform team owns, checked against a JSON Schema at start."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bot.descriptor.errors import InputError, InputErrors, SourcePosition
from bot.descriptor.files import MAX_FILE_BYTES
from bot.descriptor.yamlsafe import YamlDocument, load_single
from vcs.base import Permission

CONFIG_ENVIRONMENT_VARIABLE = "MESHBOT_CONFIG"
DEFAULT_ADAPTER_TIMEOUT = 600.0
DEFAULT_HISTORY = 50
DEFAULT_MERGE_REQUEST_ENVIRONMENT = "development"
DEFAULT_RELEASE_TAG = "v{version}"
DEFAULT_RELEASE_ENVIRONMENTS = ("production",)
DEFAULT_CATCH_UP_INTERVAL = 600  # seconds between catch-up sweeps
DEFAULT_DRIFT_INTERVAL = 86400  # seconds between two drift checks of a deployed data product
PRUNE_MODES = ("auto", "confirm", "never")
PROMOTIONS = ("automatic", "merge-request")

PERMISSIONS = {"read": Permission.READ, "write": Permission.WRITE, "maintain": Permission.MAINTAIN,
               "admin": Permission.ADMIN}
PRODUCTION_NAMES = frozenset({"production", "prod", "prd"})
DEFAULT_POLICY_ENGINE_TIMEOUT = 10.0  # seconds one call of a remote policy engine may take
DEFAULT_COMPLIANCE_INTERVAL = 86400  # seconds between two compliance checks of what is deployed
DEFAULT_USER_REF = "user:{name}"
DEFAULT_GROUP_REF = "group:{name}"

ENVIRONMENT_SETTINGS_SCHEMA: dict[str, Any] = {
    "type": ["object", "null"],
    "description": "Who may run merge request commands in this environment; an empty entry keeps the defaults. "
                   "Environments named `production`, `prod` or `prd` (any case) are strict by default.",
    "additionalProperties": False,
    "properties": {
        "deploy_permission": {
            "enum": list(PERMISSIONS),
            "description": "The least role on the repository that may run `/deploy` (and `/import`, in the "
                           "`merge_requests` environment) here: read, write, maintain or admin (on GitLab: "
                           "Reporter, Developer, Maintainer, Owner). Default: write; maintain for production, "
                           "prod and prd.",
            "examples": ["maintain"],
        },
        "undeploy_permission": {
            "enum": list(PERMISSIONS),
            "description": "The least role that may run `/undeploy` here, the most destructive command; never "
                           "below `deploy_permission` (the higher of the two applies).",
            "default": "admin",
        },
        "merge_request_deploys": {
            "type": "boolean",
            "description": "Whether `/deploy` (and `/import`) from a merge request may target this environment; "
                           "when false, only release tags deploy here. Default: true; false for production, prod "
                           "and prd.",
        },
        "approval_required": {
            "type": "boolean",
            "description": "Whether `/deploy` here needs the merge request to be approved first (GitHub: the "
                           "reviewers' latest verdicts; GitLab: its approval rules). Default: false; true for "
                           "production, prod and prd.",
        },
        "prune": {
            "enum": list(PRUNE_MODES),
            "description": "What a deploy does with components that are deployed here but no longer in the "
                           "repository: `auto` unprovisions them (after the others, dependents first; never their "
                           "data), `confirm` lists them in the plan and removes them only with `--prune` "
                           "(`/deploy ENV --prune`, `meshbot deploy --prune`), `never` only lists them. Default: "
                           "confirm for production, prod and prd; auto elsewhere.",
            "examples": ["confirm"],
        },
        "drift_interval_seconds": {
            "type": "integer", "minimum": 0, "maximum": 2592000,
            "description": "How often the drift sweep asks the tech adapters what is really deployed here and "
                           "compares it with the deployed descriptor; 0 turns it off here.",
            "default": DEFAULT_DRIFT_INTERVAL,
        },
    },
}


@dataclass(frozen=True, slots=True)
class EnvironmentRules:
    """What an environment demands of merge request commands."""

    name: str
    deploy_permission: Permission = Permission.WRITE
    undeploy_permission: Permission = Permission.ADMIN
    merge_request_deploys: bool = True
    approval_required: bool = False
    prune: str = "auto"  # auto | confirm | never (PRUNE_MODES)
    drift_interval_seconds: int = DEFAULT_DRIFT_INTERVAL


def rules_for(name: str, settings: dict[str, Any] | None) -> EnvironmentRules:
    """The rules of an environment from its configuration settings; production-like names are strict by default."""
    settings = settings or {}
    production = name.lower() in PRODUCTION_NAMES
    deploy = PERMISSIONS[settings.get("deploy_permission", "maintain" if production else "write")]
    undeploy = PERMISSIONS[settings.get("undeploy_permission", "admin")]  # removing is the most destructive
    return EnvironmentRules(
        name=name, deploy_permission=deploy, undeploy_permission=max(undeploy, deploy),
        merge_request_deploys=bool(settings.get("merge_request_deploys", not production)),
        approval_required=bool(settings.get("approval_required", production)),
        prune=str(settings.get("prune", "confirm" if production else "auto")),
        drift_interval_seconds=int(settings.get("drift_interval_seconds", DEFAULT_DRIFT_INTERVAL)),
    )


CONFIG_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "meshbot server configuration",
    "description": "The platform team's settings for meshbot: tech adapters, policy folders, environments, "
                   "releases. Secrets never go here: they come from environment variables.",
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "adapters": {
            "type": "array",
            "description": "Which tech adapter serves which infrastructure template. Before anything is "
                           "provisioned, every component must resolve to an adapter for its "
                           "`infrastructureTemplateId` in the target environment; each one that does not is "
                           "reported with the line of its `infrastructureTemplateId`. A repository can never "
                           "choose an adapter URL. Default: none, so nothing can be deployed.",
            "items": {
                "type": "object",
                "description": "One tech adapter, for one infrastructure template.",
                "additionalProperties": False,
                "required": ["infrastructureTemplateId", "url"],
                "properties": {
                    "infrastructureTemplateId": {
                        "type": "string", "minLength": 1,
                        "description": "The infrastructure template this adapter provisions: components whose "
                                       "`infrastructureTemplateId` is this value are deployed through it.",
                        "examples": ["urn:dmb:itm:sqlite-storage-provisioner:0"],
                    },
                    "url": {
                        "type": "string", "pattern": "^https?://[^\\s/$.?#][^\\s]*$", "title": "http(s) URL",
                        "description": "The adapter's base URL (Tech Adapter API 2.2.0), usually ending in "
                                       "`/datamesh.specificprovisioner`.",
                        "examples": ["http://127.0.0.1:8091/datamesh.specificprovisioner"],
                    },
                    "environments": {
                        "type": "array", "minItems": 1, "uniqueItems": True,
                        "items": {"type": "string", "pattern": "^[A-Za-z0-9][A-Za-z0-9_.-]*$",
                                  "title": "environment name"},
                        "description": "The environments this adapter serves. Default: every environment. An "
                                       "adapter for named environments wins over one for every environment; two "
                                       "adapters for the same template may not share an environment.",
                        "examples": [["production"]],
                    },
                    "timeout": {
                        "type": "number", "exclusiveMinimum": 0, "maximum": 86400,
                        "description": "Seconds one call of this adapter may take (validate, provision, unprovision, "
                                       "...), polling of asynchronous answers included.",
                        "default": DEFAULT_ADAPTER_TIMEOUT,
                        "examples": [120],
                    },
                    "ca_bundle": {
                        "type": "string", "minLength": 1, "title": "file",
                        "description": "A PEM file of the certificate authorities trusted for this adapter's https "
                                       "URL (a company CA), relative to this file; checked when the configuration "
                                       "is read; deploys (their workers get it with each task), reviews, dry runs "
                                       "and `/import` use it. Default: the "
                                       "file `REQUESTS_CA_BUNDLE` (else `CURL_CA_BUNDLE`, else `SSL_CERT_FILE`) "
                                       "names in the environment, else the public authorities of certifi.",
                        "examples": ["certificates/company-ca.pem"],
                    },
                },
            },
        },
        "policies": {
            "type": "array", "items": {"type": "string", "minLength": 1, "title": "folder"},
            "description": "Folders of governance policy files, relative to this file, added to the built-in "
                           "policies; a repository can never switch a policy off. Default: none (the built-in "
                           "policies only).",
            "examples": [["governance"]],
        },
        "environments": {
            "description": "The environments that exist: a list of names, or a mapping of each name to the "
                           "rules of merge request commands in it. Deploys and merge request commands for "
                           "any other environment are refused. Default: any name (letters, digits, '_', '.', "
                           "'-'), each with the default rules.",
            "examples": [["development", "production"],
                         {"development": None, "staging": {"deploy_permission": "maintain"}, "production": None}],
            "oneOf": [
                {"type": "array", "minItems": 1, "uniqueItems": True, "items": {"$ref": "#/$defs/environment"}},
                {"type": "object", "minProperties": 1,
                 "propertyNames": {"$ref": "#/$defs/environment"},
                 "additionalProperties": ENVIRONMENT_SETTINGS_SCHEMA},
            ],
        },
        "marketplace": {
            "type": "object",
            "description": "Who is told of deployments.",
            "additionalProperties": False,
            "properties": {"notify": {
                "type": "array", "items": {"$ref": "#/$defs/url"},
                "description": "URLs that receive a signed CloudEvent (`dev.meshbot.dataproduct.deployed`, "
                               "`.undeployed`, `.failed`) when a deployment ends, each by its own job with retries "
                               "(docs/operations.md, Marketplace events); the deployment's outcome never depends on "
                               "them. Default: none.",
                "examples": [["https://marketplace.internal/hooks/meshbot"]],
            }},
        },
        "redis_url": {
            "type": "string", "pattern": "^(redis|rediss|unix)://",
            "description": "The Redis server of the deploy queue and records, shared by every meshbot process "
                           "and worker. `REDIS_URL` in the environment wins (it may carry credentials, which this "
                           "file may not). Default: the embedded Redis in meshbot's state folder (`MESHBOT_HOME`), "
                           "for one machine.",
            "examples": ["redis://redis.internal:6379/0"],
        },
        "deployments": {
            "type": "object",
            "description": "What the engine keeps.",
            "additionalProperties": False,
            "properties": {"history": {
                "type": "integer", "minimum": 1, "maximum": 10000,
                "description": "Deployments kept per data product and environment (older records are dropped).",
                "default": DEFAULT_HISTORY,
            }},
        },
        "deploy": {
            "type": "object",
            "description": "How deployments are planned.",
            "additionalProperties": False,
            "properties": {"only_changed": {
                "type": "boolean",
                "description": "Provision only the components whose descriptor changed since the last successful "
                               "deployment in that environment (or that are not deployed there), plus everything "
                               "that depends on them; the others are left as they are and listed as unchanged. The "
                               "data product's own task runs when its fields other than `version` changed, and then "
                               "every component with it.",
                "default": False,
            }},
        },
        "merge_requests": {
            "type": "object",
            "description": "How merge requests and pushes are reviewed.",
            "additionalProperties": False,
            "properties": {
                "environment": {
                    "$ref": "#/$defs/environment",
                    "description": "The default target of `/deploy`, the environment of `/import`, and the first "
                                   "environment a review checks.",
                    "default": DEFAULT_MERGE_REQUEST_ENVIRONMENT,
                },
                "environments": {
                    "type": "array", "minItems": 1, "uniqueItems": True,
                    "items": {"$ref": "#/$defs/environment"},
                    "description": "The environments every merge request and push is reviewed for: each gets the "
                                   "descriptor assembled for it, the policies with what is deployed there as the "
                                   "previous descriptor, and a plan against what is deployed there. Default: "
                                   "`merge_requests.environment` followed by `releases.environments`.",
                    "examples": [["development", "qa", "production"]],
                },
                "gating_environments": {
                    "type": "array", "uniqueItems": True,
                    "items": {"$ref": "#/$defs/environment"},
                    "description": "The reviewed environments whose blocking failures fail the merge request: the "
                                   "commit status `meshbot/governance` aggregates them (require it in branch "
                                   "protection). Other reviewed environments are shown in the comment only. "
                                   "Default: every reviewed environment.",
                    "examples": [["production"]],
                },
                "environment_statuses": {
                    "type": "boolean",
                    "description": "Also set one commit status `meshbot/governance/<env>` per gating environment, so "
                                   "branch protection can require single environments. Each costs one more forge "
                                   "API call per review (GitHub allows about 80 content-creating requests a "
                                   "minute), so it is off unless asked for.",
                    "default": False,
                },
                "validate_with_adapters": {
                    "type": "boolean",
                    "description": "Also ask each tech adapter's read-only `/v1/validate` about the merge request "
                                   "head, per reviewed environment, and show its answers in the comment.",
                    "default": False,
                },
            },
        },
        "releases": {
            "type": "object",
            "description": "How release tags deploy.",
            "additionalProperties": False,
            "properties": {
                "tag": {
                    "type": "string", "pattern": "^[^{}]*\\{version\\}[^{}]*$",
                    "description": "What a release tag looks like: `{version}`, once, stands for the descriptor's "
                                   "semantic version; other tags are ignored.",
                    "default": DEFAULT_RELEASE_TAG,
                    "examples": ["release-{version}"],
                },
                "environments": {
                    "type": "array", "uniqueItems": True, "items": {"$ref": "#/$defs/release_stage"},
                    "description": "The release stages, in order. A name is a stage the release tag deploys at "
                                   "once; a mapping `{name, after, promotion}` is a stage that waits until the "
                                   "stage named in `after` (an earlier one) has DEPLOYED the release: then "
                                   "`promotion: automatic` deploys it at once, and `promotion: merge-request` (the "
                                   "default) opens a promotion merge request that records the version in "
                                   "`releases/<env>.yaml`, whose merge deploys it. An empty list: nowhere.",
                    "default": list(DEFAULT_RELEASE_ENVIRONMENTS),
                    "examples": [["staging", "production"],
                                 ["qa", {"name": "production", "after": "qa", "promotion": "merge-request"}]],
                },
            },
        },
        "catch_up": {
            "type": "object",
            "description": "The catch-up sweep: forges do not redeliver a delivery meshbot missed (Redis or meshbot "
                           "down), so on start and every `interval_seconds` meshbot looks at the repositories it "
                           "serves and queues what is missing: a review of each open merge request whose head has no "
                           "`meshbot/governance` status, the release of the newest release tag whose commit has no "
                           "`meshbot/deploy/<env>` status, and (GitHub) a redelivery of failed deliveries of "
                           "meshbot's webhooks. Default: no repositories, so no sweep.",
            "additionalProperties": False,
            "properties": {
                "interval_seconds": {
                    "type": "integer", "minimum": 0, "maximum": 86400,
                    "description": "Seconds between two sweeps (one sweep at a time across every replica); 0 turns "
                                   "the sweep off.",
                    "default": DEFAULT_CATCH_UP_INTERVAL,
                },
                "repositories": {
                    "type": "object",
                    "description": "The repositories meshbot serves, per forge. Each costs about 2 forge API calls "
                                   "per sweep (4 on GitHub, with its webhooks), plus one for each merge request "
                                   "head or release tag not yet seen reviewed or released.",
                    "additionalProperties": False,
                    "properties": {
                        "github": {"type": "array", "uniqueItems": True,
                                   "items": {"type": "string", "pattern": "^[\\w.-]+/[\\w.-]+$",
                                             "title": "owner/name"},
                                   "description": "GitHub repositories, `owner/name`.",
                                   "examples": [["acme-data/finance-cashflow"]]},
                        "gitlab": {"type": "array", "uniqueItems": True,
                                   "items": {"type": "string", "pattern": "^[\\w.-]+(/[\\w.-]+)+$",
                                             "title": "group/project"},
                                   "description": "GitLab projects, `group/subgroup/project`.",
                                   "examples": [["data/finance/cashflow"]]},
                    },
                },
                "github_app_installations": {
                    "type": "boolean",
                    "description": "Also sweep every repository the GitHub App is installed on (when meshbot is a "
                                   "GitHub App; one more call per installation and 100 repositories).",
                    "default": False,
                },
                "redeliver": {
                    "type": "boolean",
                    "description": "On GitHub, redeliver failed deliveries of meshbot's webhooks (repository hooks "
                                   "pointing at `/webhooks/github`, and the App's hook) since the last sweep. Reading "
                                   "repository hooks needs admin rights or the App's Webhooks permission: without them "
                                   "meshbot logs it once per sweep and goes on.",
                    "default": True,
                },
            },
        },
        "policy_engines": {
            "type": "object",
            "description": "Remote policy engines (Witboost's Remote Engine API): a policy file with `remote: ENGINE` "
                           "is evaluated by POSTing `{content, resourceType, resourceId}` to the engine's URL and "
                           "reading `{satisfiesPolicy, errors}`. Only this file says where an engine is; a policy "
                           "naming an engine that is not here is refused when policies are read. Default: none.",
            "propertyNames": {"type": "string", "pattern": "^[a-z0-9][a-z0-9._-]*$", "title": "engine name"},
            "additionalProperties": {
                "type": "object", "additionalProperties": False, "required": ["url"],
                "description": "One remote policy engine.",
                "properties": {
                    "url": {"$ref": "#/$defs/url",
                            "description": "The URL meshbot POSTs each evaluation to."},
                    "timeout": {
                        "type": "number", "exclusiveMinimum": 0, "maximum": 600,
                        "description": "Seconds one evaluation may take; a slower or failing engine gives the "
                                       "policy an `error` outcome (never passed).",
                        "default": DEFAULT_POLICY_ENGINE_TIMEOUT,
                    },
                },
            },
            "examples": [{"cue": {"url": "https://policies.internal/v1/evaluate", "timeout": 10}}],
        },
        "compliance": {
            "type": "object",
            "description": "Compliance of what is deployed: meshbot re-evaluates today's policies on every deployed "
                           "descriptor when the policy files change and every `interval_seconds`, keeps the "
                           "results per data product and environment (with their history), shows them in the "
                           "console, and keeps one issue open on the repository of a product that no longer "
                           "complies.",
            "additionalProperties": False,
            "properties": {
                "interval_seconds": {
                    "type": "integer", "minimum": 0, "maximum": 2592000,
                    "description": "Seconds between two compliance checks of every deployed data product; 0 turns "
                                   "the periodic check off (a change of the policy files still runs one).",
                    "default": DEFAULT_COMPLIANCE_INTERVAL,
                },
                "issues": {
                    "type": "boolean",
                    "description": "Open (and edit in place, and close when fixed) one issue per non-compliant "
                                   "data product on its repository.",
                    "default": True,
                },
            },
        },
        "access": {
            "type": "object",
            "description": "Access requests as merge requests: the consumers of an output port are declared in "
                           "`access/<output port name>.yaml` of the data product's repository; merging a change "
                           "there calls the tech adapter's `updateacl` with the resulting refs in every environment "
                           "where the port is deployed. This section maps forge users and groups to the refs "
                           "adapters expect.",
            "additionalProperties": False,
            "properties": {
                "refs": {
                    "type": "object",
                    "description": "Explicit refs: `user:LOGIN` or `group:PATH` as written in an access file, "
                                   "mapped to the identity the adapter expects.",
                    "propertyNames": {"type": "string", "pattern": "^(user|group):\\S+$",
                                      "title": "user:LOGIN or group:PATH"},
                    "additionalProperties": {"type": "string", "minLength": 1},
                    "examples": [{"user:alice": "user:alice@acme.com", "group:acme/finance": "group:finance-analysts"}],
                },
                "user_ref": {
                    "type": "string", "pattern": "^[^{}]*\\{name\\}[^{}]*$",
                    "description": "The ref of a user who is not in `refs`; `{name}` stands for the forge login.",
                    "default": DEFAULT_USER_REF,
                    "examples": ["user:{name}@acme.com"],
                },
                "group_ref": {
                    "type": "string", "pattern": "^[^{}]*\\{name\\}[^{}]*$",
                    "description": "The ref of a group (GitHub team `org/team`, GitLab group path) that is not in "
                                   "`refs`; `{name}` stands for its path.",
                    "default": DEFAULT_GROUP_REF,
                },
            },
        },
        "public_url": {
            "$ref": "#/$defs/url",
            "description": "Where meshbot's web service is reached, for links: commit statuses, forge deployment "
                           "records and `/deploy` / `/rollback` replies link the console page of their deployment, "
                           "`PUBLIC_URL/deployments/ID`. Default: none (no links).",
            "examples": ["https://meshbot.example.com"],
        },
    },
    "$defs": {
        "environment": {"type": "string", "pattern": "^[A-Za-z0-9][A-Za-z0-9_.-]*$", "title": "environment name",
                        "description": "An environment name: a letter or digit, then letters, digits, '_', '.', "
                                       "'-'."},
        "release_stage": {
            "title": "release stage",
            "oneOf": [
                {"$ref": "#/$defs/environment"},
                {"type": "object", "additionalProperties": False, "required": ["name"],
                 "properties": {
                     "name": {"$ref": "#/$defs/environment"},
                     "after": {"$ref": "#/$defs/environment",
                               "description": "The earlier stage whose successful deployment of a release lets "
                                              "this one deploy it."},
                     "promotion": {"enum": list(PROMOTIONS),
                                   "description": "How this stage follows `after`: `automatic`, or a "
                                                  "`merge-request` whose merge deploys it.",
                                   "default": "merge-request"},
                 }},
            ],
        },
        "url": {"type": "string", "pattern": "^https?://[^\\s/$.?#][^\\s]*$", "title": "http(s) URL",
                "description": "An http or https URL."},
    },
}


@dataclass(frozen=True, slots=True)
class AdapterSettings:
    """Which tech adapter serves an infrastructure template, where, in which environments, how long it may take."""

    infrastructure_template_id: str
    url: str
    environments: tuple[str, ...] | None = None
    timeout: float = DEFAULT_ADAPTER_TIMEOUT
    ca_bundle: str | None = None  # an absolute path; None: the environment's CA bundle, else certifi's

    def serves(self, environment: str) -> bool:
        """Whether this adapter is used in environment."""
        return self.environments is None or environment in self.environments


@dataclass(frozen=True, slots=True)
class CatchUpSettings:
    """What the catch-up sweep looks at, and how often."""

    interval_seconds: int = DEFAULT_CATCH_UP_INTERVAL
    repositories: dict[str, tuple[str, ...]] = field(default_factory=dict)  # forge name -> repository paths
    github_app_installations: bool = False
    redeliver: bool = True

    @property
    def enabled(self) -> bool:
        """Whether sweeps run: an interval, and repositories to look at."""
        return self.interval_seconds > 0 and (any(self.repositories.values()) or self.github_app_installations)


@dataclass(frozen=True, slots=True)
class ReleaseStage:
    """One environment a release reaches: at once (no `after`), or after an earlier stage deployed it."""

    name: str
    after: str | None = None
    promotion: str = "automatic"  # how it follows `after`: automatic | merge-request (PROMOTIONS)


@dataclass(frozen=True, slots=True)
class PolicyEngineSettings:
    """Where a remote policy engine is and how long one evaluation may take."""

    name: str
    url: str
    timeout: float = DEFAULT_POLICY_ENGINE_TIMEOUT


@dataclass(frozen=True, slots=True)
class ComplianceSettings:
    """How often what is deployed is checked against today's policies, and whether issues are opened."""

    interval_seconds: int = DEFAULT_COMPLIANCE_INTERVAL
    issues: bool = True


@dataclass(frozen=True, slots=True)
class AccessSettings:
    """How the users and groups of access files become the refs tech adapters expect."""

    refs: dict[str, str] = field(default_factory=dict)
    user_ref: str = DEFAULT_USER_REF
    group_ref: str = DEFAULT_GROUP_REF

    def ref(self, kind: str, name: str) -> str:
        """The adapter's ref of a `user` or `group` named name (the explicit mapping, else the template)."""
        explicit = self.refs.get(f"{kind}:{name}")
        if explicit is not None:
            return explicit
        return (self.user_ref if kind == "user" else self.group_ref).replace("{name}", name)


@dataclass(slots=True)
class ServerConfig:
    """The platform's settings; the defaults describe a meshbot with no adapters and the built-in policies."""

    adapters: list[AdapterSettings] = field(default_factory=list)
    policy_folders: list[Path] = field(default_factory=list)
    environments: dict[str, dict[str, Any]] | None = None  # None: any valid environment name
    marketplace: list[str] = field(default_factory=list)
    redis_url: str | None = None
    history: int = DEFAULT_HISTORY
    merge_request_environment: str = DEFAULT_MERGE_REQUEST_ENVIRONMENT
    release_tag: str = DEFAULT_RELEASE_TAG  # "{version}" stands for the descriptor's version
    release_environments: list[str] = field(default_factory=lambda: list(DEFAULT_RELEASE_ENVIRONMENTS))
    public_url: str | None = None  # where meshbot's web service is reached, for links in comments and statuses
    file: str | None = None
    merge_request_environments: list[str] | None = None  # None: the merge request environment, then the releases'
    gating_environments: list[str] | None = None  # None: every reviewed environment
    validate_with_adapters: bool = False
    environment_statuses: bool = False  # a meshbot/governance/<env> status per gating environment
    catch_up: CatchUpSettings = field(default_factory=CatchUpSettings)
    release_stages: list[ReleaseStage] | None = None  # None: each release environment deployed at once
    only_changed: bool = False  # deploy only the components that changed since the last successful deployment
    policy_engines: dict[str, PolicyEngineSettings] = field(default_factory=dict)
    compliance: ComplianceSettings = field(default_factory=ComplianceSettings)
    access: AccessSettings = field(default_factory=AccessSettings)

    @property
    def stages(self) -> list[ReleaseStage]:
        """The release stages in order (a plain release environment is a stage the tag deploys at once)."""
        if self.release_stages is not None:
            return list(self.release_stages)
        return [ReleaseStage(name) for name in self.release_environments]

    def stage(self, environment: str) -> ReleaseStage | None:
        """The release stage of environment, if it is one."""
        return next((stage for stage in self.stages if stage.name == environment), None)

    def next_stages(self, environment: str) -> list[ReleaseStage]:
        """The stages that wait for environment to deploy a release."""
        return [stage for stage in self.stages if stage.after == environment]

    @property
    def review_environments(self) -> list[str]:
        """The environments a merge request or push is reviewed for, in order."""
        if self.merge_request_environments:
            return list(self.merge_request_environments)
        return list(dict.fromkeys([self.merge_request_environment, *self.release_environments]))

    def gates(self, environment: str) -> bool:
        """Whether blocking failures in environment fail a merge request."""
        return self.gating_environments is None or environment in self.gating_environments

    def rules(self, environment: str) -> EnvironmentRules:
        """Who may run merge request commands in environment (its settings, else the defaults)."""
        return rules_for(environment, (self.environments or {}).get(environment))

    def environment_error(self, environment: str) -> str | None:
        """Why environment cannot be used, or None when it can."""
        if self.environments is None or environment in self.environments:
            return None
        return f"environment '{environment}' is not in the server configuration (known: {', '.join(self.environments)})"


def config_path(explicit: str | None) -> str | None:
    """The configuration file to read: --config, else $MESHBOT_CONFIG, else none."""
    return explicit or os.environ.get(CONFIG_ENVIRONMENT_VARIABLE) or None


def load_config(path: str | None) -> ServerConfig:
    """The configuration in path (defaults when None); InputErrors names file, line and field of each mistake."""
    if path is None:
        return ServerConfig()
    file = Path(path)
    if not file.is_file():
        raise InputErrors([InputError("configuration file not found", SourcePosition(path))])
    if file.stat().st_size > MAX_FILE_BYTES:
        raise InputErrors([InputError("configuration file is over the 1 MiB limit", SourcePosition(path))])
    content = file.read_bytes()
    document = load_single(content, path)
    if document is None:
        return ServerConfig(file=path)
    errors = _schema_errors(document, content.decode("utf-8", "replace").splitlines())
    if errors:
        raise InputErrors(errors)
    value = document.value
    adapters = [
        AdapterSettings(
            infrastructure_template_id=entry["infrastructureTemplateId"],
            url=entry["url"],
            environments=tuple(entry["environments"]) if "environments" in entry else None,
            timeout=float(entry.get("timeout", DEFAULT_ADAPTER_TIMEOUT)),
            ca_bundle=str((file.parent / entry["ca_bundle"]).resolve()) if "ca_bundle" in entry else None,
        )
        for entry in value.get("adapters", [])
    ]
    errors = _overlap_errors(document, adapters) + _ca_bundle_errors(document, adapters)
    if errors:
        raise InputErrors(errors)
    folders = [(file.parent / folder).resolve() for folder in value.get("policies", [])]
    environments = value.get("environments")
    if isinstance(environments, list):
        environments = {name: {} for name in environments}
    elif isinstance(environments, dict):
        environments = {name: settings or {} for name, settings in environments.items()}
    redis_url = value.get("redis_url")
    if redis_url and "@" in redis_url:
        raise InputErrors([InputError(
            "redis_url: credentials do not belong in the configuration file; set REDIS_URL in the environment",
            document.position(("redis_url",)),
        )])
    reviews = value.get("merge_requests") or {}
    stages = _release_stages((value.get("releases") or {}).get("environments", DEFAULT_RELEASE_ENVIRONMENTS))
    errors = _review_environment_errors(document, reviews, environments) + _stage_errors(document, stages)
    if errors:
        raise InputErrors(errors)
    return ServerConfig(
        adapters=adapters, policy_folders=folders, environments=environments,
        marketplace=list((value.get("marketplace") or {}).get("notify", [])), redis_url=redis_url,
        history=int((value.get("deployments") or {}).get("history", DEFAULT_HISTORY)),
        merge_request_environment=(value.get("merge_requests") or {}).get(
            "environment", DEFAULT_MERGE_REQUEST_ENVIRONMENT),
        release_tag=(value.get("releases") or {}).get("tag", DEFAULT_RELEASE_TAG),
        release_environments=[stage.name for stage in stages], release_stages=stages,
        only_changed=bool((value.get("deploy") or {}).get("only_changed", False)),
        public_url=value.get("public_url"), file=path,
        merge_request_environments=reviews.get("environments"), gating_environments=reviews.get("gating_environments"),
        validate_with_adapters=bool(reviews.get("validate_with_adapters", False)),
        environment_statuses=bool(reviews.get("environment_statuses", False)),
        catch_up=_catch_up(value.get("catch_up") or {}),
        policy_engines={name: PolicyEngineSettings(name=name, url=engine["url"],
                                                   timeout=float(engine.get("timeout", DEFAULT_POLICY_ENGINE_TIMEOUT)))
                        for name, engine in (value.get("policy_engines") or {}).items()},
        compliance=ComplianceSettings(
            interval_seconds=int((value.get("compliance") or {}).get("interval_seconds", DEFAULT_COMPLIANCE_INTERVAL)),
            issues=bool((value.get("compliance") or {}).get("issues", True))),
        access=AccessSettings(refs=dict((value.get("access") or {}).get("refs") or {}),
                              user_ref=(value.get("access") or {}).get("user_ref", DEFAULT_USER_REF),
                              group_ref=(value.get("access") or {}).get("group_ref", DEFAULT_GROUP_REF)),
    )


def _catch_up(value: dict[str, Any]) -> CatchUpSettings:
    """The catch_up section (already checked against the schema)."""
    return CatchUpSettings(
        interval_seconds=int(value.get("interval_seconds", DEFAULT_CATCH_UP_INTERVAL)),
        repositories={forge: tuple(names) for forge, names in (value.get("repositories") or {}).items()},
        github_app_installations=bool(value.get("github_app_installations", False)),
        redeliver=bool(value.get("redeliver", True)),
    )


def _release_stages(entries: list[Any]) -> list[ReleaseStage]:
    """releases.environments (already checked against the schema) as stages."""
    return [ReleaseStage(entry) if isinstance(entry, str) else
            ReleaseStage(entry["name"], entry.get("after"),
                         entry.get("promotion", "merge-request") if entry.get("after") else "automatic")
            for entry in entries]


def _stage_errors(document: YamlDocument, stages: list[ReleaseStage]) -> list[InputError]:
    """Stages named twice, and stages that wait for a stage that is not an earlier one."""
    errors = []
    entries = (document.value.get("releases") or {}).get("environments") or []
    for index, stage in enumerate(stages):
        earlier = [other.name for other in stages[:index]]
        where = ("releases", "environments", index)
        if stage.name in earlier:
            errors.append(InputError(f"releases.environments.{index}: stage '{stage.name}' is listed twice",
                                     document.position(where)))
        if stage.after is not None and stage.after not in earlier:
            known = f"earlier stages: {', '.join(earlier)}" if earlier else "it is the first stage"
            errors.append(InputError(f"releases.environments.{index}.after: '{stage.after}' is not an earlier "
                                     f"stage ({known})", document.position((*where, "after"))))
        entry = entries[index] if index < len(entries) else None
        if stage.after is None and isinstance(entry, dict) and "promotion" in entry:
            errors.append(InputError(f"releases.environments.{index}.promotion: a stage without `after` is deployed "
                                     "by the release tag itself; give `after: STAGE` to promote from another stage",
                                     document.position((*where, "promotion"))))
    return errors


def _review_environment_errors(document: YamlDocument, reviews: dict[str, Any],
                               known: dict[str, Any] | None) -> list[InputError]:
    """Reviewed environments the configuration does not know, and gating environments that are not reviewed."""
    errors = []
    reviewed = reviews.get("environments")
    for index, name in enumerate(reviewed or []):
        if known is not None and name not in known:
            errors.append(InputError(f"merge_requests.environments: '{name}' is not in `environments` "
                                     f"(known: {', '.join(known)})",
                                     document.position(("merge_requests", "environments", index))))
    for index, name in enumerate(reviews.get("gating_environments") or []):
        if reviewed is not None and name not in reviewed:
            errors.append(InputError(f"merge_requests.gating_environments: '{name}' is not reviewed (add it to "
                                     "merge_requests.environments)",
                                     document.position(("merge_requests", "gating_environments", index))))
    return errors


def _schema_errors(document: YamlDocument, lines: list[str]) -> list[InputError]:
    """Every schema violation at the place of the value at fault; each unknown key at its own line and column."""
    import jsonschema  # here: a command without a configuration file starts faster without it

    validator = jsonschema.Draft202012Validator(CONFIG_SCHEMA)
    errors: list[InputError] = []
    for error in sorted(validator.iter_errors(document.value), key=lambda e: list(map(str, e.absolute_path))):
        if error.validator in ("oneOf", "anyOf") and error.context:
            # "not valid under any of the given schemas" helps nobody: say what is wrong in the closest branch.
            # The branch whose type fits the value failed deeper down: show that error.
            fitting = [e for e in error.context if e.validator != "type"] or list(error.context)
            error = max(fitting, key=lambda e: len(e.absolute_path))
        path = tuple(error.absolute_path)
        where = ".".join(str(part) for part in path) or "configuration"
        if error.validator == "required":
            missing = error.message.split("'")[1]
            message = f"{where}: '{missing}' is required"
        elif error.validator == "additionalProperties":
            allowed = ", ".join(error.schema.get("properties", {}))
            errors.extend(InputError(f"{where}: unknown key {key!r} (known keys: {allowed})",
                                     _key_position(document, (*path, key), lines))
                          for key in error.instance if key not in error.schema.get("properties", {}))
            continue
        elif error.validator == "pattern" and str(error.validator_value).startswith("^https?://"):
            message = f"{where}: {error.instance!r} is not an http(s) URL"
        elif error.validator == "pattern" and path == ("releases", "tag"):
            message = f"{where}: {error.instance!r} must contain {{version}} once, e.g. 'v{{version}}'"
        else:
            message = f"{where}: {error.message}"
        errors.append(InputError(message, document.position(path)))
    return errors


def _key_position(document: YamlDocument, path: tuple[Any, ...], lines: list[str]) -> SourcePosition:
    """Where the key ending path is written: its value's line (or the key's own, for a collection), at the key."""
    position = document.position(path)
    if position.line is None or position.column is None or not 0 < position.line <= len(lines):
        return position
    start = lines[position.line - 1].rfind(str(path[-1]), 0, position.column - 1)
    return position._replace(column=start + 1) if start >= 0 else position


def _ca_bundle_errors(document: YamlDocument, adapters: list[AdapterSettings]) -> list[InputError]:
    """Each adapter's ca_bundle that is not a readable PEM file of certificates."""
    import ssl  # here: only a configured ca_bundle needs it

    errors = []
    for index, adapter in enumerate(adapters):
        if adapter.ca_bundle is None:
            continue
        problem = None
        if not Path(adapter.ca_bundle).is_file():
            problem = f"file not found: {adapter.ca_bundle}"
        else:
            try:
                ssl.create_default_context(cafile=adapter.ca_bundle)
            except OSError as error:  # ssl.SSLError among them
                problem = f"{adapter.ca_bundle} is not a PEM file of certificates ({error})"
        if problem:
            errors.append(InputError(f"adapters.{index}.ca_bundle: {problem}",
                                     document.position(("adapters", index, "ca_bundle"))))
    return errors


def _overlap_errors(document: YamlDocument, adapters: list[AdapterSettings]) -> list[InputError]:
    errors = []
    for index, adapter in enumerate(adapters):
        for earlier_index, earlier in enumerate(adapters[:index]):
            if earlier.infrastructure_template_id != adapter.infrastructure_template_id:
                continue
            # An adapter for named environments may refine one for every environment; two of a kind may not.
            if earlier.environments is None and adapter.environments is None:
                overlap = {"every environment"}
            elif earlier.environments is None or adapter.environments is None:
                continue
            else:
                overlap = set(earlier.environments) & set(adapter.environments)
            if overlap:
                errors.append(InputError(
                    f"adapters.{index}: a second adapter for '{adapter.infrastructure_template_id}' in "
                    f"{', '.join(sorted(overlap))} (the first is adapters.{earlier_index}); give each one "
                    "distinct environments",
                    document.position(("adapters", index)),
                ))
    return errors
