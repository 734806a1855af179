"""Optuna-backed tuning in rounds, with the study in the metadata store (a SQLite file)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

pytest.importorskip("optuna")

from chute.config import load_settings
from chute.errors import NotFoundError, ParameterError
from chute.ml import tuning
from chute.store.db import current_revision, make_engine

SPACE = {"x": {"type": "float", "low": -5, "high": 5},
         "n": {"type": "int", "low": 1, "high": 9, "step": 2},
         "k": {"type": "categorical", "choices": ["a", "b"]}}


def objective(params):
    return -(params["x"] - 2) ** 2 - (0.5 if params["k"] == "b" else 0.0)


def test_rounds_of_ask_and_tell_find_the_best(chute_home):
    seen = set()
    for r in range(3):
        suggestions = tuning.ask("s", 4, SPACE, round_key=f"run/r{r}", seed=3)
        assert len(suggestions) == 4
        assert all(set(s["params"]) == {"x", "n", "k"} for s in suggestions)
        assert all(s["params"]["n"] in (1, 3, 5, 7, 9) for s in suggestions)
        seen |= {s["trial"] for s in suggestions}
        # the list is JSON (a ParallelFor iterates over it as its items)
        json.dumps(suggestions)
        summary = tuning.tell("s", [json.dumps({"trial": s["trial"],
                                                "value": objective(s["params"])})
                                    for s in suggestions])
        assert (summary["told"], summary["failed"]) == (4, 0)
    assert seen == set(range(12))  # rounds never hand out the same trial twice
    top = tuning.best("s")
    values = [t["value"] for t in tuning.trials("s")]
    assert top["trials"] == 12 and top["value"] == max(values)
    assert top["value"] == pytest.approx(objective(top["params"]))
    # the rounds drew different points: a seed re-used per process would repeat round 1
    xs = [t["params"]["x"] for t in tuning.trials("s")]
    assert len(set(xs)) == 12
    # the study lives in the chute database, next to chute's tables, which stay migrated
    assert (chute_home / "chute.db").is_file()
    assert current_revision(make_engine(load_settings().database_url)) is not None


def test_study_survives_a_restart_between_processes(chute_home):
    """ask in one process, ask again (a re-run step) and tell from fresh processes."""
    code = ("import json,sys; from chute.ml import tuning; "
            "print(json.dumps(tuning.ask('restart', 3, json.loads(sys.argv[1]), "
            "round_key='wf-1/round-0', seed=5)))")
    first = json.loads(subprocess.run([sys.executable, "-c", code, json.dumps(SPACE)],
                                      check=True, capture_output=True, text=True).stdout)
    again = json.loads(subprocess.run([sys.executable, "-c", code, json.dumps(SPACE)],
                                      check=True, capture_output=True, text=True).stdout)
    assert again == first  # the same round is not asked twice
    results = [{"trial": s["trial"], "value": objective(s["params"])} for s in first]
    results[1] = {"trial": first[1]["trial"], "value": None, "error": "OOM"}
    summary = tuning.tell("restart", results)
    assert (summary["told"], summary["failed"]) == (2, 1)
    # telling again (a re-run tell step) changes nothing
    assert tuning.tell("restart", results)["skipped"] == 3
    states = sorted(t["state"] for t in tuning.trials("restart"))
    assert states == ["COMPLETE", "COMPLETE", "FAIL"]
    assert all(t["round"] == "wf-1/round-0" for t in tuning.trials("restart"))


@pytest.mark.parametrize("space,message", [
    ({"x": {"type": "float", "low": 1}}, "parameter 'x': missing 'high'"),
    ({"x": {"type": "gauss"}}, "parameter 'x': type 'gauss'"),
    ({"x": {"type": "float", "low": 5, "high": 1}}, "parameter 'x'"),
    ({"x": {"type": "categorical", "choices": []}}, "parameter 'x'"),
    ({}, "non-empty"),
    ("{not json", "not valid JSON"),
])
def test_bad_search_space_names_the_parameter(chute_home, space, message):
    with pytest.raises(ParameterError, match=message):
        tuning.ask("bad", 2, space)


def test_errors_name_the_study_and_trial(chute_home):
    with pytest.raises(NotFoundError, match="study 'ghost' not found"):
        tuning.best("ghost")
    tuning.ask("t", 1, SPACE)
    with pytest.raises(NotFoundError, match="no completed trial"):
        tuning.best("t")
    with pytest.raises(NotFoundError, match="no trial 42"):
        tuning.tell("t", [{"trial": 42, "value": 1.0}])
    with pytest.raises(ParameterError, match=r"results\[0\]"):
        tuning.tell("t", [{"value": 1.0}])
    with pytest.raises(ParameterError, match=">= 1"):
        tuning.ask("t", 0, SPACE)
