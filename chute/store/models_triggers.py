"""Tables of the triggers (chute/triggers): CronWorkflows and webhook triggers.

A CronWorkflow row keeps the resource as submitted plus two instants the scheduler owns:
``last_scheduled_at`` (Argo's ``status.lastScheduledTime``: the slot of the last run it
created) and ``checked_through`` (every slot at or before it has been decided: run,
skipped by policy, or left out of catch-up), so a restarted scheduler neither repeats nor
forgets a slot. A webhook row holds a WebhookTrigger resource (chute/triggers/webhook.py);
a poll trigger row a DataTrigger or MetricTrigger (chute/triggers/polling.py).
Migrations: ``0008_triggers``, ``0009_poll_triggers`` (chute/store/migrations/versions).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Float, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from chute.store.models import Base


class CronWorkflowRow(Base):
    """A stored CronWorkflow and where its scheduler got to."""

    __tablename__ = "cron_workflows"

    uid: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(253), unique=True)
    namespace: Mapped[str] = mapped_column(String(253), default="default")
    spec: Mapped[dict[str, Any]] = mapped_column()  # the full CronWorkflow resource
    created_at: Mapped[float] = mapped_column(Float)
    last_scheduled_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    checked_through: Mapped[float | None] = mapped_column(Float, nullable=True)
    # why the last slot made no run (a submission error, Argo's SubmissionError condition)
    message: Mapped[str | None] = mapped_column(Text, nullable=True)


class WebhookRow(Base):
    """A stored WebhookTrigger: deliveries to ``/webhooks/<name>`` submit its workflow."""

    __tablename__ = "webhooks"

    name: Mapped[str] = mapped_column(String(253), primary_key=True)
    namespace: Mapped[str] = mapped_column(String(253), default="default")
    spec: Mapped[dict[str, Any]] = mapped_column()  # the full WebhookTrigger resource
    created_at: Mapped[float] = mapped_column(Float)


class PollTriggerRow(Base):
    """A stored trigger that watches something (DataTrigger, MetricTrigger): the resource,
    when it last looked, and how far it got (``state``: its watermark)."""

    __tablename__ = "poll_triggers"

    name: Mapped[str] = mapped_column(String(253), primary_key=True)
    kind: Mapped[str] = mapped_column(String(64))
    namespace: Mapped[str] = mapped_column(String(253), default="default")
    spec: Mapped[dict[str, Any]] = mapped_column()  # the full resource
    created_at: Mapped[float] = mapped_column(Float)
    state: Mapped[dict[str, Any]] = mapped_column(default=dict)
    polled_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    message: Mapped[str | None] = mapped_column(Text, nullable=True)
