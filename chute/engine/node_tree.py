"""The node tree of a run's state: nodes created (or adopted from their recorded twins on
replay), linked to their parents, moved through their phases (checked and journaled) and
marked for writing; a finished node notifies the frame that waits for it.

A mixin of :class:`~chute.engine.state.RunState`, separate from the events and passes
that drive it: this is the bookkeeping every kind of node goes through, including when a
long children list (a fan-out's parent) is written (:meth:`NodeTree._children_due`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from chute.engine import phases as P
from chute.engine.nodes import Node, node_id

if TYPE_CHECKING:
    from chute.engine.frame import Frame

#: a node with this many children or more is not rewritten for each one (_children_due)
MANY_CHILDREN = 128


class NodeTree:
    """The node side of :class:`~chute.engine.state.RunState` (a mixin over its ``plan``,
    ``now``, ``recorded``, ``nodes``, ``failed``, ``lifecycle``, ``done``, ``_queue``,
    ``_owner``, ``_edges``, ``_new``, ``_dirty``, ``_grown``, ``_grew``, ``_fresh``,
    ``_children_written`` and ``_events``)."""

    def add_node(self, name: str, display: str, type_: str, *, template_name: str | None,
                 boundary_id: str | None, parent: Node | None, inputs: dict | None = None,
                 owner: Frame | None = None, link_parent: bool = True) -> Node:
        """Create a node (or adopt its recorded twin) and register who waits for it."""
        nid = node_id(self.plan.name, name)
        rec = self.recorded.get(nid)
        node = Node(id=nid, name=name, display_name=display, type=type_,
                    template_name=template_name, boundary_id=boundary_id,
                    parent_id=parent.id if parent else None, inputs=inputs or {},
                    started_at=rec.started_at if rec and rec.started_at else self.now)
        if rec is not None:
            node.attempt = rec.attempt
        self.nodes[nid] = node
        if rec is None:
            self._new[nid] = node
        else:
            self._dirty[nid] = node
        if parent is not None and link_parent:
            # a node is created once per run, so it cannot be a child already (and a
            # membership test would make a 10,000-item loop quadratic)
            parent.children.append(nid)
            self._grow(parent)
        if owner is not None:
            self._owner[nid] = owner
        return node

    def started_before(self, name: str) -> bool:
        """Whether node ``name`` existed in this run before a restart: it is in the
        recorded nodes, and not merely as a row ``chute retry`` reset that nothing created
        again since (Pending, never started: Argo's retry deletes such a node)."""
        rec = self.recorded.get(node_id(self.plan.name, name))
        return rec is not None and not (rec.phase == P.PENDING and rec.started_at is None)

    def touch(self, node: Node) -> None:
        """Mark a node for persisting."""
        if node.id not in self._new:
            self._dirty[node.id] = node

    def link(self, parent: Node, child: Node) -> None:
        """Add ``child`` to ``parent.children`` (Argo's graph edges), once.

        Checked against a set, not the list: a task of a 10,000-task fan-out is linked to
        the one task they all depend on, and a list scan would make that quadratic."""
        edge = (parent.id, child.id)
        if edge not in self._edges:
            self._edges.add(edge)
            parent.children.append(child.id)
            self._grow(parent)

    def _grow(self, parent: Node) -> None:
        """``parent`` has a new child: to be persisted (when: :meth:`_children_due`)."""
        if parent.id not in self._new:
            if parent.id not in self._grown:
                self._fresh.add(parent.id)
            self._grown[parent.id] = parent
            self._grew[parent.id] = self._grew.get(parent.id, 0) + 1

    def unlink(self, parent: Node, child_id: str) -> None:
        """Take back the link of a child made since the last drain (a DAG task hangs off
        its dependencies, not off the DAG node it was created under). A parent left as
        it was last written is not written again for it (a chain's DAG node, each step)."""
        children = parent.children
        if children and children[-1] == child_id:  # linked last, most often: no list scan
            children.pop()
        else:
            try:
                children.remove(child_id)
            except ValueError:
                return
        left = self._grew.get(parent.id, 0) - 1
        self._grew[parent.id] = left
        if left <= 0 and parent.id in self._fresh:
            self._fresh.discard(parent.id)
            self._grown.pop(parent.id, None)

    def _children_due(self, node: Node) -> bool:
        """Whether a node whose only change is new children is written in this drain.

        A short list is, every time. A long one (a fan-out's parent, a task thousands
        depend on) gains children over hundreds of passes; writing it in each would cost
        the list's length each time (JSON, and the row rewritten): quadratic in the
        fan-out. It is written once its length doubled since the last write, once it
        stopped growing (a pass added none), and when the run ends. Children are derived
        (a replay links them again), so a restart loses nothing while one lags."""
        n = len(node.children)
        return (n < MANY_CHILDREN or not self._grew.get(node.id) or self.done
                or n >= 2 * self._children_written.get(node.id, 0))

    def transition(self, node: Node, phase: str, message: str | None = None) -> None:
        """The one way a node's phase changes: checked, journaled, persisted."""
        old = node.phase
        if old == phase:
            return
        if phase not in P.ALLOWED.get(old, ()):
            P.check_transition(node.id, old, phase)  # raises
        self._events.append({
            "transition_id": f"{self.plan.uid}/{node.id}/{node.attempt}/{phase}",
            "workflow_uid": self.plan.uid, "node_id": node.id, "from_phase": old,
            "to_phase": phase, "at": self.now, "message": message,
        })
        node.phase = phase
        if self.lifecycle.open:  # its lifecycle hooks see the new status (hooks.py)
            self.lifecycle.changed.add(node.id)
        if message is not None:
            node.message = message
        if phase in P.TERMINAL:
            node.finished_at = self.now
            if phase in P.FAILED_OR_ERROR:  # workflow.failures (Failures.note's own test)
                self.failed.note(node)
        if node.id not in self._new:  # touch(), inline: every transition comes here
            self._dirty[node.id] = node

    def finish(self, node: Node, phase: str, message: str | None = None) -> None:
        """Move a node to a final phase and notify the frame waiting for it."""
        rec = self.recorded.get(node.id) if self.recorded else None
        if rec is not None and P.is_terminal(rec.phase) and rec.phase != phase:
            # replay: a node that ended before a restart keeps the end it had, even where
            # the order of the replay would decide differently (a DAG's first failure)
            phase, message = rec.phase, rec.message
        self.transition(node, phase, message)
        owner = self._owner.pop(node.id, None)
        if owner is not None:
            self._queue.append(lambda: owner.child_done(self, node))

