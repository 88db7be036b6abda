"""The run loop end to end: plan, mediate, execute, escalate, resume after a decision."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy.engine import Engine
from sqlmodel import col, select

from agent import reviews
from storage.engine import read_session, write_session
from storage.enums import (
    ErrorClass,
    ReviewKind,
    ReviewStatus,
    RunStatus,
    StepKind,
    TaskStatus,
    ToolCallStatus,
)
from storage.models import Run, Step, Task, ToolCall
from tests.support.runtime import (
    OPERATOR,
    Effects,
    drive,
    install_agent,
    park_payment,
    platform_for,
    scripted_version,
    shop_registry,
    submit,
)


def _run(engine: Engine) -> Run:
    with read_session(engine) as session:
        return session.exec(select(Run)).one()


def test_allowed_calls_execute_and_the_run_succeeds(engine: Engine) -> None:
    effects = Effects()
    install_agent(
        engine,
        "shop",
        scripted_version(
            [
                {
                    "reasoning": "look it up",
                    "calls": [{"tool": "lookup", "args": {"order_id": "O1"}}],
                },
                {
                    "reasoning": "refund",
                    "calls": [{"tool": "pay", "args": {"order_id": "O1", "amount": 40}}],
                },
                {"reasoning": "done", "final": {"resolution": "refunded"}},
            ]
        ),
    )
    task_id = submit(engine, "shop", {"order_id": "O1"})
    assert drive(engine, shop_registry(effects)) == [RunStatus.SUCCEEDED]
    run = _run(engine)
    assert run.status is RunStatus.SUCCEEDED
    assert run.output == {"resolution": "refunded"}
    assert sum(effects.by_key.values()) == 1
    with read_session(engine) as session:
        assert session.get(Task, task_id).status is TaskStatus.SUCCEEDED  # type: ignore[union-attr]
        kinds = [s.kind for s in session.exec(select(Step).order_by(col(Step.seq))).all()]
        ledger = session.exec(select(ToolCall)).all()
    assert kinds[0] is StepKind.INVOKE_AGENT
    assert kinds.count(StepKind.PROPOSAL) == 3
    assert kinds.count(StepKind.APPLY_GUARDRAIL) == 2
    assert kinds.count(StepKind.EXECUTE_TOOL) == 2
    assert kinds[-1] is StepKind.FINAL_OUTPUT
    assert {(row.tool, row.status) for row in ledger} == {
        ("lookup", ToolCallStatus.SUCCEEDED),
        ("pay", ToolCallStatus.SUCCEEDED),
    }


def test_escalation_parks_the_run_and_approval_executes_exactly_once(engine: Engine) -> None:
    parked = park_payment(engine, 500)
    effects, registry = parked.effects, parked.registry
    assert parked.statuses == [RunStatus.WAITING_REVIEW]
    assert effects.by_key == {}
    review = parked.review
    assert (review.kind, review.status, review.rule_id) == (
        ReviewKind.ESCALATION,
        ReviewStatus.PENDING,
        "pay-medium",
    )
    result = reviews.approve(platform_for(engine), OPERATOR, review.id or 0, reason="verified")
    assert result.run_resumes
    assert drive(engine, registry) == [RunStatus.SUCCEEDED]
    assert drive(engine, registry) == []
    assert sum(effects.by_key.values()) == 1
    assert list(effects.payments.values()) == [500.0]


def test_rejection_reaches_the_planner_and_nothing_executes(engine: Engine) -> None:
    parked = park_payment(engine, 500, resolution="declined")
    effects, registry = parked.effects, parked.registry
    review = parked.review
    reviews.reject(
        platform_for(engine), OPERATOR, review.id or 0, "customer already refunded by phone"
    )
    assert drive(engine, registry) == [RunStatus.SUCCEEDED]
    assert effects.by_key == {}
    with read_session(engine) as session:
        observation = session.exec(select(Step).where(col(Step.kind) == StepKind.OBSERVATION)).one()
    assert observation.error_class is ErrorClass.HUMAN_REJECTED
    assert observation.output is not None
    assert "customer already refunded by phone" in observation.output["content"]["message"]


def test_a_version_that_cannot_be_loaded_fails_its_run(engine: Engine) -> None:
    install_agent(engine, "shop", scripted_version([{"reasoning": "x", "final": {"a": 1}}]))
    submit(engine, "shop", {"order_id": "O1"})
    from agent.tools.registry import ToolRegistry

    assert drive(engine, ToolRegistry()) == [RunStatus.FAILED]  # no tool is registered
    run = _run(engine)
    assert run.error_class is ErrorClass.INTERNAL_ERROR
    assert "cannot be loaded" in (run.error_message or "")


def test_a_saved_answer_whose_run_stopped_is_finished_not_planned_again(engine: Engine) -> None:
    import sqlalchemy as sa

    from storage.types import utcnow

    install_agent(
        engine,
        "shop",
        scripted_version([{"reasoning": "done", "final": {"resolution": "refunded"}}]),
    )
    submit(engine, "shop", {"order_id": "O1"})
    assert drive(engine, shop_registry(Effects())) == [RunStatus.SUCCEEDED]
    # Put the database back to the moment after the answer was saved and before the run
    # finished: the worker lost its lease (or died) there.
    run = _run(engine)
    with write_session(engine) as session:
        session.execute(sa.delete(Step).where(col(Step.kind) == StepKind.FINAL_OUTPUT))
        session.execute(
            sa.update(Run)
            .where(col(Run.id) == run.id)
            .values(
                status=RunStatus.RUNNING,
                output=None,
                finished_at=None,
                lease_owner="dead-worker",
                lease_expires_at=utcnow() - timedelta(seconds=1),
                step_count=run.step_count - 1,
            )
        )
    assert drive(engine, shop_registry(Effects()), owner="heir") == [RunStatus.SUCCEEDED]
    finished = _run(engine)
    assert finished.output == {"resolution": "refunded"}
    assert finished.planner_turns == 1  # the planner was not asked again
    assert finished.consecutive_failures == 0
    with read_session(engine) as session:
        kinds = [s.kind for s in session.exec(select(Step).order_by(col(Step.seq))).all()]
    assert kinds.count(StepKind.FINAL_OUTPUT) == 1
