"""chute.engine: runs Argo Workflows on one machine, with Argo's semantics.

Shape (an immutable plan, a pure state machine, one driver loop)::

    plan.py        the Workflow as plain Argo JSON + stored templates + global parameters
    state.py       RunState: events in (start, pod_finished, tick), Decisions out; no IO
    node_tree.py call_nodes.py    RunState's node bookkeeping; the node a call makes
    frame.py       what waits for children (Frame), the parallelism Gate, exit hooks
    hooks.py       lifecycle hooks (``hooks.<name>`` with an expression): fire once when true
    steps.py dag.py retry.py root.py    one module per template kind / node kind
    pod.py         container and script templates: LaunchRequest, outputs from results
    calls.py loops.py params.py vars.py outputs.py    substitution, loops, inputs, outputs
    controller.py  the only IO: store commits (before acting), executor, leases, adoption
    adoption.py leases.py launches.py holds.py    the controller's mixins
    submit.py      validate + refuse what the local runtime cannot honour + write the row
    control.py     suspend / resume / stop / terminate / retry / resubmit requests
    state_format.py  which recorded runs this build can replay (IncompatibleRunError)
    status.py      a stored workflow in Argo's JSON shape (``chute get -o json``)
    fake.py        an in-memory executor for tests and benchmarks
    crashpoints.py numbered crash points at every durable write (CHUTE_CRASH_AT, R-2)

Use from other layers (the server, the SDK's ``chute run``)::

    from chute.engine.submit import submit            # -> WorkflowRow (Pending)
    from chute.engine.controller import Controller    # Controller(store, settings, executor)
    ctl.run_until_done([row.uid])   # embedded;  ctl.serve(stop_event)  # standalone
    from chute.engine.status import workflow_status   # Argo-shaped dict of a stored run

Node ids are Argo's (``<workflow>-<fnv32a(node name)>``, the root's id is the workflow
name), so a run rebuilt from the spec and the stored nodes replays to the same tree: that
is how a controller adopts a workflow whose previous controller died.
"""
