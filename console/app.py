"""The console's router: signs the user in, builds the pages their roles may see, runs one."""

from __future__ import annotations

import runpy
from dataclasses import dataclass
from pathlib import Path

import streamlit as st

from agent.actors import Actor
from agent.reads.queue import waiting_count
from console.resources import embedded_worker, platform, process_telemetry, startup_problem
from console.session import (
    current_user,
    deliver_session_cookie,
    drop_session_cookie,
    oidc_signed_in,
    sign_out,
)
from console.widgets.feedback import attempt
from storage.enums import Role

VIEWS = Path(__file__).parent / "views"
EVERYONE = frozenset(Role)


@dataclass(frozen=True)
class PageEntry:
    file: str
    title: str
    icon: str
    roles: frozenset[Role]


# In navigation order. The services check roles again on every action; this only decides what
# each role is shown.
PAGES = (
    PageEntry(
        "queue.py", "Review queue", ":material/inbox:", frozenset({Role.OPERATOR, Role.MANAGER})
    ),
    PageEntry("runs.py", "Runs", ":material/timeline:", EVERYONE),
    PageEntry(
        "tasks.py",
        "Tasks",
        ":material/send:",
        frozenset({Role.OPERATOR, Role.MANAGER, Role.ENGINEER}),
    ),
    PageEntry("kpis.py", "KPIs", ":material/monitoring:", frozenset({Role.MANAGER, Role.ENGINEER})),
    # Everyone sees which version is live and whether an agent is paused; operators also roll
    # back and pull the brake there.
    PageEntry("versions.py", "Versions", ":material/deployed_code:", EVERYONE),
    PageEntry(
        "evaluations.py",
        "Evaluations",
        ":material/fact_check:",
        frozenset({Role.ENGINEER, Role.MANAGER}),
    ),
    PageEntry("audit.py", "Audit log", ":material/policy:", frozenset({Role.MANAGER, Role.ADMIN})),
    PageEntry("users.py", "Users", ":material/group:", frozenset({Role.ADMIN})),
    PageEntry("status.py", "System status", ":material/monitor_heart:", EVERYONE),
)

# One run's page: opened from the Runs list, a review or a link, never from the navigation.
RUN = PageEntry("run.py", "Run", ":material/timeline:", EVERYONE)

st.set_page_config(page_title="Steward", page_icon=":material/shield_person:", layout="wide")
problem = startup_problem()
if problem is not None:
    # Nothing works on a bad setting or without the database, sign-in included: say why, in
    # one sentence.
    st.title("Steward")
    st.error(problem)
    st.stop()
process_telemetry()
embedded_worker()


def _forbidden(entry: PageEntry, actor: Actor) -> st.Page:
    """A page the actor's roles do not open, served at its address to say so (a link to it
    would otherwise land silently on another page)."""

    def forbidden() -> None:
        needed = " or ".join(sorted(role.value for role in entry.roles))
        held = ", ".join(sorted(role.value for role in actor.roles)) or "no role"
        st.title(entry.title)
        st.warning(
            f"The {entry.title} page is for the {needed} role; you are signed in as "
            f"{actor.name} ({held}). Ask an admin for the role, or pick a page in the "
            "navigation.",
            icon=":material/lock:",
        )

    return st.Page(
        forbidden,
        title=entry.title,
        icon=":material/lock:",
        url_path=entry.file.removesuffix(".py"),
        visibility="hidden",
    )


def _sign_in_at(url_path: str) -> st.Page:
    """The sign-in form served at another page's address, so that a link such as
    ``/runs?run=12`` opened signed out lands on that run once the user has signed in."""

    def sign_in() -> None:
        runpy.run_path(str(VIEWS / "signin.py"), run_name="__steward_view__")

    return st.Page(sign_in, title="Sign in", icon=":material/login:", url_path=url_path)


actor = current_user()
if actor is None:
    drop_session_cookie()
    signin = st.Page(
        VIEWS / "signin.py",
        title="Sign in",
        icon=":material/login:",
        url_path="signin",
        default=True,
    )
    others = [_sign_in_at(entry.file.removesuffix(".py")) for entry in (*PAGES, RUN)]
    st.navigation([signin, *others], position="hidden").run()
else:
    visible = [entry for entry in PAGES if actor.has_any(entry.roles)]
    signed_in = actor
    waiting = attempt(lambda: waiting_count(platform(), signed_in))
    pages = [
        st.Page(
            VIEWS / entry.file,
            title=f"{entry.title} ({waiting:,})"
            if entry.file == "queue.py" and waiting
            else entry.title,
            icon=entry.icon,
            url_path=entry.file.removesuffix(".py"),
            default=index == 0,
        )
        for index, entry in enumerate(visible)
    ]
    pages.append(
        st.Page(
            VIEWS / RUN.file, title=RUN.title, icon=RUN.icon, url_path="run", visibility="hidden"
        )
    )
    pages.extend(_forbidden(entry, actor) for entry in PAGES if entry not in visible)
    with st.sidebar:
        deliver_session_cookie()
        roles = ", ".join(sorted(role.value for role in actor.roles))
        st.caption(f"Signed in as **{actor.name}** ({roles})")
        if st.button("Sign out", key="auth.sign_out", icon=":material/logout:"):
            sign_out()
            if oidc_signed_in():
                st.logout()
            st.rerun()
    st.navigation(pages).run()
