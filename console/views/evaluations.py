"""Evaluations: an agent's suites, running them on a version, each run's results by case, and
two runs compared case by case and metric by metric.

Engineers run suites; managers read. A case's failures are said in words, and each attempt's run
opens in the run view. An evaluation runs in this request: a suite of a few dozen cases takes
seconds (each case runs through the real run loop, in a sandbox of its own).
"""

from __future__ import annotations

import json
from functools import partial

import pandas as pd
import streamlit as st

from agent.evals.cases import show_suite
from agent.evals.compare import compare_evaluations
from agent.evals.service import (
    EvaluationInfo,
    evaluation_results,
    list_evaluations,
    run_evaluation,
)
from agent.evals.suites import EVAL_ROLES, list_suites
from agent.reads.paging import MAX_LIMIT
from agent.versions import list_agents, list_versions
from console.components.feedback import one_sentence
from console.components.formatting import option_label
from console.resources import platform
from console.session import require_user
from console.widgets.choice import remembered_choice
from console.widgets.feedback import attempt

FLASH = "evals.flash"
OPEN = "evaluation"

st.title("Evaluations")
actor = require_user()

with one_sentence():
    agents = [a.name for a in list_agents(platform(), actor, limit=MAX_LIMIT).items]
if not agents:
    st.info("No agent exists yet; an engineer creates one on the Versions page.")
    st.stop()
# A link to one evaluation (``?evaluation=ID``, from the Versions and KPI pages) opens it under
# its own agent, once; the agent can then be changed as usual.
link = st.query_params.get(OPEN)
if link is not None and link.isdigit() and st.session_state.get("evals.followed") != link:
    st.session_state["evals.followed"] = link
    with one_sentence():
        st.session_state["evals.agent"] = evaluation_results(platform(), actor, int(link))[0].agent
agent = remembered_choice("Agent", agents, key="evals.agent")
with one_sentence():
    suites = list_suites(platform(), actor, agent)
    versions = list_versions(platform(), actor, agent, limit=MAX_LIMIT).items

if message := st.session_state.pop(FLASH, None):
    st.success(message)

st.subheader("Suites")
if not suites:
    st.info(
        f"{agent} has no evaluation suite yet; store one with "
        f"`steward evals create {agent} SUITE.yaml`."
    )
else:
    st.dataframe(
        pd.DataFrame(
            [
                {
                    "suite": s.name,
                    "cases": s.cases,
                    "tags": ", ".join(f"{tag} {n}" for tag, n in s.tags.items()),
                    "gates activation": s.required,
                    "pass-rate threshold": s.threshold,
                    "schedule": s.schedule or "",
                    "content hash": s.content_hash[:12],
                }
                for s in suites
            ]
        ),
        hide_index=True,
        key="evals.suites",
    )
    detail_name = st.selectbox("Show the cases of", [s.name for s in suites], key="evals.cases_of")
    with one_sentence():
        detail = show_suite(platform(), actor, agent, detail_name)
    st.dataframe(
        pd.DataFrame(
            [
                {
                    "name": c.name,
                    "tags": ", ".join(c.tags),
                    "expects": ", ".join(c.expects),
                    "reviewer answers": c.reviewer,
                    "repeat": c.repeat,
                    "input": json.dumps(c.input, ensure_ascii=False)[:200],
                }
                for c in detail.cases
            ],
            columns=["name", "tags", "expects", "reviewer answers", "repeat", "input"],
        ),
        hide_index=True,
        key="evals.cases",
    )
    with st.expander(f"YAML source of {detail_name}"):
        st.code(detail.source_yaml, language="yaml")

if suites and versions and actor.has_any(EVAL_ROLES):
    with st.form("evals.run"):
        st.markdown("**Run an evaluation**")
        left, middle, right = st.columns(3)
        suite = left.selectbox(
            "Suite", ["every suite", *(s.name for s in suites)], key="evals.run_suite"
        )
        numbers = [v.number for v in versions]
        active = next((v.number for v in versions if v.is_active), numbers[0])
        version = middle.selectbox(
            "Version",
            numbers,
            index=numbers.index(active),
            key="evals.run_version",
            format_func=partial(
                option_label, {n: f"v{n}" + (" (active)" if n == active else "") for n in numbers}
            ),
        )
        repeat = right.number_input(
            "Repeat each case", min_value=1, max_value=20, value=1, key="evals.run_repeat"
        )
        submitted = st.form_submit_button("Run", type="primary", key="evals.run_submit")
    if submitted:

        def run() -> str:
            with st.spinner("Running every case through the version's run loop…"):
                done = run_evaluation(
                    platform(),
                    actor,
                    agent,
                    version=int(version),
                    suite=None if suite == "every suite" else str(suite),
                    repeat=int(repeat) if int(repeat) > 1 else None,
                    trigger="console",
                )
            return "; ".join(
                f"{e.suite} on v{e.version}: {e.status.value}, {e.passed} of "
                f"{e.passed + e.failed} attempts passed"
                for e in done
            )

        if (message := attempt(run)) is not None:
            st.session_state[FLASH] = message
            st.rerun()

with one_sentence():
    runs = list_evaluations(platform(), actor, agent)
st.subheader("Evaluation runs")
if not runs:
    st.info(
        "No evaluation has run yet: run a suite on a version above (or `steward evals run AGENT`)."
    )
    st.stop()


def _passed(value: bool | None) -> str:
    return "not in this run" if value is None else ("passed" if value else "failed")


def _rate(info: EvaluationInfo, key: str) -> str:
    value = info.summary.get(key)
    return "" if value is None else f"{value:.0%}"


st.dataframe(
    pd.DataFrame(
        [
            {
                "evaluation": e.id,
                "suite": e.suite,
                "version": f"v{e.version}",
                "status": e.status.value,
                "pass rate": _rate(e, "pass_rate"),
                "pass^k": _rate(e, "pass_hat_k"),
                "pass@k": _rate(e, "pass_at_k"),
                "failed cases": ", ".join(e.summary.get("failed_cases", [])),
                "trigger": e.trigger,
                "by": e.created_by,
                "started": e.created_at.strftime("%Y-%m-%d %H:%M"),
            }
            for e in runs
        ]
    ),
    hide_index=True,
    key="evals.runs",
)
trend = pd.DataFrame(
    [
        {"version": f"v{e.version}", "evaluation": e.id, "pass rate": e.summary.get("pass_rate")}
        for e in runs
        if e.summary.get("pass_rate") is not None
    ]
)
if not trend.empty:
    st.markdown("**Pass rate by version**")
    st.line_chart(trend, x="evaluation", y="pass rate", color="version")

ids = [e.id for e in runs]
linked = st.query_params.get(OPEN)
default = int(linked) if linked is not None and linked.isdigit() and int(linked) in ids else ids[0]
chosen = st.selectbox(
    "Open an evaluation",
    ids,
    index=ids.index(default),
    key="evals.open",
    format_func=partial(
        option_label, {e.id: f"#{e.id} {e.suite} v{e.version} {e.status.value}" for e in runs}
    ),
)
st.query_params[OPEN] = str(chosen)
with one_sentence():
    info, results = evaluation_results(platform(), actor, int(chosen))
summary = info.summary
columns = st.columns(5)
columns[0].metric("Pass rate", _rate(info, "pass_rate"))
columns[1].metric("Unauthorized attempts", summary.get("unauthorized_attempts", 0))
columns[2].metric("Escalation rate", _rate(info, "escalation_rate"))
columns[3].metric("Proposal validity", _rate(info, "proposal_validity"))
columns[4].metric("Path efficiency", _rate(info, "path_efficiency"))
if summary.get("security_failed"):
    st.error("Security cases failed: " + ", ".join(summary["security_failed"]))
if summary.get("flaky"):
    st.warning("Flaky cases (some attempts passed, some failed): " + ", ".join(summary["flaky"]))
st.dataframe(
    pd.DataFrame(
        [
            {
                "case": r.case,
                "tags": ", ".join(r.tags),
                "attempt": r.attempt,
                "passed": r.passed,
                "what failed": "; ".join(r.failures),
                "run status": r.status,
                "run": f"/runs?run={r.run_id}" if r.run_id else "",
            }
            for r in results
        ]
    ),
    hide_index=True,
    key="evals.results",
    column_config={"run": st.column_config.LinkColumn("run", display_text=r"run=(\d+)")},
)

st.subheader("Compare")
if len(ids) < 2:
    st.caption("Two evaluations of this agent are needed to compare them.")
    st.stop()
labels = {e.id: f"#{e.id} {e.suite} v{e.version} {e.status.value}" for e in runs}
left, right = st.columns(2)
baseline = left.selectbox(
    "Baseline (A)",
    ids,
    index=1,
    key="evals.compare_a",
    format_func=partial(option_label, labels),
)
candidate = right.selectbox(
    "Candidate (B)",
    ids,
    index=0,
    key="evals.compare_b",
    format_func=partial(option_label, labels),
)
if not st.button("Compare", key="evals.compare", icon=":material/compare_arrows:"):
    st.stop()
if baseline == candidate:
    st.info("Choose two different evaluations.")
    st.stop()
comparison = attempt(lambda: compare_evaluations(platform(), actor, int(baseline), int(candidate)))
if comparison is None:
    st.stop()
if comparison.note:
    st.warning(comparison.note.capitalize())
counts = comparison.counts
tallies = st.columns(4)
tallies[0].metric("Regressed", counts["regressed"])
tallies[1].metric("Fixed", counts["fixed"])
tallies[2].metric("Still failing", counts["unchanged_fail"])
tallies[3].metric("Still passing", counts["unchanged_pass"])
st.dataframe(
    pd.DataFrame(
        [
            {
                "verdict": c.verdict.value.replace("_", " "),
                "case": c.case,
                "A": _passed(c.passed_a),
                "B": _passed(c.passed_b),
                "what failed in B": "; ".join(c.failures_b),
                "run in B": f"/runs?run={c.run_b}" if c.run_b else "",
            }
            for c in comparison.cases
        ]
    ),
    hide_index=True,
    key="evals.compare_cases",
    column_config={"run in B": st.column_config.LinkColumn(display_text=r"run=(\d+)")},
)
st.dataframe(
    pd.DataFrame(
        [{"metric": m.metric, "A": m.a, "B": m.b, "delta": m.delta} for m in comparison.metrics]
    ),
    hide_index=True,
    key="evals.compare_metrics",
)
