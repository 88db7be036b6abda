"""An agent version as code: the JSON Schema of its YAML document and the typed model of it.

``agent.versions`` loads YAML (with line numbers for errors), validates it against
``VERSION_SCHEMA``, compiles its policy, and stores it; everything else reads a ``VersionSpec``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from agent.calls import Effect
from storage.enums import SideEffect

_EFFECTS = [e.value for e in Effect]
_ROLES = ["operator", "manager", "engineer", "admin"]
_NAME = {"type": "string", "pattern": "^[A-Za-z_][A-Za-z0-9_.-]{0,127}$"}

VERSION_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "Steward agent version",
    "type": "object",
    "additionalProperties": False,
    "required": ["planner", "tools", "policy"],
    "properties": {
        "description": {"type": "string"},
        "planner": {
            "type": "object",
            "additionalProperties": False,
            "required": ["kind"],
            "properties": {
                "kind": {"enum": ["playbook", "scripted", "chat"]},
                "model": {"type": "string"},
                "prompt": {"type": "string"},
                "system_prompt": {"type": "string"},
                "temperature": {"type": "number", "minimum": 0, "maximum": 2},
                "seed": {"type": "integer"},
                "noise": {"type": "number", "minimum": 0, "maximum": 1},
                "max_tokens": {"type": "integer", "minimum": 1},
                "base_url": {"type": "string"},
                "api_key_env": {"type": "string", "pattern": "^[A-Z_][A-Z0-9_]*$"},
                "playbooks": {"type": "array", "items": {"type": "object"}},
                "script": {"type": "array", "items": {"type": "object"}},
            },
            # A chat planner cannot run without knowing which model to ask, and where.
            "if": {"properties": {"kind": {"const": "chat"}}},
            "then": {
                "required": ["model", "base_url"],
                "properties": {"base_url": {"pattern": "^https?://"}},
            },
        },
        "tools": {"type": "array", "items": _NAME, "uniqueItems": True},
        "http_tools": {
            "type": "array",
            "items": {
                "type": "object",
                "additionalProperties": False,
                "required": ["name", "method", "url", "args_schema"],
                "properties": {
                    "name": _NAME,
                    "description": {"type": "string"},
                    "method": {"enum": ["GET", "POST", "PUT", "PATCH", "DELETE"]},
                    "url": {"type": "string", "minLength": 1},
                    "headers": {"type": "object", "additionalProperties": {"type": "string"}},
                    "query": {"type": "object", "additionalProperties": {"type": "string"}},
                    "body": {"enum": ["args", "none"]},
                    "timeout_s": {"type": "number", "exclusiveMinimum": 0},
                    "args_schema": {"type": "object"},
                    "result_schema": {"type": "object"},
                    "side_effect": {"enum": [s.value for s in SideEffect]},
                    "idempotent": {"type": "boolean"},
                    "data_sources": {"type": "array", "items": {"type": "string"}},
                    "compensating_tool": {"type": "string"},
                },
            },
        },
        "mcp_servers": {
            "type": "array",
            "items": {
                "type": "object",
                "additionalProperties": False,
                "required": ["name"],
                "properties": {
                    "name": _NAME,
                    "command": {"type": "array", "items": {"type": "string"}, "minItems": 1},
                    "env": {"type": "object", "additionalProperties": {"type": "string"}},
                    "cwd": {"type": "string", "minLength": 1},
                    "url": {"type": "string", "pattern": "^https?://"},
                    "headers": {"type": "object", "additionalProperties": {"type": "string"}},
                    "timeout_s": {"type": "number", "exclusiveMinimum": 0},
                    "tools": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "additionalProperties": False,
                            "required": ["name", "args_schema", "schema_hash"],
                            "properties": {
                                "name": _NAME,
                                "server_tool": {"type": "string", "minLength": 1},
                                "description": {"type": "string"},
                                "args_schema": {"type": "object"},
                                "schema_hash": {
                                    "type": "string",
                                    "pattern": "^sha256:[0-9a-f]{64}$",
                                },
                                "side_effect": {"enum": [s.value for s in SideEffect]},
                                "idempotent": {"type": "boolean"},
                                "data_sources": {"type": "array", "items": {"type": "string"}},
                                "compensating_tool": {"type": "string"},
                            },
                        },
                    },
                },
            },
        },
        "data_sources": {"type": "array", "items": {"type": "string"}, "uniqueItems": True},
        "policy": {
            "type": "object",
            "additionalProperties": False,
            "required": ["default"],
            "properties": {
                "default": {"enum": _EFFECTS},
                "facts": {"type": "array", "items": _NAME, "uniqueItems": True},
                "counters": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "additionalProperties": False,
                        "required": ["id", "tool", "window"],
                        "properties": {
                            "id": {"type": "string", "pattern": "^[A-Za-z_][A-Za-z0-9_]{0,63}$"},
                            "tool": {"type": "string", "minLength": 1},
                            "window": {
                                "type": "string",
                                "pattern": "^(run|hour|day|[1-9][0-9]{0,3}[mhd])$",
                            },
                            "per": {"type": "string", "minLength": 1},
                            "sum": {"type": "string", "minLength": 1},
                            "shared": {"type": "boolean"},
                        },
                    },
                },
                "rules": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "additionalProperties": False,
                        "required": ["id", "effect", "reason"],
                        "properties": {
                            "id": {"type": "string", "pattern": "^[A-Za-z0-9_.-]{1,64}$"},
                            "tool": {"type": "string", "minLength": 1},
                            "when": {"type": "string", "minLength": 1},
                            "effect": {"enum": _EFFECTS},
                            "reason": {"type": "string", "minLength": 1},
                            "sla_minutes": {"type": "number", "exclusiveMinimum": 0},
                            "on_expiry": {"enum": ["reject", "escalate"]},
                            "max_tier": {"type": "integer", "minimum": 1, "maximum": 5},
                            "approvals": {
                                "type": "integer",
                                "minimum": 1,
                                "maximum": 5,
                                "description": "distinct people who must approve (four-eyes)",
                            },
                            "override_roles": {
                                "type": "array",
                                "items": {"enum": _ROLES},
                                "uniqueItems": True,
                            },
                            "shadow": {
                                "type": "boolean",
                                "description": "evaluated and recorded, never enforced",
                            },
                        },
                    },
                },
            },
        },
        "rate_limits": {
            "type": "array",
            "items": {
                "type": "object",
                "additionalProperties": False,
                "required": ["tool", "limit"],
                "properties": {
                    "tool": {"type": "string", "minLength": 1},
                    "limit": {"type": "string", "minLength": 3},
                },
            },
        },
        "budgets": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "max_steps": {"type": "integer", "minimum": 1},
                "max_planner_turns": {"type": "integer", "minimum": 1},
                "run_deadline_s": {"type": "number", "exclusiveMinimum": 0},
                "call_timeout_s": {"type": "number", "exclusiveMinimum": 0},
                "model_timeout_s": {"type": "number", "exclusiveMinimum": 0},
                "max_denials": {"type": "integer", "minimum": 0},
                "max_rejections": {"type": "integer", "minimum": 0},
                "max_consecutive_failures": {"type": "integer", "minimum": 1},
            },
        },
        "retries": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "max_attempts": {"type": "integer", "minimum": 1, "maximum": 10},
                "initial_backoff_s": {"type": "number", "minimum": 0},
                "max_backoff_s": {"type": "number", "minimum": 0},
                "jitter_s": {"type": "number", "minimum": 0},
            },
        },
        "circuit_breaker": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "failure_threshold": {"type": "integer", "minimum": 1},
                "failure_rate": {"type": "number", "exclusiveMinimum": 0, "maximum": 1},
                "window": {"type": "integer", "minimum": 2},
                "min_calls": {"type": "integer", "minimum": 1},
                "reset_after_s": {"type": "number", "exclusiveMinimum": 0},
            },
        },
        "output": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "schema": {"type": "object"},
                "checks": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "additionalProperties": False,
                        "required": ["id", "expr", "message"],
                        "properties": {
                            "id": {"type": "string"},
                            "expr": {"type": "string"},
                            "message": {"type": "string"},
                        },
                    },
                },
            },
        },
    },
}


@dataclass(frozen=True)
class PlannerSpec:
    """The ``planner`` section. ``playbook`` reads ``playbooks``, ``seed`` and ``noise``;
    ``scripted`` reads ``script``; ``chat`` reads ``model``, ``base_url`` (an OpenAI-compatible
    endpoint ending in ``/v1``), ``api_key_env`` (the *name* of the environment variable that
    holds the key: the key itself is never part of a version), ``temperature``, ``seed``,
    ``max_tokens`` and ``system_prompt`` (or ``prompt``)."""

    kind: str
    model: str = ""
    prompt: str = ""
    system_prompt: str = ""
    temperature: float = 0.0
    seed: int = 0
    noise: float = 0.0
    max_tokens: int | None = None
    base_url: str | None = None
    api_key_env: str | None = None
    playbooks: tuple[Mapping[str, Any], ...] = ()
    script: tuple[Mapping[str, Any], ...] = ()


@dataclass(frozen=True)
class PolicyRuleSpec:
    id: str
    effect: Effect
    reason: str
    tool: str = "*"
    when: str = "true"
    sla_minutes: float | None = None
    on_expiry: str = "reject"
    max_tier: int = 1
    override_roles: tuple[str, ...] = ()
    # Four-eyes: an escalation this rule raises executes only once this many distinct people
    # approved the same arguments, none of them the person who submitted the task.
    approvals: int = 1
    # A shadow rule is evaluated on live traffic and recorded next to the live decision, never
    # enforced; promoting it is a new version without the flag.
    shadow: bool = False


@dataclass(frozen=True)
class CounterSpec:
    """What a policy counts, so that a rule can limit it atomically (``counters.<id>``).

    Every executed call of a tool matching ``tool`` adds 1 (or the number ``sum`` evaluates to,
    a CEL expression over ``args``, ``task`` and ``agent``) to the count kept per value of
    ``per`` (CEL over the same variables; the whole agent when absent) over ``window``:
    ``run``, ``hour`` or ``day`` (UTC calendar periods), or a rolling ``<n>m``, ``<n>h`` or
    ``<n>d``. Counts are per agent unless ``shared``. A rule reading ``counters.<id>`` sees the
    count before the call it decides, and the decision and the call's reservation are one
    atomic step, so concurrent runs on several workers cannot overshoot a limit.
    """

    id: str
    tool: str
    window: str
    per: str | None = None
    sum: str | None = None
    shared: bool = False


@dataclass(frozen=True)
class PolicySpec:
    default: Effect
    rules: tuple[PolicyRuleSpec, ...] = ()
    facts: tuple[str, ...] = ()
    counters: tuple[CounterSpec, ...] = ()


@dataclass(frozen=True)
class RateLimitSpec:
    tool: str
    limit: str


@dataclass(frozen=True)
class BudgetSpec:
    """What one run may spend. ``model_timeout_s`` bounds each request of a chat planner (and
    never outlasts what is left of ``run_deadline_s``)."""

    max_steps: int = 60
    max_planner_turns: int = 20
    run_deadline_s: float = 300.0
    call_timeout_s: float = 10.0
    model_timeout_s: float = 60.0
    max_denials: int = 3
    max_rejections: int = 3
    max_consecutive_failures: int = 3


@dataclass(frozen=True)
class RetrySpec:
    max_attempts: int = 3
    initial_backoff_s: float = 0.05
    max_backoff_s: float = 2.0
    jitter_s: float = 0.05


@dataclass(frozen=True)
class CircuitSpec:
    """Open after ``failure_threshold`` failures in a row, or when at least ``failure_rate`` of
    the last ``window`` calls failed (once ``min_calls`` were seen)."""

    failure_threshold: int = 5
    failure_rate: float = 0.5
    window: int = 20
    min_calls: int = 10
    reset_after_s: float = 30.0


@dataclass(frozen=True)
class OutputCheck:
    id: str
    expr: str
    message: str


@dataclass(frozen=True)
class OutputSpec:
    schema: Mapping[str, Any] = field(default_factory=lambda: {"type": "object"})
    checks: tuple[OutputCheck, ...] = ()


@dataclass(frozen=True)
class HttpToolDef:
    name: str
    method: str
    url: str
    args_schema: Mapping[str, Any]
    description: str = ""
    headers: Mapping[str, str] = field(default_factory=dict)
    query: Mapping[str, str] = field(default_factory=dict)
    body: str | None = None
    timeout_s: float | None = None
    result_schema: Mapping[str, Any] = field(default_factory=lambda: {"type": "object"})
    side_effect: SideEffect = SideEffect.READ
    idempotent: bool = True
    data_sources: tuple[str, ...] = ()
    compensating_tool: str | None = None


@dataclass(frozen=True)
class McpToolPin:
    """One tool of an MCP server as the version pinned it: the schema it was created with (its
    hash is checked against what the server lists at run time) and how Steward governs it.

    Attributes:
        name: the tool's name in Steward (what policies, rate limits and planners use).
        server_tool: its name on the server, when it differs from ``name``.
        schema_hash: ``sha256:<hex>`` of the canonical JSON of the server's name and input
            schema (``agent.tools.mcp.pins.schema_hash``).
        side_effect: unless the version says otherwise, derived from the tool's MCP
            annotations when it was inspected; ``irreversible`` for a tool that declares none.
    """

    name: str
    args_schema: Mapping[str, Any]
    schema_hash: str
    server_tool: str | None = None
    description: str = ""
    side_effect: SideEffect = SideEffect.IRREVERSIBLE
    idempotent: bool = False
    data_sources: tuple[str, ...] = ()
    compensating_tool: str | None = None

    @property
    def remote_name(self) -> str:
        """The tool's name on its server."""
        return self.server_tool or self.name


@dataclass(frozen=True)
class McpServerDef:
    """An MCP server a version uses: a ``command`` started over stdio (``env`` values may hold
    ``${env:NAME}``) or a streamable HTTP ``url`` (``headers`` may hold ``${env:NAME}``), and the
    tools of it the version pinned. Only pinned tools are ever offered to a run."""

    name: str
    tools: tuple[McpToolPin, ...] = ()
    command: tuple[str, ...] = ()
    env: Mapping[str, str] = field(default_factory=dict)
    cwd: str | None = None
    url: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    timeout_s: float | None = None

    @property
    def transport(self) -> str:
        return "stdio" if self.command else "http"

    def describe(self) -> str:
        """Where the server is, for messages (a URL without its query, or the program)."""
        if self.url is not None:
            return self.url.split("?", 1)[0]
        return self.command[0]


@dataclass(frozen=True)
class VersionSpec:
    """A validated version document. Build it with ``VersionSpec.from_document``."""

    planner: PlannerSpec
    tools: tuple[str, ...]
    policy: PolicySpec
    description: str = ""
    http_tools: tuple[HttpToolDef, ...] = ()
    mcp_servers: tuple[McpServerDef, ...] = ()
    data_sources: tuple[str, ...] = ()
    rate_limits: tuple[RateLimitSpec, ...] = ()
    budgets: BudgetSpec = field(default_factory=BudgetSpec)
    retries: RetrySpec = field(default_factory=RetrySpec)
    circuit_breaker: CircuitSpec = field(default_factory=CircuitSpec)
    output: OutputSpec = field(default_factory=OutputSpec)

    @property
    def tool_names(self) -> tuple[str, ...]:
        """Every tool in scope: registered ones, this version's own HTTP tools and the tools
        it pinned of its MCP servers."""
        own = [t.name for t in self.http_tools] + [pin.name for _, pin in self.mcp_tools]
        return self.tools + tuple(name for name in own if name not in self.tools)

    @property
    def mcp_tools(self) -> tuple[tuple[McpServerDef, McpToolPin], ...]:
        """Every pinned MCP tool with its server."""
        return tuple((server, pin) for server in self.mcp_servers for pin in server.tools)

    @classmethod
    def from_document(cls, doc: Mapping[str, Any]) -> VersionSpec:
        """Build from a document that already passed ``VERSION_SCHEMA``."""
        planner = dict(doc["planner"])
        policy = doc["policy"]
        output = doc.get("output", {})
        return cls(
            description=doc.get("description", ""),
            planner=PlannerSpec(
                **{k: v for k, v in planner.items() if k not in ("playbooks", "script")},
                playbooks=tuple(planner.get("playbooks", ())),
                script=tuple(planner.get("script", ())),
            ),
            tools=tuple(doc["tools"]),
            http_tools=tuple(
                HttpToolDef(
                    **{
                        **t,
                        "side_effect": SideEffect(t.get("side_effect", "read")),
                        "data_sources": tuple(t.get("data_sources", ())),
                    }
                )
                for t in doc.get("http_tools", ())
            ),
            mcp_servers=tuple(_mcp_server(m) for m in doc.get("mcp_servers", ())),
            data_sources=tuple(doc.get("data_sources", ())),
            policy=PolicySpec(
                default=Effect(policy["default"]),
                facts=tuple(policy.get("facts", ())),
                counters=tuple(CounterSpec(**c) for c in policy.get("counters", ())),
                rules=tuple(
                    PolicyRuleSpec(
                        **{
                            **r,
                            "effect": Effect(r["effect"]),
                            "override_roles": tuple(r.get("override_roles", ())),
                        }
                    )
                    for r in policy.get("rules", ())
                ),
            ),
            rate_limits=tuple(RateLimitSpec(**r) for r in doc.get("rate_limits", ())),
            budgets=BudgetSpec(**doc.get("budgets", {})),
            retries=RetrySpec(**doc.get("retries", {})),
            circuit_breaker=CircuitSpec(**doc.get("circuit_breaker", {})),
            output=OutputSpec(
                schema=output.get("schema", {"type": "object"}),
                checks=tuple(OutputCheck(**c) for c in output.get("checks", ())),
            ),
        )


def _mcp_server(raw: Mapping[str, Any]) -> McpServerDef:
    return McpServerDef(
        **{
            **raw,
            "command": tuple(raw.get("command", ())),
            "tools": tuple(
                McpToolPin(
                    **{
                        **pin,
                        "side_effect": SideEffect(pin.get("side_effect", "irreversible")),
                        "data_sources": tuple(pin.get("data_sources", ())),
                    }
                )
                for pin in raw.get("tools", ())
            ),
        }
    )
