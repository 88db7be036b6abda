"""Cached reads for the list views, shared by reruns and sessions for a few seconds.

Each cache is keyed by the database, the reader (name and roles: the role check runs inside)
and the filter. Every console action that writes calls ``forget_lists`` in the same callback,
so a person never sees the list from before their own decision.
"""

from __future__ import annotations

import streamlit as st

from agent.actors import Actor
from agent.reads.paging import Page
from agent.reads.queue import QueueFacets, QueueFilter, QueueSnapshot, open_reviews, queue_choices
from agent.reads.runs import RUN_PAGE, RunChoices, RunFilter, RunSummary, find_runs, run_choices
from console.resources import engine, platform

Reader = tuple[str, tuple[str, ...]]


def reader(actor: Actor) -> Reader:
    """``actor`` as a cache key: the name and the sorted role names."""
    return actor.name, tuple(sorted(role.value for role in actor.roles))


def database() -> str:
    """The current database, as a cache key (password hidden)."""
    return engine().url.render_as_string(hide_password=True)


@st.cache_data(ttl=5, max_entries=256, show_spinner=False)
def queue_snapshot(db: str, who: Reader, flt: QueueFilter) -> QueueSnapshot:
    """``agent.reads.queue.open_reviews``, cached for 5 s."""
    return open_reviews(platform(), Actor.of(*who), flt)


@st.cache_data(ttl=30, max_entries=64, show_spinner=False)
def queue_filters(db: str, who: Reader) -> QueueFacets:
    """``agent.reads.queue.queue_choices``, cached for 30 s."""
    return queue_choices(platform(), Actor.of(*who))


@st.cache_data(ttl=10, max_entries=256, show_spinner=False)
def run_page(db: str, who: Reader, flt: RunFilter, number: int) -> Page[RunSummary]:
    """Page ``number`` (from 1) of ``agent.reads.runs.find_runs``, cached for 10 s.

    A page past the last one shows the last page, so a list that shrank (a narrower filter)
    never comes back empty by accident.
    """
    actor = Actor.of(*who)
    page = find_runs(platform(), actor, flt, offset=(max(number, 1) - 1) * RUN_PAGE)
    if not page.items and page.total:
        page = find_runs(platform(), actor, flt, offset=page.last_offset)
    return page


@st.cache_data(ttl=60, max_entries=64, show_spinner=False)
def run_filters(db: str, who: Reader) -> RunChoices:
    """``agent.reads.runs.run_choices``, cached for a minute."""
    return run_choices(platform(), Actor.of(*who))


def forget_lists() -> None:
    """Drop every cached list: called by each action that changes reviews, runs or tasks."""
    queue_snapshot.clear()
    queue_filters.clear()
    run_page.clear()
