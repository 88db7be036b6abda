"""Where the trace export stands: one cursor per exporter, and how far each run's trace has left.

The export reads committed trace rows and sends them as OpenTelemetry spans. A run's steps
leave in segments (what was committed when the run parked or finished); each segment is
planned (its bounds saved) before it is sent and marked sent after the collector accepted it,
so a send that is repeated after a crash or an outage carries exactly the same spans.
"""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Field, SQLModel

from storage.types import UTCDateTime, utcnow


class TelemetryCursor(SQLModel, table=True):
    """An exporter's shared state: which worker holds its turn, from which run on there may be
    work left, and the key that makes this installation's trace ids its own."""

    __tablename__ = "telemetry_cursors"

    name: str = Field(primary_key=True, max_length=32)
    # Random per installation, so that two Steward databases sending to one backend never
    # derive the same trace and span ids from the same run and step numbers.
    installation: str = Field(max_length=64)
    # Every production run below this id is finished and fully sent.
    low_water_run_id: int = Field(default=0)
    lease_owner: str | None = Field(default=None, max_length=128)
    lease_expires_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    failures: int = Field(default=0)
    last_error: str = Field(default="", max_length=500)
    retry_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    sent_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class TelemetryRun(SQLModel, table=True):
    """How much of one run's trace has been sent: steps with ``seq`` up to ``sent_seq`` have
    left; the segment ``(sent_seq, planned_seq]`` is on its way (resent until accepted)."""

    __tablename__ = "telemetry_runs"

    run_id: int = Field(primary_key=True, foreign_key="runs.id")
    sent_seq: int = Field(default=0)
    planned_seq: int = Field(default=0)
    # The first seq of the planned segment and of the one before it (0: none), whose span the
    # planned segment's span links to.
    segment_seq: int = Field(default=0)
    previous_segment_seq: int = Field(default=0)
    # The run's status when the segment was planned: the segment that ends the run carries it.
    planned_status: str = Field(default="", max_length=24)
    segments: int = Field(default=0)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
