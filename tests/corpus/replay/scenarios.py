"""The runs of the replay-compatibility corpus (R-6): their specs and how each is driven.

``make_corpus.py`` records every scenario with the chute it runs on; the test replays them
with the build under test. ``HOME`` in a spec is the chute home of the recording (the
dump rewrites it to a placeholder). Every step appends ``<workflow>/<step>`` to
``HOME/ran.log`` when it starts, so the test can tell a step that ran twice.

A scenario is ``completed`` (it ended before the dump: it must load and stay as it is) or
``in-flight`` (its controller was SIGKILLed at ``kill``, or it never had one: a new build
must adopt it and bring it to ``expect``). ``kill`` names where the recording controller
dies: ``launch`` (a pod committed Running, never launched), ``send`` (its launch.json
written, no supervisor asked for), or ``turn`` (after a committed turn), once every
condition in ``when`` holds. ``during`` is what the recorder does to the run while its
controller lives, ``down`` what it does while no controller runs, ``replay`` what the
test does before adopting (resume, with values).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

STEP = """
  - name: step
    inputs:
      parameters:
      - {name: n}
      - {name: s, value: "0"}
      - {name: code, value: "0"}
    outputs:
      parameters:
      - name: out
        valueFrom: {path: /tmp/out.txt}
    container:
      image: busybox
      command: [sh, -c]
      args: ["echo {{workflow.name}}/{{inputs.parameters.n}} >> HOME/ran.log; sleep {{inputs.parameters.s}}; echo step {{inputs.parameters.n}}; echo v-{{inputs.parameters.n}} > /tmp/out.txt; exit {{inputs.parameters.code}}"]
"""


def _wf(name: str, body: str, *, spec_extra: str = "", step: bool = True) -> str:
    return (f"apiVersion: argoproj.io/v1alpha1\nkind: Workflow\nmetadata: {{name: {name}}}\n"
            f"spec:\n  entrypoint: main\n{spec_extra}  templates:\n{body}"
            + (STEP if step else ""))


def _task(n: str, deps: list[str] | None = None, s: str = "0", code: str = "0",
          template: str = "step") -> str:
    dep = f", dependencies: [{', '.join(deps)}]" if deps else ""
    return (f"      - {{name: {n}, template: {template}{dep}, arguments: {{parameters: "
            f"[{{name: n, value: {n}}}, {{name: s, value: '{s}'}}, "
            f"{{name: code, value: '{code}'}}]}}}}\n")


def chain(name: str, sleeps: list[str], spec_extra: str = "", codes: list[str] | None = None,
          extra: str = "") -> str:
    """A DAG ``t0 -> t1 -> ...`` of ``step``s sleeping the given seconds (and exiting with
    ``codes``), plus the templates in ``extra``."""
    codes = codes or ["0"] * len(sleeps)
    tasks = "".join(_task(f"t{i}", [f"t{i - 1}"] if i else None, s, c)
                    for i, (s, c) in enumerate(zip(sleeps, codes)))
    return _wf(name, f"  - name: main\n    dag:\n      tasks:\n{tasks}{extra}",
               spec_extra=spec_extra)


SUSPEND_ASK = """
  - name: main
    steps:
    - - {name: before, template: step, arguments: {parameters: [{name: n, value: before}]}}
    - - {name: approve, template: approve}
    - - name: release
        template: step
        arguments:
          parameters:
          - {name: n, value: "release-{{steps.approve.outputs.parameters.approver}}-{{steps.approve.outputs.parameters.env}}"}
  - name: approve
    suspend: {}
    outputs:
      parameters:
      - name: approver
        valueFrom: {supplied: {}}
      - name: env
        valueFrom: {default: staging, supplied: {}}
"""

LOOPS_PLAIN = """
  - name: main
    steps:
    - - {name: gen, template: gen}
    - - name: fixed
        template: step
        arguments: {parameters: [{name: n, value: "fixed-{{item}}"}]}
        withItems: [a, b, c]
      - name: dynamic
        template: step
        arguments: {parameters: [{name: n, value: "dyn-{{item.k}}"}]}
        withParam: "{{steps.gen.outputs.result}}"
    - - name: fan-in
        template: step
        arguments:
          parameters: [{name: n, value: "in-{{steps.dynamic.outputs.parameters.out}}"}]
  - name: gen
    script:
      image: python:3.11
      command: [python3]
      source: |
        import json
        print(json.dumps([{"k": i} for i in range(4)]))
"""

DAG_OUTPUTS = """
  - name: main
    dag:
      tasks:
      - {name: gen, template: gen}
      - name: use
        template: step
        depends: gen
        arguments: {parameters: [{name: n, value: "use-{{tasks.gen.outputs.parameters.word}}"}]}
      - name: never
        template: step
        depends: gen.Succeeded
        when: "{{tasks.gen.outputs.parameters.word}} == nope"
        arguments: {parameters: [{name: n, value: never}]}
      - name: last
        template: step
        depends: "use && never.Skipped"
        arguments: {parameters: [{name: n, value: "last-{{workflow.outputs.parameters.shared}}"}]}
  - name: gen
    container:
      image: busybox
      command: [sh, -c, "echo {{workflow.name}}/gen >> HOME/ran.log; echo -n hello > /tmp/w.txt"]
    outputs:
      parameters:
      - name: word
        globalName: shared
        valueFrom: {path: /tmp/w.txt}
"""

ARTIFACTS = """
  - name: main
    dag:
      tasks:
      - {name: make, template: make}
      - name: use
        template: use
        dependencies: [make]
        arguments: {artifacts: [{name: data, from: "{{tasks.make.outputs.artifacts.data}}"}]}
  - name: make
    container:
      image: busybox
      command: [sh, -c, "echo {{workflow.name}}/make >> HOME/ran.log; sleep SLEEP; echo payload-{{workflow.name}} > /tmp/data.txt"]
    outputs:
      artifacts: [{name: data, path: /tmp/data.txt}]
  - name: use
    inputs:
      artifacts: [{name: data, path: /tmp/in.txt}]
    container:
      image: busybox
      command: [sh, -c, "echo {{workflow.name}}/use >> HOME/ran.log; cat /tmp/in.txt"]
"""

BYE = """
  - name: bye
    container:
      image: busybox
      command: [sh, -c, "echo {{workflow.name}}/bye >> HOME/ran.log; sleep SLEEP; echo status={{workflow.status}}"]
"""

EXIT = """
  - name: main
    dag:
      tasks:
""" + _task("ok") + _task("bad", ["ok"], code="3") + BYE

MEMO = """
  - name: main
    steps:
    - - name: cached
        template: memo
        arguments: {parameters: [{name: x, value: "42"}]}
    - - name: after
        template: step
        arguments: {parameters: [{name: n, value: "after-{{steps.cached.outputs.parameters.out}}"}]}
  - name: memo
    inputs: {parameters: [{name: x}]}
    memoize:
      key: "corpus-{{inputs.parameters.x}}"
      maxAge: "1000d"
      cache: {configMap: {name: corpus-cache}}
    container:
      image: busybox
      command: [sh, -c, "echo {{workflow.name}}/memo >> HOME/ran.log; echo -n m{{inputs.parameters.x}} > /tmp/out.txt"]
    outputs:
      parameters:
      - name: out
        valueFrom: {path: /tmp/out.txt}
"""

RETRY = """
  - name: main
    steps:
    - - {name: flaky, template: flaky}
  - name: flaky
    retryStrategy: {limit: 2, retryPolicy: Always BACKOFF}
    container:
      image: busybox
      command: [sh, -c, "echo {{workflow.name}}/flaky-{{retries}} >> HOME/ran.log; test -f HOME/flags/{{workflow.name}} || { touch HOME/flags/{{workflow.name}}; exit 1; }; echo ok"]
"""

LOST = """
  - name: main
    steps:
    - - {name: work, template: work}
  - name: work
    RETRY
    container:
      image: busybox
      command: [sh, -c, "echo {{workflow.name}}/work-{{retries}} >> HOME/ran.log; test {{retries}} -gt 0 || sleep 60; echo done"]
"""

SCRIPT = """
  - name: main
    steps:
    - - {name: calc, template: calc}
    - - name: show
        template: step
        arguments: {parameters: [{name: n, value: "show-{{steps.calc.outputs.result}}"}]}
  - name: calc
    script:
      image: python:3.11
      command: [python3]
      source: |
        print(6 * 7)
"""

DEADLINE = """
  - name: main
    steps:
    - - {name: slow, template: slow}
  - name: slow
    activeDeadlineSeconds: 1
    container:
      image: busybox
      command: [sh, -c, "echo {{workflow.name}}/slow >> HOME/ran.log; sleep 20"]
"""

LIBRARY = """apiVersion: argoproj.io/v1alpha1
kind: WorkflowTemplate
metadata: {name: corpus-lib}
spec:
  templates:
  - name: greet
    inputs: {parameters: [{name: who}]}
    container:
      image: busybox
      command: [sh, -c, "echo {{workflow.name}}/greet >> HOME/ran.log; echo hi {{inputs.parameters.who}}"]
"""

TEMPLATEREF = """
  - name: main
    steps:
    - - name: hi
        templateRef: {name: corpus-lib, template: greet}
        arguments: {parameters: [{name: who, value: "{{workflow.parameters.who}}"}]}
"""


@dataclass
class Scenario:
    """One recorded run (see the module docstring)."""

    name: str
    kind: str  # "completed" or "in-flight"
    what: str
    spec: str = ""  # Workflow YAML (HOME = the recording's chute home)
    sdk: str = ""  # or an SDK pipeline file (repository-relative), compiled at recording
    params: dict[str, str] = field(default_factory=dict)
    expect: str = "Succeeded"  # the workflow's final phase
    submit_only: bool = False  # submitted, never adopted by any controller
    kill: dict[str, Any] | None = None  # {"at": launch|send|turn, "when": [...]}
    during: dict[str, Any] | None = None  # {"when": cond, "do": suspend|resume|stop|...}
    down: dict[str, Any] | None = None  # after the kill: {"do": resume|stop|lose, ...}
    after: str = ""  # once finished: "retry" (chute retry, then drive it again)
    replay: dict[str, Any] | None = None  # before adoption in the test: {"resume": values}
    rerun_ok: list[str] = field(default_factory=list)  # steps whose process was lost
    logs: dict[str, str] = field(default_factory=dict)  # step display name -> log text


def scenarios() -> list[Scenario]:
    """Every run of the corpus, in recording order (c-memo-a before those that hit it)."""
    s = Scenario
    return [
        # -- completed ------------------------------------------------------------------
        s("c-hello", "completed", "one step with an output parameter",
          _wf("c-hello", "  - name: main\n    steps:\n    - - {name: only, template: step, "
              "arguments: {parameters: [{name: n, value: only}]}}\n")),
        s("c-failed", "completed", "a failing step (exit 3) and the step after it omitted",
          chain("c-failed", ["0", "0", "0"], codes=["0", "3", "0"]),
          expect="Failed"),
        s("c-retry", "completed", "retryStrategy: fails once, succeeds on the retry",
          _wf("c-retry", RETRY.replace(" BACKOFF", ""))),
        s("c-loops", "completed", "withItems, withParam from a script's result, fan-in",
          _wf("c-loops", LOOPS_PLAIN)),
        s("c-dag-outputs", "completed",
          "DAG: output parameters, a global output, a when-skipped task, depends",
          _wf("c-dag-outputs", DAG_OUTPUTS)),
        s("c-artifacts", "completed", "an output artifact passed to the next task",
          _wf("c-artifacts", ARTIFACTS.replace("SLEEP", "0"), step=False)),
        s("c-exit", "completed", "a failing DAG and its onExit handler",
          _wf("c-exit", EXIT.replace("SLEEP", "0"), spec_extra="  onExit: bye\n"),
          expect="Failed"),
        s("c-memo-a", "completed", "memoize: a miss that stores the result",
          _wf("c-memo-a", MEMO)),
        s("c-memo-b", "completed", "memoize: a hit on c-memo-a's result",
          _wf("c-memo-b", MEMO)),
        s("c-suspend-resumed", "completed", "a suspend step resumed with -p values",
          _wf("c-suspend-resumed", SUSPEND_ASK),
          during={"when": "suspend-running", "do": "resume", "values": {"approver": "ada"}}),
        s("c-stopped", "completed", "chute stop while a step runs: exit handler runs",
          chain("c-stopped", ["30", "0"], spec_extra="  onExit: bye\n",
                extra=BYE.replace("SLEEP", "0")),
          expect="Failed", during={"when": "running-pods>=1", "do": "stop"}),
        s("c-terminated", "completed", "chute terminate while a step runs",
          chain("c-terminated", ["30", "0"]), expect="Failed",
          during={"when": "running-pods>=1", "do": "terminate"}),
        s("c-retried", "completed", "failed, then chute retry re-ran the failed step only",
          _wf("c-retried", RETRY.replace("limit: 2", "limit: 0").replace(" BACKOFF", "")
              .replace("  - - {name: flaky, template: flaky}",
                       "  - - {name: first, template: step, arguments: "
                       "{parameters: [{name: n, value: first}]}}\n"
                       "    - - {name: flaky, template: flaky}")),
          after="retry"),
        s("c-script", "completed", "a script step's result used by the next step",
          _wf("c-script", SCRIPT)),
        s("c-deadline", "completed", "activeDeadlineSeconds kills a step",
          _wf("c-deadline", DEADLINE, step=False), expect="Failed"),
        s("c-templateref", "completed", "a step from a stored WorkflowTemplate",
          _wf("c-templateref", TEMPLATEREF, step=False,
              spec_extra="  arguments: {parameters: [{name: who, value: corpus}]}\n")),
        s("c-sdk", "completed", "an SDK pipeline (warm Python workers)",
          sdk="examples/hello_world.py"),
        # -- in flight ------------------------------------------------------------------
        s("f-pending", "in-flight", "submitted, never picked up by a controller",
          chain("f-pending", ["0", "0"]), submit_only=True),
        s("f-pending-memo", "in-flight", "never picked up; its memoized step hits the cache",
          _wf("f-pending-memo", MEMO), submit_only=True),
        s("f-never-launched", "in-flight",
          "killed after committing a pod Running, before launching it",
          chain("f-never-launched", ["0", "0", "0", "0"]),
          kill={"at": "launch", "when": ["succeeded>=2"]}),
        s("f-no-supervisor", "in-flight",
          "killed after writing launch.json, before a supervisor was asked for",
          chain("f-no-supervisor", ["0", "0", "0"]),
          kill={"at": "send", "when": ["succeeded>=1"]}),
        s("f-done-while-down", "in-flight",
          "killed while a step ran; the step finished while no controller ran",
          chain("f-done-while-down", ["0", "1.5", "0"]),
          kill={"at": "turn", "when": ["succeeded>=1", "running-pods>=1"]}),
        s("f-parallel", "in-flight", "killed during a 4-wide fan-out that finished meanwhile",
          _wf("f-parallel", "  - name: main\n    dag:\n      tasks:\n" + _task("root") + "".join(
              _task(f"w{i}", ["root"], "1.5") for i in range(4))
              + _task("join", [f"w{i}" for i in range(4)])),
          kill={"at": "turn", "when": ["running-pods>=4"]}),
        s("f-lost-retried", "in-flight",
          "supervisor and step killed while no controller ran; retryStrategy retries it",
          _wf("f-lost-retried", LOST.replace("RETRY", "retryStrategy: {limit: 1, retryPolicy: Always}"), step=False),
          kill={"at": "turn", "when": ["running-pods>=1"]}, down={"do": "lose"},
          rerun_ok=["work"]),
        s("f-lost", "in-flight",
          "supervisor and step killed while no controller ran; no retry: the step's Error "
          "fails the run",
          _wf("f-lost", LOST.replace("    RETRY\n", ""), step=False), expect="Failed",
          kill={"at": "turn", "when": ["running-pods>=1"]}, down={"do": "lose"},
          rerun_ok=["work"]),
        s("f-suspended", "in-flight", "waiting at a suspend step; resumed with -p values",
          _wf("f-suspended", SUSPEND_ASK), kill={"at": "turn", "when": ["suspend-running"]},
          replay={"resume": {"approver": "grace"}},
          logs={"release": "step release-grace-staging"}),
        s("f-wf-suspended", "in-flight", "chute suspend (workflow level), then killed",
          chain("f-wf-suspended", ["1", "0", "0"]),
          during={"when": "running-pods>=1", "do": "suspend"},
          kill={"at": "turn", "when": ["suspended-idle"]}, replay={"resume": {}}),
        s("f-resumed-while-down", "in-flight",
          "waiting at a suspend step; chute resume -p made while no controller ran",
          _wf("f-resumed-while-down", SUSPEND_ASK),
          kill={"at": "turn", "when": ["suspend-running"]},
          down={"do": "resume", "values": {"approver": "linus", "env": "prod"}},
          logs={"release": "step release-linus-prod"}),
        s("f-stop-while-down", "in-flight", "chute stop made while no controller ran",
          chain("f-stop-while-down", ["0", "3", "0"], spec_extra="  onExit: bye\n",
                extra=BYE.replace("SLEEP", "0")),
          expect="Failed", kill={"at": "turn", "when": ["running-pods>=1", "succeeded>=1"]},
          down={"do": "stop"}),
        s("f-backoff", "in-flight", "killed while a retry waited out its backoff",
          _wf("f-backoff", RETRY.replace(
              " BACKOFF", ", backoff: {duration: '2', factor: '1'}")),
          kill={"at": "turn", "when": ["retry-waiting"]}),
        s("f-loop", "in-flight", "withItems with parallelism 2, killed half-way",
          _wf("f-loop", "  - name: main\n    parallelism: 2\n    steps:\n    - - name: each\n"
              "        template: step\n        arguments: {parameters: [{name: n, value: "
              "'i{{item}}'}, {name: s, value: '0.7'}]}\n        withItems: [1, 2, 3, 4, 5, 6]\n"),
          kill={"at": "turn", "when": ["succeeded>=2", "running-pods>=2"]}),
        s("f-exit-handler", "in-flight", "killed while the onExit handler ran",
          _wf("f-exit-handler", EXIT.replace("SLEEP", "1.5"), spec_extra="  onExit: bye\n"),
          expect="Failed", kill={"at": "turn", "when": ["exit-running"]},
          logs={"f-exit-handler.onExit": "status=Failed"}),
        s("f-artifact", "in-flight",
          "killed while an artifact's producer ran; its file is collected on adoption",
          _wf("f-artifact", ARTIFACTS.replace("SLEEP", "1.5"), step=False),
          kill={"at": "turn", "when": ["running-pods>=1"]},
          logs={"use": "payload-f-artifact"}),
        s("f-sdk", "in-flight", "an SDK pipeline killed after its first step",
          sdk="examples/diamond.py", params={"rows": "4"},
          kill={"at": "turn", "when": ["succeeded>=1"]}),
    ]
