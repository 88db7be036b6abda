"""Where notifications go: channels and routing rules, read from ``STEWARD_NOTIFY_FILE`` (YAML).

```yaml
console_url: http://localhost:8501          # links in messages open the review here
channels:
  ops-mail: {url: "mailto://smtp.example.com:25?from=steward@example.com&to=ops@example.com"}
  on-call: {url: "slack://${SLACK_TOKENS}"}  # any URL apprise understands; ${VAR} from the env
  hooks: {webhook: "https://hooks.example.com/steward", secret_env: STEWARD_WEBHOOK_SECRET}
routes:
  - events: [review.raised, review.sla_80, review.expired, review.tier]
    agents: [support]        # optional: only these agents
    rules: [refund-over-limit]   # optional: only reviews raised by these rules
    min_risk: 1000           # optional: only reviews at least this risky
    tiers: [2]               # optional: only these tiers
    channels: [ops-mail, hooks]
  - events: [circuit.opened, evaluation.failed]
    channels: [on-call]
```

A channel is an apprise URL (e-mail, Slack, Microsoft Teams and the many others apprise speaks)
or a signed ``webhook`` (see ``agent.notify.signing``), whose secret is read from the environment
variable ``secret_env`` names: no secret is ever written in the file, a log or the database.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from jsonschema import Draft202012Validator

from agent.errors import ConfigurationError

FILE_VARIABLE = "STEWARD_NOTIFY_FILE"
EVENTS = (
    "review.raised",
    "review.sla_80",
    "review.expired",
    "review.tier",
    "circuit.opened",
    "evaluation.failed",
    "canary.rolled_back",
)
_NAME = {"type": "string", "pattern": "^[A-Za-z0-9_.-]{1,64}$"}
_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["channels", "routes"],
    "properties": {
        "console_url": {"type": "string", "pattern": "^https?://"},
        "channels": {
            "type": "object",
            "propertyNames": _NAME,
            "additionalProperties": {
                "type": "object",
                "additionalProperties": False,
                "oneOf": [{"required": ["url"]}, {"required": ["webhook", "secret_env"]}],
                "properties": {
                    "url": {"type": "string", "minLength": 3},
                    "webhook": {"type": "string", "pattern": "^https?://"},
                    "secret_env": {"type": "string", "pattern": "^[A-Z_][A-Z0-9_]*$"},
                    "timeout_s": {"type": "number", "exclusiveMinimum": 0, "maximum": 60},
                },
            },
        },
        "routes": {
            "type": "array",
            "items": {
                "type": "object",
                "additionalProperties": False,
                "required": ["events", "channels"],
                "properties": {
                    "events": {"type": "array", "minItems": 1, "items": {"enum": list(EVENTS)}},
                    "agents": {"type": "array", "items": {"type": "string"}},
                    "rules": {"type": "array", "items": {"type": "string"}},
                    "min_risk": {"type": "integer", "minimum": 0},
                    "tiers": {"type": "array", "items": {"type": "integer", "minimum": 1}},
                    "channels": {"type": "array", "minItems": 1, "items": _NAME},
                },
            },
        },
    },
}
_VALIDATOR = Draft202012Validator(_SCHEMA)
_VARIABLE = re.compile(r"\$\{([A-Z_][A-Z0-9_]*)\}")


@dataclass(frozen=True)
class Channel:
    """An apprise URL, or a signed webhook and the variable holding its secret."""

    name: str
    url: str | None = None
    webhook: str | None = None
    secret_env: str | None = None
    timeout_s: float = 10.0

    def resolved_url(self) -> str:
        """The apprise URL with each ``${NAME}`` replaced by that environment variable, so a
        password or token never has to be written in the file or saved in the console.

        Raises:
            ConfigurationError: a variable it names is not set.
        """

        def value(match: re.Match[str]) -> str:
            found = os.environ.get(match.group(1), "")
            if not found:
                raise ConfigurationError(
                    f"channel {self.name}: the variable {match.group(1)} its URL names is not set."
                )
            return found

        return _VARIABLE.sub(value, self.url or "")

    def secret(self) -> bytes:
        """The webhook's signing secret, from the environment.

        Raises:
            ConfigurationError: the variable is not set.
        """
        value = os.environ.get(self.secret_env or "", "")
        if not value:
            raise ConfigurationError(
                f"channel {self.name}: the variable {self.secret_env} that holds its signing "
                "secret is not set."
            )
        return value.encode()


@dataclass(frozen=True)
class Route:
    """Which events (for which agents, rules, risk and tiers) go to which channels."""

    events: tuple[str, ...]
    channels: tuple[str, ...]
    agents: tuple[str, ...] = ()
    rules: tuple[str, ...] = ()
    min_risk: int | None = None
    tiers: tuple[int, ...] = ()

    def matches(self, event: Event) -> bool:
        if event.name not in self.events:
            return False
        if self.agents and event.agent not in self.agents:
            return False
        if self.rules and event.rule_id not in self.rules:
            return False
        if self.min_risk is not None and (event.risk or 0) < self.min_risk:
            return False
        return not self.tiers or event.tier in self.tiers


@dataclass(frozen=True)
class Event:
    """Something people should hear about, with what routing reads and what the message says."""

    name: str
    key: str
    subject: str
    body: str
    agent: str | None = None
    rule_id: str | None = None
    risk: int | None = None
    tier: int | None = None
    payload: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class NotifyConfig:
    """The channels and routes, and where the console is (for links)."""

    channels: Mapping[str, Channel]
    routes: tuple[Route, ...]
    console_url: str = "http://localhost:8501"

    def channels_for(self, event: Event) -> list[str]:
        """The channels ``event`` goes to, each once, in the order routes name them."""
        chosen: list[str] = []
        for route in self.routes:
            if route.matches(event):
                chosen.extend(c for c in route.channels if c not in chosen)
        return chosen


def load_config(path: Path) -> NotifyConfig:
    """Read and check a notification file.

    Raises:
        ConfigurationError: unreadable, not YAML, or not what ``_SCHEMA`` allows; one sentence
            naming where.
    """
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigurationError(
            f"{FILE_VARIABLE}: {path} cannot be read ({exc.strerror})."
        ) from exc
    except yaml.YAMLError as exc:
        raise ConfigurationError(f"{FILE_VARIABLE}: {path} is not YAML ({exc}).") from exc
    return parse_config(document, where=str(path))


def parse_config(document: Any, *, where: str = "the notification settings") -> NotifyConfig:
    """A checked ``NotifyConfig`` from a parsed document (see ``load_config``)."""
    error = next(iter(sorted(_VALIDATOR.iter_errors(document), key=lambda e: e.path)), None)
    if error is not None:
        at = "/".join(str(p) for p in error.absolute_path) or "the top level"
        raise ConfigurationError(f"{where}: at {at}: {error.message}.")
    channels = {name: Channel(name=name, **spec) for name, spec in document["channels"].items()}
    routes = []
    for index, raw in enumerate(document["routes"]):
        unknown = [c for c in raw["channels"] if c not in channels]
        if unknown:
            raise ConfigurationError(
                f"{where}: routes/{index} names the channel {unknown[0]!r}, which is not "
                "defined under channels."
            )
        routes.append(
            Route(
                events=tuple(raw["events"]),
                channels=tuple(raw["channels"]),
                agents=tuple(raw.get("agents", ())),
                rules=tuple(raw.get("rules", ())),
                min_risk=raw.get("min_risk"),
                tiers=tuple(raw.get("tiers", ())),
            )
        )
    return NotifyConfig(
        channels, tuple(routes), document.get("console_url", "http://localhost:8501").rstrip("/")
    )


def configured(environ: Mapping[str, str] | None = None) -> NotifyConfig | None:
    """The configuration ``STEWARD_NOTIFY_FILE`` names, or None when it is not set."""
    raw = (os.environ if environ is None else environ).get(FILE_VARIABLE, "").strip()
    return load_config(Path(raw)) if raw else None


def names(values: Sequence[str]) -> str:
    return ", ".join(values)
