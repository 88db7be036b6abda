"""Versions as code: YAML errors name their line, versions are immutable and content-hashed,
activation and rollback keep a who/when/why history, and only engineers change versions."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import col, select

from agent.actors import Actor
from agent.demo.seed import VERSIONS_DIR
from agent.errors import Forbidden, InvalidInput, NotFound, VersionSpecError
from agent.plugins import installed_registry
from agent.versions import (
    activate_version,
    active_version,
    content_hash,
    create_agent,
    create_version,
    deployment_history,
    diff_versions,
    list_agents,
    list_versions,
    load_spec,
    load_version_document,
    parse_version,
    rollback,
    show_version,
)
from storage.audit import verify_chain
from storage.engine import read_session
from storage.enums import DeploymentAction
from storage.models import AgentVersion, AuditEvent, Deployment
from tests.support.runtime import platform_for

SAMPLE = """\
description: Support agent, conservative refunds
planner: {kind: playbook, model: playbook-v1, prompt: "Resolve refund requests.", seed: 7, noise: 0.0, playbooks: []}
tools: [lookup_customer, lookup_order, issue_refund, send_email, close_ticket]
data_sources: [crm, orders, payments, email, tickets]
policy:
  default: allow
  facts: [refunds_today, customer_email]
  rules:
    - {id: refund-small, tool: issue_refund, when: "args.amount <= 100.0", effect: allow, reason: Small refunds are within the agent's authority.}
    - {id: refund-medium, tool: issue_refund, when: "args.amount > 100.0 && args.amount <= 1000.0", effect: escalate, reason: Refunds over $100 need an operator., sla_minutes: 30, on_expiry: escalate, max_tier: 2}
    - {id: refund-large, tool: issue_refund, when: "args.amount > 1000.0", effect: deny, reason: Refunds over $1000 are not allowed., override_roles: [manager]}
    - {id: email-own-address, tool: send_email, when: "args.to != facts.customer_email", effect: deny, reason: Email only the customer's own address.}
rate_limits: [{tool: issue_refund, limit: "30/minute"}]
budgets: {max_steps: 40, run_deadline_s: 120, call_timeout_s: 5, max_denials: 3, max_consecutive_failures: 3}
output:
  schema: {type: object, required: [resolution], properties: {resolution: {enum: [refunded, declined, escalated, answered]}}}
  checks: [{id: has-summary, expr: "has(output.summary)", message: The answer must include a summary.}]
"""  # noqa: E501

# The same document in block style with comments: a different text, the same content.
SAMPLE_REFORMATTED = """\
# Support agent, written out in block style.
description: "Support agent, conservative refunds"
planner:
  kind: playbook
  model: playbook-v1
  prompt: Resolve refund requests.
  seed: 7
  noise: 0.0
  playbooks: []
tools:
  - lookup_customer
  - lookup_order
  - issue_refund
  - send_email
  - close_ticket
data_sources: [crm, orders, payments, email, tickets]
policy:
  default: allow
  facts: [refunds_today, customer_email]
  rules:
    - id: refund-small
      tool: issue_refund
      when: args.amount <= 100.0
      effect: allow
      reason: Small refunds are within the agent's authority.
    - {id: refund-medium, tool: issue_refund, when: "args.amount > 100.0 && args.amount <= 1000.0", effect: escalate, reason: Refunds over $100 need an operator., sla_minutes: 30, on_expiry: escalate, max_tier: 2}
    - {id: refund-large, tool: issue_refund, when: "args.amount > 1000.0", effect: deny, reason: Refunds over $1000 are not allowed., override_roles: [manager]}
    - {id: email-own-address, tool: send_email, when: "args.to != facts.customer_email", effect: deny, reason: Email only the customer's own address.}
rate_limits: [{tool: issue_refund, limit: "30/minute"}]  # per agent
budgets: {max_steps: 40, run_deadline_s: 120, call_timeout_s: 5, max_denials: 3, max_consecutive_failures: 3}
output:
  schema: {type: object, required: [resolution], properties: {resolution: {enum: [refunded, declined, escalated, answered]}}}
  checks: [{id: has-summary, expr: "has(output.summary)", message: The answer must include a summary.}]
"""  # noqa: E501

ENGINEER = Actor.of("erin", ["engineer"])
REGISTRY = installed_registry()
ADMIN = Actor.of("ada", ["admin"])
OPERATOR = Actor.of("otto", ["operator"])
MANAGER = Actor.of("mona", ["manager"])


def line_of(text: str, fragment: str) -> int:
    """The 1-based line of the first occurrence of ``fragment`` in ``text``."""
    return text[: text.index(fragment)].count("\n") + 1


def edited(old: str, new: str, text: str = SAMPLE) -> str:
    assert old in text, old
    return text.replace(old, new, 1)


def spec_error(text: str) -> VersionSpecError:
    with pytest.raises(VersionSpecError) as caught:
        load_version_document(text)
    return caught.value


# --- the document: every refusal names its line ---------------------------------------------


def test_sample_loads_and_hashes_its_canonical_json() -> None:
    parsed = parse_version(SAMPLE)
    assert parsed.document["policy"]["rules"][2]["override_roles"] == ["manager"]
    assert parsed.spec.tool_names[2] == "issue_refund"
    canonical = json.dumps(parsed.document, sort_keys=True, separators=(",", ":"))
    assert parsed.content_hash == hashlib.sha256(canonical.encode()).hexdigest()
    assert len(parsed.policy_hash) == 64


def test_formatting_and_comments_do_not_change_the_hash() -> None:
    first = parse_version(SAMPLE)
    second = parse_version(SAMPLE_REFORMATTED)
    assert first.content_hash == second.content_hash
    assert first.policy_hash == second.policy_hash
    changed = parse_version(edited("max_steps: 40", "max_steps: 41"))
    assert changed.content_hash != first.content_hash
    assert changed.policy_hash == first.policy_hash
    stricter = parse_version(edited("args.amount <= 100.0", "args.amount <= 50.0"))
    assert stricter.policy_hash != first.policy_hash


@pytest.mark.parametrize(
    ("old", "new", "marker", "expected"),
    [
        pytest.param(
            "effect: deny, reason: Refunds over $1000",
            "effect: block, reason: Refunds over $1000",
            "effect: block",
            ["policy.rules[2].effect", "'block' is not one of", "rule 'refund-large'"],
            id="enum",
        ),
        pytest.param(
            "sla_minutes: 30",
            "sla_minutes: soon",
            "sla_minutes: soon",
            ["policy.rules[1].sla_minutes", "expected number, found a string"],
            id="type",
        ),
        pytest.param(
            "budgets: {max_steps: 40,",
            "budgets: {max_stepz: 40,",
            "max_stepz",
            ["budgets: unknown key 'max_stepz'", "max_steps"],
            id="unknown-key",
        ),
        pytest.param(
            "  default: allow\n",
            "  default: allow\n  deflt: deny\n",
            "deflt",
            ["policy: unknown key 'deflt'"],
            id="unknown-key-block-style",
        ),
        pytest.param(
            'rate_limits: [{tool: issue_refund, limit: "30/minute"}]',
            'rate_limits: [{tool: issue_refund, limit: "30/fortnight"}]',
            "30/fortnight",
            ["rate_limits[0]", "'30/fortnight' is not a rate limit"],
            id="rate-limit",
        ),
        pytest.param(
            "id: email-own-address",
            "id: refund-small",
            "id: refund-small, tool: send_email",
            ["rule 'refund-small'", "rule ids must be unique"],
            id="duplicate-rule-id",
        ),
        pytest.param(
            "tool: send_email, when",
            "tool: send_emial, when",
            "send_emial",
            ["rule 'email-own-address'", "'send_emial' matches no tool"],
            id="rule-tool-typo",
        ),
        pytest.param(
            "  default: allow\n",
            "  default: allow\n  default: deny\n",
            "default: deny",
            ["'default' appears twice", "first on line 6"],
            id="duplicate-key",
        ),
        pytest.param(
            "tools: [lookup_customer,",
            "tools: [lookup_customer,,",
            "lookup_customer,,",
            ["not valid YAML"],
            id="syntax",
        ),
        pytest.param(
            "description: Support agent, conservative refunds",
            "description: 2024-01-01",
            "2024-01-01",
            ["description", "date value", "quote it"],
            id="not-json",
        ),
        pytest.param(
            "send_email, close_ticket]",
            'send_email, "close_ticket\\n"]',
            "close_ticket\\n",
            ["tools[4]: 'close_ticket\\n' does not match '^[A-Za-z_]"],
            id="name-with-a-final-newline",
        ),
    ],
)
def test_schema_and_reference_errors_name_their_line(
    old: str, new: str, marker: str, expected: list[str]
) -> None:
    text = edited(old, new)
    error = spec_error(text)
    assert error.line == line_of(text, marker), str(error)
    assert str(error).startswith(f"line {error.line}")
    for fragment in expected:
        assert fragment in str(error)


def test_missing_section_points_at_the_document() -> None:
    text = SAMPLE.replace(SAMPLE.splitlines()[1] + "\n", "")
    error = spec_error(text)
    assert error.line == 1
    assert "'planner' is a required property" in str(error)


def test_several_problems_report_the_first_by_line_and_count_the_rest() -> None:
    text = edited("max_tier: 2", "max_tier: 9", edited("seed: 7", "seed: seven"))
    error = spec_error(text)
    assert error.line == 2
    assert "planner.seed" in str(error)
    assert "1 more problem after this one" in str(error)


@pytest.mark.parametrize("text", ["", "- a\n- b\n", "just text\n"])
def test_a_document_that_is_not_a_mapping_is_refused(text: str) -> None:
    error = spec_error(text)
    assert error.line == 1
    assert "expected object" in str(error)


def test_unsafe_tags_and_several_documents_are_refused() -> None:
    unsafe = spec_error('planner: !!python/object/apply:os.system ["true"]\n')
    assert unsafe.line == 1
    assert "could not determine a constructor" in str(unsafe)
    several = spec_error(SAMPLE + "---\ntools: []\n")
    assert several.line == SAMPLE.count("\n") + 1
    assert "single document" in str(several)


def test_alias_expansion_is_bounded() -> None:
    bomb = ["a: &a [x, x, x, x, x, x, x, x, x, x]"]
    for level in "bcdefg":
        previous = chr(ord(level) - 1)
        bomb.append(f"{level}: &{level} [{', '.join(['*' + previous] * 10)}]")
    error = spec_error("\n".join(bomb) + "\n")
    assert "expands to more than" in str(error)


def test_a_condition_that_does_not_compile_names_rule_line_and_column() -> None:
    text = edited('"args.amount > 1000.0"', '"args.amount >> 1000.0"')
    error = spec_error(text)
    assert error.rule_id == "refund-large"
    assert error.line == line_of(text, "id: refund-large")
    assert "does not compile at column 14" in str(error)
    assert str(error).startswith(f"line {error.line}, rule 'refund-large': condition")


def test_a_multi_line_condition_points_at_its_text() -> None:
    text = edited(
        '    - {id: email-own-address, tool: send_email, when: "args.to != facts.customer_email",'
        " effect: deny, reason: Email only the customer's own address.}\n",
        "    - id: email-own-address\n"
        "      tool: send_email\n"
        "      when: |\n"
        "        args.to != facts.customer_email &&\n"
        "      effect: deny\n"
        "      reason: Email only the customer's own address.\n",
    )
    error = spec_error(text)
    assert error.rule_id == "email-own-address"
    assert error.line == line_of(text, "args.to != facts.customer_email &&")


def test_an_output_check_that_does_not_compile_names_its_line() -> None:
    text = edited('"has(output.summary)"', '"has(output.summary"')
    error = spec_error(text)
    assert error.line == line_of(text, "checks:")
    assert "output check 'has-summary'" in str(error)


HTTP_TOOLS = """\
http_tools:
  - {name: crm_note, method: POST, url: "https://crm.example/notes", args_schema: {type: object}, side_effect: write, compensating_tool: crm_delete}
  - {name: crm_delete, method: DELETE, url: "https://crm.example/notes", args_schema: {type: object}}
"""  # noqa: E501


def test_http_tools_are_checked_for_names_and_compensating_tools() -> None:
    assert parse_version(SAMPLE + HTTP_TOOLS).spec.tool_names[-2:] == ("crm_note", "crm_delete")

    twice = SAMPLE + HTTP_TOOLS.replace("name: crm_delete", "name: crm_note")
    error = spec_error(twice)
    assert "'crm_note' is defined twice" in str(error)
    assert error.line == SAMPLE.count("\n") + 3

    shadowing = SAMPLE + HTTP_TOOLS.replace("name: crm_delete", "name: send_email")
    error = spec_error(shadowing.replace("compensating_tool: crm_delete", "compensating_tool: x"))
    assert "'send_email' is also listed in tools" in str(error)

    dangling = SAMPLE + HTTP_TOOLS.replace(
        "compensating_tool: crm_delete", "compensating_tool: undo"
    )
    error = spec_error(dangling)
    assert "compensating tool 'undo' is not in this version's tools" in str(error)
    assert error.line == SAMPLE.count("\n") + 2


# --- a version that cannot run is refused when it is created ---------------------------------

# (text, the text on the line the refusal names, what the refusal says), shared with the CLI tests.
CANNOT_RUN = [
    pytest.param(
        edited("send_email, close_ticket]", "send_email, close_tickets]"),
        "tools: [",
        "tools[4]: no tool named 'close_tickets' is registered or defined in http_tools; "
        "registered tools: check_fraud_score, close_ticket, delete_customer_data,",
        id="unregistered-tool",
    ),
    pytest.param(
        edited("facts: [refunds_today, customer_email]", "facts: [refunds_today, customer_mail]"),
        "facts: [",
        "policy.facts[1]: no registered fact provider offers 'customer_mail'; "
        "registered facts: app_level, customer_email, employee_email,",
        id="unregistered-fact",
    ),
    pytest.param(
        edited("resolution: {enum: [", "resolution: {type: text, enum: ["),
        "schema: {",
        "output.schema.properties.resolution.type: 'text' is not one of ['array', 'boolean', "
        "'integer', 'null', 'number', 'object', 'string']; output.schema must be a valid JSON "
        "Schema (draft 2020-12).",
        id="invalid-output-schema",
    ),
    pytest.param(
        edited("resolution: {enum: [", "resolution: {pattern: '(?P<r>x)', enum: ["),
        "schema: {",
        "output.schema.properties.resolution.pattern: '(?P<r>x)' is not an ECMA-262 regular "
        "expression (Invalid group modifier);",
        id="python-only-output-pattern",
    ),
    pytest.param(
        edited('"has(output.summary)"', '"hasSummary(output)"'),
        "checks: [",
        "output check 'has-summary' calls unknown function 'hasSummary'; "
        "CEL functions: has, size, contains, startsWith, endsWith, matches,",
        id="unknown-function-in-check",
    ),
    pytest.param(
        edited('"args.amount <= 100.0"', '"abs(args.amount) <= 100.0"'),
        "id: refund-small",
        "rule 'refund-small': condition calls unknown function 'abs'; CEL functions: has, size,",
        id="unknown-function-in-rule",
    ),
    pytest.param(
        edited("args.to != facts.customer_email", "args.to != fact.customer_email"),
        "id: email-own-address",
        "rule 'email-own-address': condition reads unknown variable 'fact'; "
        "it may read args, task, run, agent, facts, counters.",
        id="unknown-variable",
    ),
    pytest.param(
        SAMPLE
        + HTTP_TOOLS.replace(
            "args_schema: {type: object}, side_effect",
            "args_schema: {type: object, properties: {note: {minLength: -1}}}, side_effect",
        ),
        "name: crm_note",
        "http_tools[0].args_schema.properties.note.minLength: -1 is less than the minimum of 0; "
        "http_tools[0].args_schema must be a valid JSON Schema (draft 2020-12).",
        id="invalid-http-tool-schema",
    ),
]


@pytest.mark.parametrize(("text", "marker", "expected"), CANNOT_RUN)
def test_a_version_that_cannot_run_is_refused_naming_its_line(
    engine: Engine, text: str, marker: str, expected: str
) -> None:
    _agent_with_versions(engine)
    with pytest.raises(VersionSpecError) as caught:
        create_version(platform_for(engine), ENGINEER, "support", text)
    message = str(caught.value)
    assert caught.value.line == line_of(text, marker), message
    assert expected in message
    assert message.startswith(f"line {caught.value.line}")
    assert "\n" not in message
    assert _version_rows(engine) == []
    assert _audit_actions(engine) == ["agent.create"]


def test_tools_and_facts_are_checked_only_against_a_registry() -> None:
    unregistered = edited("send_email, close_ticket]", "send_email, close_tickets]")
    assert parse_version(unregistered).spec.tools[-1] == "close_tickets"
    with pytest.raises(VersionSpecError, match="no tool named 'close_tickets'"):
        parse_version(unregistered, registry=REGISTRY)


def test_http_tools_need_no_registration() -> None:
    parsed = parse_version(SAMPLE + HTTP_TOOLS, registry=REGISTRY)
    assert parsed.spec.tool_names[-2:] == ("crm_note", "crm_delete")


@pytest.mark.parametrize("path", sorted(VERSIONS_DIR.glob("*.yaml")), ids=lambda p: p.stem)
def test_every_demo_version_can_run(path: Path) -> None:
    parsed = parse_version(path.read_text(), registry=REGISTRY)
    assert parsed.spec.tools


# --- storing versions -------------------------------------------------------------------------


def _agent_with_versions(engine: Engine, *texts: str) -> None:
    create_agent(platform_for(engine), ENGINEER, "support", description="Refunds", domain="support")
    for number, text in enumerate(texts, start=1):
        create_version(platform_for(engine), ENGINEER, "support", text, note=f"v{number}")


def _version_rows(engine: Engine) -> list[tuple[object, ...]]:
    with engine.connect() as conn:
        return [
            tuple(row) for row in conn.execute(sa.text("SELECT * FROM agent_versions ORDER BY id"))
        ]


def _audit_actions(engine: Engine) -> list[str]:
    with read_session(engine) as session:
        events = session.exec(select(AuditEvent).order_by(col(AuditEvent.seq))).all()
        return [event.action for event in events]


V2 = edited("max_steps: 40", "max_steps: 50")
V3 = edited("noise: 0.0", "noise: 0.1", V2)


def test_create_version_stores_document_yaml_and_hashes(engine: Engine) -> None:
    _agent_with_versions(engine, SAMPLE, V2)
    versions = list_versions(platform_for(engine), OPERATOR, "support").items
    detail = show_version(platform_for(engine), OPERATOR, "support", 1)
    agents = list_agents(platform_for(engine), MANAGER).items
    assert [v.number for v in versions] == [2, 1]
    assert [v.note for v in versions] == ["v2", "v1"]
    assert {v.created_by for v in versions} == {"erin"}
    assert not any(v.is_active for v in versions)
    assert detail.source_yaml == SAMPLE
    assert detail.document == load_version_document(SAMPLE)
    assert detail.info.content_hash == content_hash(detail.document)
    assert detail.info.policy_hash == parse_version(SAMPLE).policy_hash
    assert agents[0].name == "support"
    assert (agents[0].version_count, agents[0].active_number) == (2, None)
    with pytest.raises(dataclasses.FrozenInstanceError):
        versions[0].note = "changed"  # type: ignore[misc]
    assert _audit_actions(engine) == ["agent.create", "version.create", "version.create"]


def test_the_same_content_is_refused_naming_the_version(engine: Engine) -> None:
    _agent_with_versions(engine, SAMPLE, V2)
    before = _version_rows(engine)
    with pytest.raises(InvalidInput, match="support version 1 already has exactly this content"):
        create_version(platform_for(engine), ENGINEER, "support", SAMPLE_REFORMATTED)
    assert _version_rows(engine) == before
    assert _audit_actions(engine).count("version.create") == 2


def test_an_invalid_version_stores_nothing(engine: Engine) -> None:
    _agent_with_versions(engine)
    with pytest.raises(VersionSpecError, match="rule 'refund-large'"):
        create_version(platform_for(engine), ENGINEER, "support", edited("> 1000.0", ">> 1000.0"))
    assert _version_rows(engine) == []
    assert _audit_actions(engine) == ["agent.create"]


def test_unknown_agent_and_version_are_not_found(engine: Engine) -> None:
    _agent_with_versions(engine, SAMPLE)
    with pytest.raises(NotFound, match="no agent named 'billing'"):
        create_version(platform_for(engine), ENGINEER, "billing", SAMPLE)
    with pytest.raises(NotFound, match="support has no version 7"):
        show_version(platform_for(engine), ENGINEER, "support", 7)


def test_agent_names_are_checked_and_unique(engine: Engine) -> None:
    create_agent(platform_for(engine), ADMIN, "billing")
    with pytest.raises(InvalidInput, match="already exists"):
        create_agent(platform_for(engine), ADMIN, "billing")
    with pytest.raises(InvalidInput, match="must be 1-64 characters"):
        create_agent(platform_for(engine), ADMIN, "Bad Name")


def test_only_engineers_create_and_move_versions(engine: Engine) -> None:
    _agent_with_versions(engine, SAMPLE, V2)
    activate_version(platform_for(engine), ENGINEER, "support", 1, reason="first")
    for actor in (OPERATOR, MANAGER, ADMIN):
        with pytest.raises(Forbidden, match="it needs the role engineer"):
            create_version(platform_for(engine), actor, "support", V3)
        with pytest.raises(Forbidden, match="may not activate"):
            activate_version(platform_for(engine), actor, "support", 2, reason="x")
    for actor in (MANAGER, ADMIN):
        with pytest.raises(Forbidden, match="may not roll back"):
            rollback(platform_for(engine), actor, "support", reason="x")
    # Rolling back is the emergency lever: an operator pulls it too (here, with nothing to
    # roll back to, the refusal is about the history, past the role check).
    with pytest.raises(InvalidInput, match="no earlier active version"):
        rollback(platform_for(engine), OPERATOR, "support", reason="x")
    for actor in (OPERATOR, MANAGER):
        with pytest.raises(Forbidden, match="admin or engineer"):
            create_agent(platform_for(engine), actor, "other")
    with pytest.raises(Forbidden):
        list_versions(platform_for(engine), Actor.of("nobody", []), "support")
    versions = list_versions(platform_for(engine), OPERATOR, "support")
    assert [v.number for v in versions.items] == [2, 1]
    older = list_versions(platform_for(engine), OPERATOR, "support", offset=1, limit=1)
    assert ([v.number for v in older.items], older.total, older.next_offset) == ([1], 2, None)
    with read_session(engine) as session:
        assert active_version("support", session=session)[0].number == 1


def test_activate_and_rollback_keep_who_when_from_to_and_why(engine: Engine) -> None:
    _agent_with_versions(engine, SAMPLE, V2, V3)
    rows_before = _version_rows(engine)
    moves = [(1, "first release"), (2, "tighter budgets"), (3, "noisier planner")]
    for number, reason in moves:
        info = activate_version(platform_for(engine), ENGINEER, "support", number, reason=reason)
        assert (info.to_number, info.action) == (number, DeploymentAction.ACTIVATE)
    back = rollback(platform_for(engine), ENGINEER, "support", reason="  noise hurt  ")
    assert (back.from_number, back.to_number, back.reason) == (3, 2, "noise hurt")
    again = rollback(platform_for(engine), ENGINEER, "support", reason="budgets too")
    assert (again.from_number, again.to_number) == (2, 1)
    with pytest.raises(InvalidInput, match="no earlier active version"):
        rollback(platform_for(engine), ENGINEER, "support", reason="one more")

    history = deployment_history(platform_for(engine), MANAGER, "support").items
    versions = list_versions(platform_for(engine), OPERATOR, "support").items
    newest = deployment_history(platform_for(engine), MANAGER, "support", limit=2)
    assert (len(newest.items), newest.total, newest.next_offset) == (2, 5, 2)
    with read_session(engine) as session:
        current, spec = active_version("support", session=session)
        report = verify_chain(session)
        deployments = session.exec(select(Deployment)).all()
    assert [(h.action.value, h.from_number, h.to_number, h.reason) for h in history] == [
        ("rollback", 2, 1, "budgets too"),
        ("rollback", 3, 2, "noise hurt"),
        ("activate", 2, 3, "noisier planner"),
        ("activate", 1, 2, "tighter budgets"),
        ("activate", None, 1, "first release"),
    ]
    assert {h.actor for h in history} == {"erin"}
    assert all(h.created_at.tzinfo is not None for h in history)
    assert [h.created_at for h in history] == sorted((h.created_at for h in history), reverse=True)
    assert len(deployments) == 5
    assert current.number == 1
    assert spec.budgets.max_steps == 40
    assert [v.is_active for v in versions] == [False, False, True]
    assert report.ok
    assert report.count == 1 + 3 + 5
    assert _audit_actions(engine)[-5:] == [
        "version.activate",
        "version.activate",
        "version.activate",
        "version.rollback",
        "version.rollback",
    ]
    # Moving the pointer never touches a version row.
    assert _version_rows(engine) == rows_before


def test_rollback_after_reactivation_undoes_the_last_activation(engine: Engine) -> None:
    _agent_with_versions(engine, SAMPLE, V2)
    for number in (1, 2):
        activate_version(platform_for(engine), ENGINEER, "support", number, reason="go")
    rollback(platform_for(engine), ENGINEER, "support", reason="back to 1")
    activate_version(platform_for(engine), ENGINEER, "support", 2, reason="2 again")
    info = rollback(platform_for(engine), ENGINEER, "support", reason="and back")
    assert (info.from_number, info.to_number) == (2, 1)


def test_activation_needs_a_reason_and_a_change(engine: Engine) -> None:
    _agent_with_versions(engine, SAMPLE)
    with pytest.raises(InvalidInput, match="a reason is required"):
        activate_version(platform_for(engine), ENGINEER, "support", 1, reason="   ")
    with pytest.raises(InvalidInput, match="a reason is required"):
        rollback(platform_for(engine), ENGINEER, "support", reason="")
    activate_version(platform_for(engine), ENGINEER, "support", 1, reason="first")
    with pytest.raises(InvalidInput, match="version 1 is already active"):
        activate_version(platform_for(engine), ENGINEER, "support", 1, reason="again")
    with pytest.raises(NotFound, match="no version 2"):
        activate_version(platform_for(engine), ENGINEER, "support", 2, reason="missing")


def test_no_active_version_is_not_found(engine: Engine) -> None:
    _agent_with_versions(engine, SAMPLE)
    with (
        read_session(engine) as session,
        pytest.raises(NotFound, match="support has no active version"),
    ):
        active_version("support", session=session)


def test_the_stored_row_holds_the_yaml_verbatim_and_the_document(engine: Engine) -> None:
    _agent_with_versions(engine, SAMPLE)
    with read_session(engine) as session:
        stored = session.exec(select(AgentVersion)).one()
    assert stored.source_yaml == SAMPLE
    assert stored.spec == load_version_document(SAMPLE)
    assert stored.content_hash == parse_version(SAMPLE).content_hash


def test_load_spec_is_cached_per_version_and_content() -> None:
    document = load_version_document(SAMPLE)
    other = load_version_document(V2)
    first = load_spec(101, document)
    assert load_spec(101, dict(document)) is first
    assert load_spec(101, other) is not first
    assert load_spec(101, other).budgets.max_steps == 50
    assert load_spec(102, document) is not first


# --- diffs -------------------------------------------------------------------------------------


def test_diff_names_what_changed_by_section(engine: Engine) -> None:
    changed = edited('prompt: "Resolve refund requests."', 'prompt: "Resolve refunds kindly."')
    changed = edited("args.amount <= 100.0", "args.amount <= 50.0", changed)
    changed = edited("reason: Refunds over $1000 are not allowed.", "reason: No.", changed)
    changed = edited(
        '    - {id: email-own-address, tool: send_email, when: "args.to != facts.customer_email",'
        " effect: deny, reason: Email only the customer's own address.}\n",
        '    - {id: close-needs-note, tool: close_ticket, when: "!has(args.note)", effect: '
        "escalate, reason: Closing needs a note.}\n",
        changed,
    )
    changed = edited("send_email, close_ticket]", "close_ticket, check_fraud_score]", changed)
    changed = edited("max_steps: 40", "max_steps: 50", changed)
    changed = edited("call_timeout_s: 5, ", "", changed)
    changed = edited('limit: "30/minute"', 'limit: "10/minute"', changed)
    _agent_with_versions(engine, SAMPLE, changed)
    diff = diff_versions(platform_for(engine), OPERATOR, "support", 1, 2)
    same = diff_versions(platform_for(engine), OPERATOR, "support", 2, 2)

    assert [(c.field, c.before, c.after) for c in diff.planner] == [
        ("prompt", "Resolve refund requests.", "Resolve refunds kindly.")
    ]
    assert diff.rules_added == ("close-needs-note",)
    assert diff.rules_removed == ("email-own-address",)
    assert [(r.rule_id, [c.field for c in r.changes]) for r in diff.rules_changed] == [
        ("refund-small", ["when"]),
        ("refund-large", ["reason"]),
    ]
    assert diff.tools_added == ("check_fraud_score",)
    assert diff.tools_removed == ("send_email",)
    # Removing call_timeout_s: 5 falls back to the default of 10 seconds.
    assert [(c.field, c.before, c.after) for c in diff.budgets] == [
        ("call_timeout_s", 5, 10.0),
        ("max_steps", 40, 50),
    ]
    assert [c.field for c in diff.other] == ["rate_limits"]
    assert '-    - {id: refund-small, tool: issue_refund, when: "args.amount <= 100.0"' in diff.text
    assert '+    - {id: refund-small, tool: issue_refund, when: "args.amount <= 50.0"' in diff.text
    assert diff.text.startswith("--- support v1\n+++ support v2\n")
    assert not diff.identical
    assert same.identical
    assert same.text == ""
    assert json.loads(json.dumps(diff.to_dict(), default=str))["rules_added"] == [
        "close-needs-note"
    ]
