"""The static DAG of a pipeline (drawn before it runs) and its parameter form."""

from __future__ import annotations

from pathlib import Path

import yaml

from chute.server.graph import parameters_of, static_graph

EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "compiled"


def _load(name):
    return yaml.safe_load((EXAMPLES / name).read_text())


def test_diamond_edges_follow_dependencies():
    g = static_graph(_load("diamond.yaml"))
    assert {n["id"] for n in g["nodes"]} == {"load", "summarize", "scale", "report"}
    assert sorted(map(tuple, g["edges"])) == [("load", "scale"), ("load", "summarize"),
                                              ("scale", "report"), ("summarize", "report")]


def test_loops_conditions_and_exit_handler_are_marked():
    loop = static_graph(_load("loop_fan_in.yaml"))
    assert any(n["loop"] == "withParam" for n in loop["nodes"])
    cond = static_graph(_load("conditional.yaml"))
    assert sum(1 for n in cond["nodes"] if n["when"]) == 4
    ex = static_graph(_load("exit_handler.yaml"))
    assert ["work", "onExit"] in ex["edges"]


def test_steps_groups_chain_and_recursion_is_bounded():
    spec = {"spec": {"entrypoint": "main", "templates": [
        {"name": "main", "steps": [[{"name": "a", "template": "leaf"}],
                                   [{"name": "b", "template": "leaf"},
                                    {"name": "c", "template": "main"}]]},
        {"name": "leaf", "container": {"image": "x"}},
    ]}}
    g = static_graph(spec)
    assert ["a", "b"] in g["edges"] and ["a", "c"] in g["edges"]
    assert len(g["nodes"]) < 100  # the recursive template is cut at MAX_DEPTH


def test_parameters_types_defaults_enums():
    spec = {"metadata": {"annotations": {"chute.dev/parameter-types": '{"lr": "number"}'}},
            "spec": {"arguments": {"parameters": [
                {"name": "lr", "value": "1"}, {"name": "n", "value": "3"},
                {"name": "flag", "value": "true"}, {"name": "m", "value": "a",
                                                   "enum": ["a", "b"]},
                {"name": "free"}]}}}
    got = {p["name"]: (p["type"], p["default"], p["enum"]) for p in parameters_of(spec)}
    assert got == {"lr": ("number", "1", None), "n": ("integer", "3", None),
                   "flag": ("boolean", "true", None), "m": ("string", "a", ["a", "b"]),
                   "free": ("string", None, None)}
