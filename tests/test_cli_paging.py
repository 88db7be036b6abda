"""List commands page and say when there is more; reads are role-checked like the console's.

Run on a copy of the seeded and drained demo (SQLite): dozens of runs, open reviews and audit
events, six users, two agents with two versions each.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy.engine import Engine

from tests.support.cli import ok, refused, steward
from tests.support.console import engine_for


@pytest.fixture
def demo(demo_url: str) -> Iterator[Engine]:
    engine = engine_for(demo_url)
    yield engine
    engine.dispose()


def _page(engine: Engine, *arguments: str) -> dict[str, Any]:
    page: dict[str, Any] = json.loads(ok(steward(engine, *arguments, "--json")))
    return page


def test_runs_list_walks_every_page_by_next_offset(demo: Engine) -> None:
    first = _page(demo, "runs", "list", "--as", "erin", "--limit", "20")
    assert set(first) == {"items", "total", "offset", "limit", "next_offset"}
    total = first["total"]
    assert total > 40
    assert (len(first["items"]), first["offset"], first["limit"], first["next_offset"]) == (
        20,
        0,
        20,
        20,
    )
    seen = [run["id"] for run in first["items"]]
    offset = first["next_offset"]
    while offset is not None:
        page = _page(demo, "runs", "list", "--as", "erin", "--limit", "20", "--offset", str(offset))
        assert page["offset"] == offset
        seen.extend(run["id"] for run in page["items"])
        offset = page["next_offset"]
    assert len(seen) == len(set(seen)) == total

    text = ok(steward(demo, "runs", "list", "--as", "erin", "--limit", "20")).splitlines()
    assert len(text) == 21
    assert text[-1] == f"showing 1-20 of {total}; next: --offset 20"
    last = ok(steward(demo, "runs", "list", "--as", "erin", "--offset", str(total - 3)))
    assert last.splitlines()[-1] == f"showing {total - 2}-{total} of {total}"
    beyond = ok(steward(demo, "runs", "list", "--as", "erin", "--offset", str(total + 5)))
    assert beyond.splitlines() == [
        f"nothing at --offset {total + 5}: {total} in all; "
        f"the last page starts at --offset {(total - 1) // 100 * 100}"
    ]


def test_reviews_list_is_no_longer_cut_at_200_without_notice(demo: Engine) -> None:
    everything = _page(demo, "reviews", "list", "--as", "olga")
    total = everything["total"]
    assert total > 3
    assert len(everything["items"]) == total
    assert everything["next_offset"] is None
    head = _page(demo, "reviews", "list", "--as", "olga", "--limit", "3")
    tail = _page(demo, "reviews", "list", "--as", "olga", "--offset", "3")
    assert (head["total"], head["next_offset"], tail["next_offset"]) == (total, 3, None)
    # Most urgent first, and the two windows make up the whole queue.
    assert [r["id"] for r in head["items"] + tail["items"]] == [
        r["id"] for r in everything["items"]
    ]
    text = ok(steward(demo, "reviews", "list", "--as", "olga", "--limit", "3"))
    assert text.splitlines()[-1] == f"showing 1-3 of {total}; next: --offset 3"


@pytest.mark.parametrize(
    ("arguments", "noun_total"),
    [
        (("users", "list", "--as", "ada"), 6),
        (("agents", "list", "--as", "erin"), 2),
        (("versions", "list", "support", "--as", "erin"), 2),
        (("versions", "history", "support", "--as", "mona"), 1),
        (("audit", "list", "--as", "mona", "--action", "user.add"), 5),
    ],
)
def test_every_list_command_pages(
    demo: Engine, arguments: tuple[str, ...], noun_total: int
) -> None:
    first = _page(demo, *arguments, "--limit", "1")
    assert (len(first["items"]), first["total"]) == (1, noun_total)
    assert first["next_offset"] == (1 if noun_total > 1 else None)
    text = ok(steward(demo, *arguments, "--limit", "1")).splitlines()
    more = "; next: --offset 1" if noun_total > 1 else ""
    assert text[-1] == f"showing 1-1 of {noun_total}{more}"


def test_tasks_list_pages_the_work_in_flight(demo: Engine) -> None:
    for task in range(3):
        ok(
            steward(
                demo,
                *("submit", "support", "--as", "olga", "--input"),
                json.dumps({"intent": "order_status", "order_id": f"O-50{task:02d}"}),
            )
        )
    first = _page(demo, "tasks", "list", "--as", "erin", "--limit", "2")
    assert first["total"] >= 3
    assert [t["status"] for t in first["items"]] == ["queued", "queued"]
    assert first["next_offset"] == 2
    text = ok(steward(demo, "tasks", "list", "--as", "erin", "--limit", "2")).splitlines()
    assert text[0].startswith("workers: none")
    assert text[-1] == f"showing 1-2 of {first['total']}; next: --offset 2"


@pytest.mark.parametrize(
    ("arguments", "fragment"),
    [
        (("--limit", "0"), "--limit must be how many to show: a whole number from 1 to 1000"),
        (("--limit", "1001"), "not '1001'"),
        (("--limit", "-1"), "not '-1'"),
        (("--offset", "-1"), "--offset must be how many to skip"),
        (("--offset", "2147483648"), "not '2147483648'"),
    ],
)
def test_windows_out_of_range_are_refused(
    demo: Engine, arguments: tuple[str, ...], fragment: str
) -> None:
    refused(steward(demo, "runs", "list", "--as", "erin", *arguments), fragment)


@pytest.mark.parametrize(
    ("arguments", "allowed", "refusal"),
    [
        (("runs", "list"), {"olga", "mona", "erin", "ada"}, ""),
        (("runs", "show", "1"), {"olga", "mona", "erin", "ada"}, ""),
        (("tasks", "list"), {"olga", "mona", "erin", "ada"}, ""),
        (("reviews", "list"), {"olga", "mona"}, "may not read the review queue"),
        (("kpis",), {"mona", "erin"}, "may not read KPIs"),
        (("audit", "list"), {"mona", "ada"}, "may not read the audit log"),
        (("audit", "verify"), {"mona", "ada"}, "may not verify the audit log"),
        (("users", "list"), {"mona", "ada"}, "may not list users"),
        (("versions", "list", "support"), {"olga", "mona", "erin", "ada"}, ""),
    ],
)
def test_cli_reads_apply_the_consoles_role_checks(
    demo: Engine, arguments: tuple[str, ...], allowed: set[str], refusal: str
) -> None:
    for user in ("olga", "mona", "erin", "ada"):
        result = steward(demo, *arguments, "--as", user)
        if user in allowed:
            assert result.returncode == 0, (user, result.stderr)
        else:
            refused(result, f"{user} ({_role(user)}) {refusal}")
    refused(steward(demo, *arguments), "name the user you act as with --as USER")
    assert steward(demo, *arguments, env={"STEWARD_USER": sorted(allowed)[0]}).returncode == 0


def _role(user: str) -> str:
    return {"olga": "operator", "mona": "manager", "erin": "engineer", "ada": "admin"}[user]
