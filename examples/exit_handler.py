"""An exit handler: a cleanup step that runs when the workflow ends, whatever the outcome.

``WORKFLOW_STATUS`` tells the cleanup step whether the work succeeded.
"""

from chute.dsl import WORKFLOW_STATUS, ExitHandler, component, pipeline


@component
def cleanup(status: str):
    """Report the final status of the workflow."""
    print(f"workflow finished: {status}")


@component
def work(fail: bool) -> str:
    """Do the work, or fail on purpose."""
    if fail:
        raise SystemExit("failing on purpose")
    print("working")
    return "done"


@pipeline(name="exit-handler", description="Always run a cleanup step at the end.")
def exit_handler(fail: bool = False):
    done = cleanup(status=WORKFLOW_STATUS)
    with ExitHandler(done):
        work(fail=fail)
