"""Expression semantics: Argo's `when` (govaluate) and `{{= }}` (expr-lang subset)."""

from __future__ import annotations

import datetime as dt
import functools
import math
from pathlib import Path

import pytest
import yaml

from chute.errors import ExpressionError
from chute.spec import expr
from chute.spec.expr import (
    UndefinedVariableError,
    build_env,
    evaluate,
    evaluate_when,
    format_result,
)
from chute.spec.templating import find_tags, substitute

# -- when ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "when, expected",
    [
        ("", True),
        ("heads == heads", True),  # coinflip: bare words are strings
        ("tails == heads", False),
        ("heads != tails", True),
        ("Succeeded == Succeeded", True),
        ("Failed != Succeeded", True),
        ("YES == YES", True),
        ("true == true", True),  # booleans
        ("false == true", False),
        ("True == true", False),  # "True" is a word, not a boolean
        ("yes == true", False),
        ("true", True),
        ("false", False),
        ("5 > 2", True),
        ("2 > 5", False),
        ("3 < 10", True),  # numbers compare as numbers, not strings
        ("10 >= 10", True),
        ("1 <= 0", False),
        ("007 == 7", True),
        ("1.0 == 1", True),
        ("0x1F == 31", True),
        ("'5' == 5", False),  # a quoted string is not a number
        ("'a' < 'b'", True),  # two strings compare as strings
        ("abc < abd", True),
        ("\"heads\" == heads", True),
        ("'it is' == \"it is\"", True),
        ("heads =~ hea", True),  # regex search
        ("tails =~ hea", False),
        ("tails !~ hea", True),
        ("heads =~ '^h.*s$'", True),
        ("5 != 1 && 5 != 2", True),  # fibonacci-style
        ("1 != 1 && 1 != 2", False),
        ("( heads == heads && tails == tails ) || ( tails == heads && heads == tails )", True),
        ("( heads == tails && tails == tails ) || ( tails == heads && heads == tails )", False),
        ("!(a == b)", True),
        ("!false", True),
        ("1 + 2 == 3", True),
        ("2 * 3 + 1 == 7", True),
        ("2 + 3 * 2 == 8", True),
        ("2 ** 3 == 8", True),
        ("7 % 4 == 3", True),
        ("-1 < 0", True),
        ("a + b == ab", True),  # + concatenates strings
        ("1 + a == '1a'", True),
        ("Running in (Running, Failed)", True),
        ("Pending in (Running, Failed)", False),
        ("3 in (1, 2, 3)", True),
        ("true ? true : false", True),
        ("false ? true : false", False),
        ("false || true && false", False),  # && binds tighter than ||
        ("true || false && false", True),
        ("false && x", False),  # short circuit skips the type check
        ("'2021-01-02' > '2021-01-01'", True),  # quoted dates compare as times
        ("[my var] == 'my var'", True),  # bracket-escaped variable
    ],
)
def test_when_table(when, expected):
    assert evaluate_when(when) is expected


@pytest.mark.parametrize(
    "when, message",
    [
        ("heads ==", "end of expression"),
        ("== heads", "unexpected"),
        ("it's == x", "Unclosed string"),  # a quote starts a string
        ("it's == it's", "unexpected"),
        ("my-value == my-value", "modifier"),  # a dash splits words: my - value
        ("v1.2 == v1.2", "accessor"),  # a dotted word is an accessor
        ("a. == b", "Hanging accessor"),
        ("heads", "expected boolean"),  # result must be boolean
        ("5 > heads", "not a number"),
        ("heads && true", "not a bool"),
        ("!heads", "prefix"),
        ("a ==-1", "Invalid token"),  # govaluate reads the whole symbol run
        ("a @ b", "Invalid token"),
        ("(a == b", "parenthesis"),
        ("   ", "expected a boolean"),
        ("_x == _x", "Invalid token"),
        ("1.2.3 == 1", "numeric"),
        ("a =~ '('", "regular expression"),
        ("a in (a)", "not an array"),  # a list needs a comma
    ],
)
def test_when_errors(when, message):
    with pytest.raises(ExpressionError, match=message):
        evaluate_when(when)


# -- expr-lang -----------------------------------------------------------------------------

ENV = {
    "inputs": {"parameters": {"foo": "4", "should-print": "true", "num": "3", "list": "[1,2,3]"}},
    "workflow": {"name": "wf", "parameters": {"json": '[{"value": "true"}]', "n": "2.5"}},
    "steps": {"flip-coin": {"outputs": {"result": "heads"}}, "heads": {"outputs": {"result": "H"}}},
    "lastRetry": {"exitCode": "2", "status": "Failed", "duration": "30", "message": "pod deleted"},
    "nums": [3, 1, 2],
    "objs": [{"name": "a", "n": 1}, {"name": "b", "n": 2}],
    "m": {"k": "v", "nil": None},
}


@pytest.mark.parametrize(
    "source, expected",
    [
        # literals
        ("1", 1), ("1.5", 1.5), ("1e3", 1000.0), ("0x10", 16), ("1_000", 1000), ("'a'", "a"), ('"a\\nb"', "a\nb"),
        ("`raw\\n`", "raw\\n"), ("true", True), ("nil", None), ("[1, 'a', nil]", [1, "a", None]),
        ("{a: 1, 'b': 2}", {"a": 1, "b": 2}), ("[]", []), ("{}", {}),
        # arithmetic (expr: / is float division, ** is float)
        ("1 + 2 * 3", 7), ("(1 + 2) * 3", 9), ("7 / 2", 3.5), ("6 / 3", 2.0), ("7 % 3", 1), ("-7 % 3", -1),
        ("2 ** 10", 1024.0), ("2 ^ 3", 8.0), ("2 ** 3 ** 2", 512.0), ("-2 + 5", 3), ("1 + 2.5", 3.5),
        ("'a' + 'b'", "ab"), ("[1] + [2]", [1, 2]), ("--1", 1),
        # comparison and logic
        ("1 < 2", True), ("'a' < 'b'", True), ("1 == 1.0", True), ("'1' == 1", False), ("true == 1", False),
        ("nil == nil", True), ("[1, 2] == [1, 2]", True), ("1 != 2", True),
        ("true && false", False), ("true and true", True), ("false || true", True), ("false or false", False),
        ("!true", False), ("not false", True), ("false && nosuchname", False), ("true || nosuchname", True),
        ("not (1 > 2)", True), ("!true == false", True),
        # membership and strings
        ("2 in [1, 2]", True), ("'k' in m", True), ("'x' in m", False), ("3 not in [1, 2]", True),
        ("'foobar' contains 'oba'", True), ("'foobar' startsWith 'foo'", True), ("'foobar' endsWith 'bar'", True),
        ("'foobar' matches '^f.o'", True), ("'foobar' not matches 'z'", True),
        ("lastRetry.message matches 'imminent node shutdown|pod deleted'", True),
        # ternary and nil coalescing
        ("1 > 2 ? 'a' : 'b'", "b"), ("true ? 1 : 2", 1), ("nil ?? 'x'", "x"), ("'y' ?? 'x'", "y"),
        ("m.missing ?? 'fb'", "fb"), ("m.nil ?? 'fb'", "fb"), ("m.missing == nil", True), ("m.k == nil", False),
        ("m?.missing?.deeper", None),
        # member access and indexing
        ("inputs.parameters.foo", "4"), ("inputs.parameters['should-print']", "true"),
        ('inputs.parameters["should-print"]', "true"), ("steps['flip-coin'].outputs.result", "heads"),
        ("nums[0]", 3), ("nums[-1]", 2), ("nums[1:]", [1, 2]), ("nums[:2]", [3, 1]), ("'hello'[1:3]", "el"),
        ("objs[1].name", "b"), ("objs[0]['n']", 1), ("{a: {b: [7]}}.a.b[0]", 7),
        # builtins with closures
        ("filter([1, 3], {# > 1})", [3]), ("filter([1, 3], # > 1)", [3]), ("map(nums, # * 2)", [6, 2, 4]),
        ("map(objs, .name)", ["a", "b"]), ("map(objs, {#.n + #index})", [1, 3]), ("all(nums, # > 0)", True),
        ("any(nums, # > 2)", True), ("none(nums, # > 5)", True), ("one(nums, # == 1)", True),
        ("count(nums, # > 1)", 2), ("sum(nums)", 6), ("find(objs, .n == 2).name", "b"),
        ("findIndex(nums, # == 2)", 2), ("sortBy(objs, .n, 'desc')[0].name", "b"),
        ("reduce(nums, #acc + #, 0)", 6), ("groupBy(objs, .n > 1)['true'][0].name", "b"),
        ("nums | filter(# > 1)", [3, 2]),
        # plain builtins
        ("len('abc')", 3), ("len(nums)", 3), ("len(m)", 2), ("int('42')", 42), ("int(3.9)", 3), ("float('2.5')", 2.5),
        ("string(1.5)", "1.5"), ("string([1, 'a'])", "[1 a]"), ("upper('a')", "A"), ("lower('A')", "a"),
        ("trim('  a ')", "a"), ("split('a,b', ',')", ["a", "b"]), ("join(['a', 'b'], '-')", "a-b"),
        ("replace('aXbX', 'X', '.')", "a.b."), ("indexOf('abc', 'c')", 2), ("hasPrefix('abc', 'ab')", True),
        ("abs(-2)", 2), ("ceil(1.2)", 2.0), ("floor(1.8)", 1.0), ("round(2.5)", 3.0), ("max(1, 5, 2)", 5),
        ("min(nums)", 1), ("keys({b: 1, a: 2})", ["a", "b"]), ("first(nums)", 3), ("last(nums)", 2),
        ("type(1)", "int"), ("type('a')", "string"), ("toJSON([1])", "[\n  1\n]"), ("fromJSON('{\"a\": 1}').a", 1.0),
        ("toBase64('hi')", "aGk="), ("fromBase64('aGk=')", "hi"), ("1..3", [1, 2, 3]), ("repeat('ab', 2)", "abab"),
        # Argo's functions
        ("asInt(inputs.parameters.foo) * 10", 40), ("asFloat(workflow.parameters.n) * 2", 5.0),
        ("asInt(lastRetry.exitCode) > 1 && lastRetry.status != 'Error' && asInt(lastRetry.duration) < 120", True),
        ("toJson({b: [1, 2.5], a: 'x<y'})", '{"a":"x\\u003cy","b":[1,2.5]}'),
        ("jsonpath(workflow.parameters.json, '$[0].value') == 'true'", True),
        ("jsonpath('{\"a\": {\"b\": [10, 20]}}', '$.a.b[1]')", 20.0),
        ("jsonpath('[{\"x\": 1}, {\"x\": 2}]', '$[*].x')", [1.0, 2.0]),
        ("jsonpath('{\"a\": {\"b\": 1, \"c\": {\"b\": 2}}}', '$..b')", [1.0, 2.0]),
        ("jsonpath(inputs.parameters.list, '$[-1:]')", [3.0]),
        # sprig
        ("sprig.trim('  x ')", "x"), ("sprig.upper('abc')", "ABC"), ("sprig.lower('ABC')", "abc"),
        ("sprig.replace('a', 'b', 'banana')", "bbnbnb"), ("sprig.split(',', 'a,b')", {"_0": "a", "_1": "b"}),
        ("sprig.splitList(',', 'a,b')", ["a", "b"]), ("sprig.atoi('12')", 12), ("sprig.atoi('x')", 0),
        ("sprig.int('12')", 12), ("sprig.int('x')", 0), ("sprig.int(3.7)", 3), ("sprig.default('d', '')", "d"),
        ("sprig.default('d', 'v')", "v"), ("sprig.empty('')", True), ("sprig.empty([1])", False),
        ("sprig.add(1, 2, '3')", 6), ("sprig.add(34.0, 27.0) / 5", 12.2), ("sprig.max(1, 9, 3)", 9),
        ("sprig.min(4, 2)", 2), ("sprig.b64dec('aGk=')", "hi"), ("sprig.b64enc('hi')", "aGk="),
        ("sprig.trimPrefix('v', 'v1')", "1"), ("sprig.contains('b', 'abc')", True), ("sprig.cat('a', 1)", "a 1"),
        ("sprig.regexMatch('^a+$', 'aaa')", True), ("sprig.regexReplaceAll('a(x*)b', '-ab-axxb-', '${1}W')", "-W-xxW-"),
        ("sprig.toJson({a: 1})", '{"a":1}'), ("sprig.date('2006-01-02', date('2024-03-05T10:00:00Z'))", "2024-03-05"),
        ("sprig.until(3)", [0, 1, 2]), ("sprig.regexSplit('z+', 'pizza', -1)", ["pi", "a"]),
        ("sprig.regexSplit('z+', 'pizza', 1)", ["pizza"]), ("sprig.regexFindAll('a.', 'abacad', 2)", ["ab", "ac"]),
        ("sprig.regexReplaceAllLiteral('a(x*)b', '-ab-axxb-', '${1}')", "-${1}-${1}-"),
        ("sprig.indent(2, 'a\nb')", "  a\n  b"), ("sprig.nindent(1, 'a')", "\n a"), ("sprig.title('hello world')", "Hello World"), ("sprig.join('-', ['a', 'b'])", "a-b"), ("sprig.sub(5, 2)", 3),
        ("sprig.ternary('y', 'n', true)", "y"), ("sprig.sha256sum('a')[:8]", "ca978112"),
        # comments and white-space
        ("1 + /* two */ 2 // end", 3), ("\n  1\n  +\n  1\n", 2),
    ],
)
def test_expr_table(source, expected):
    result = evaluate(source, ENV)
    assert result == expected and type(result) is type(expected), (source, result)


@pytest.mark.parametrize(
    "source, error, message",
    [
        ("nosuchname", UndefinedVariableError, "nosuchname"),
        ("inputs.parameters.missing", UndefinedVariableError, "inputs.parameters.missing"),
        ("asInt(inputs.parameters.missing)", UndefinedVariableError, "inputs.parameters.missing"),
        ("inputs.parameters.missing + 1", UndefinedVariableError, "inputs.parameters.missing"),
        ("m.nil.x", ExpressionError, "from nil"),
        ("asInt('abc')", ExpressionError, "int"),
        ("asInt('4.0')", ExpressionError, "int"),
        ("asFloat('x')", ExpressionError, "float"),
        ("1 / 0", ExpressionError, "division by zero"),
        ("1 % 0", ExpressionError, "divide by zero"),
        ("1.5 % 1", ExpressionError, "integers"),
        ("'a' + 1", ExpressionError, "invalid operation"),
        ("'a' * 3", ExpressionError, "invalid operation"),
        ("1 < 'a'", ExpressionError, "mismatched"),
        ("1 && true", ExpressionError, "bool"),
        ("nums[5]", ExpressionError, "out of range"),
        ("nums['a']", ExpressionError, "cannot fetch"),
        ("sprig.env('HOME')", ExpressionError, "unknown function sprig.env"),
        ("sprig.expandenv('$HOME')", ExpressionError, "unknown function"),
        ("sprig.getHostByName('example.com')", ExpressionError, "unknown function"),
        ("env('HOME')", ExpressionError, "unknown name"),
        ("len(1)", ExpressionError, "len"),
        ("upper(1)", ExpressionError, "string"),
        ("1 +", ExpressionError, "end of expression"),
        ("(1", ExpressionError, "expected"),
        ("'abc", ExpressionError, "unclosed"),
        ("#", ExpressionError, "closure"),
        ("1 ? 2 : 3", ExpressionError, "bool"),
        ("jsonpath('not json', '$.a')", ExpressionError, "invalid JSON"),
        ("jsonpath('{\"a\": 1}', '$.b')", ExpressionError, "not found"),
        ("jsonpath('{}', 'a')", ExpressionError, "start with"),
        ("9223372036854775807 + 1", ExpressionError, "overflow"),
        ("99999999999999999999", ExpressionError, "int64"),
        ("10.0 ** 400", ExpressionError, "range"),
        ("filter(1, # > 1)", ExpressionError, "array"),
        ("filter(nums, # + 1)", ExpressionError, "bool"),
        ("nums.foo", ExpressionError, "cannot fetch"),
        ("'x'.y", ExpressionError, "cannot fetch"),
        ("inputs()", ExpressionError, "not a function"),
        ("sprig", ExpressionError, "function"),
    ],
)
def test_expr_errors(source, error, message):
    with pytest.raises(error, match=message):
        evaluate(source, ENV)


def test_missing_member_equality_is_false_like_expr():
    assert evaluate("steps.nope.outputs.result == 'x'", ENV) is False
    assert evaluate("steps.nope.outputs.result != 'x'", ENV) is True


def test_flat_env_is_expanded_like_argo():
    flat = {"inputs.parameters.a-b": "1", "tasks.t-1.outputs.result": "r", "item": "x"}
    assert evaluate("inputs.parameters['a-b'] + item", flat) == "1x"
    assert evaluate("tasks['t-1'].outputs.result", flat) == "r"
    env = build_env({"a": "short", "a.b": "long"})
    assert env["a"] == {"b": "long"}  # the less specific key is dropped


def test_format_result_prints_like_go_json():
    assert format_result("s") == "s"
    assert format_result(20) == "20"
    assert format_result(20.0) == "20"
    assert format_result(35.8) == "35.8"
    assert format_result(1e21) == "1e+21"
    assert format_result(True) == "true"
    assert format_result([3]) == "[3]"
    assert format_result({"b": 1, "a": "<"}) == '{"a":"\\u003c","b":1}'
    with pytest.raises(ExpressionError):
        format_result(None)


def test_time_and_duration():
    env = {"cronworkflow": {"lastScheduledTime": dt.datetime.now(dt.UTC) - dt.timedelta(minutes=10)}}
    source = "cronworkflow.lastScheduledTime == nil || (now() - cronworkflow.lastScheduledTime).Seconds() > 360"
    assert evaluate(source, env) is True
    env["cronworkflow"]["lastScheduledTime"] = dt.datetime.now(dt.UTC)
    assert evaluate(source, env) is False
    assert evaluate(source, {"cronworkflow": {"lastScheduledTime": None}}) is True
    assert evaluate("duration('1h30m').Minutes()", {}) == 90.0
    with pytest.raises(ExpressionError):
        evaluate("now().__class__", {})


def test_referenced_names():
    assert expr.referenced_names("asInt(inputs.parameters.foo) + len(tasks['a-b'].outputs.result)") == {
        "inputs.parameters.foo",
        "tasks.a-b.outputs.result",
    }
    assert expr.referenced_names("map(items.list, #.x)") == {"items.list"}
    assert expr.referenced_names("nums[i].x") == {"nums", "i"}


# -- every `when` and `{{= }}` in Argo's examples -------------------------------------------

_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

PLAUSIBLE = {
    "result": "heads",
    "status": "Succeeded",
    "approve": "YES",
    "should-print": "true",
    "num": "5",
    "num-1": "4",
    "limit": "10",
    "evenness": "even",
    "foo": "3",
    "safe-to-retry": "true",
}


def _value_for(name: str) -> str:
    if "counter" in name:
        return "7"
    return PLAUSIBLE.get(name.split(".")[-1], "value")


def _ctx_for(text: str) -> dict:
    ctx = {
        "workflow.parameters.json": '[{"name": "x", "value": "true"}]',
        "workflow.parameters.config": '{"employees": [{"name": "Baris", "age": 43}, {"name": "Mo", "age": 42}],'
        ' "a": 1, "b": "two", "c": [3]}',
        "workflow.parameters.weather": '{"weekWeather": "eyJ0ZW1wcyI6IFszNCwgMjcsIDE1LCA1NywgNDZdfQo="}',
        "workflow.creationTimestamp": "2024-01-02T03:04:05Z",
        "workflow.status": "Succeeded",
        "workflow.parameters.foo": "bar",
        "inputs.parameters.week-temps": '{"avg": 35.8, "min": 15, "max": 57}',
        "steps.flip-coin.outputs.result": "heads",
        "steps.heads.outputs.result": "H",
        "steps.tails.outputs.result": "T",
        "tasks.flip-coin.outputs.result": "tails",
        "tasks.heads.outputs.result": "H",
        "tasks.tails.outputs.result": "T",
        "steps.step-1.status": "Running",
        "steps.step2.status": "Succeeded",
        "tasks.producer.outputs.parameters.msg": None,
        "item": "3",
        "lastRetry.exitCode": "2",
        "lastRetry.status": "Failed",
        "lastRetry.duration": "30",
        "lastRetry.message": "pod deleted",
        "steps.fibonacci-helper.outputs.parameters.result": "8",
        "inputs.parameters.num": "5",
        "cronworkflow.lastScheduledTime": dt.datetime(2024, 1, 1, tzinfo=dt.UTC),
    }
    for tag in find_tags(text):
        if tag.kind == "simple" and tag.name not in ctx:
            ctx[tag.name] = _value_for(tag.name)
    return ctx


def _collect(node, key_filter):
    if isinstance(node, dict):
        for k, v in node.items():
            if isinstance(v, str) and key_filter(k, v):
                yield k, v
            else:
                yield from _collect(v, key_filter)
    elif isinstance(node, list):
        for v in node:
            yield from _collect(v, key_filter)


@functools.lru_cache(maxsize=1)
def _example_docs(argo_dir: Path) -> list[tuple[str, dict]]:
    docs = []
    for path in sorted((argo_dir / "examples").rglob("*.yaml")):
        text = path.read_text()
        if "when" not in text and "{{=" not in text and "expression" not in text:
            continue
        docs.extend((path.name, doc) for doc in yaml.load_all(text, Loader=_LOADER) if doc)
    return docs


def test_every_when_in_argo_examples(argo_dir):
    seen = 0
    for name, doc in _example_docs(argo_dir):
        for _, when in _collect(doc, lambda k, v: k == "when"):
            text = substitute(when, _ctx_for(when))
            assert isinstance(evaluate_when(text), bool), (name, when, text)
            seen += 1
    assert seen >= 30


def test_every_expression_tag_in_argo_examples(argo_dir):
    seen = 0
    for name, doc in _example_docs(argo_dir):
        for _, text in _collect(doc, lambda k, v: "{{=" in v):
            out = substitute(text, _ctx_for(text))
            assert "{{=" not in out, (name, text, out)
            seen += 1
    assert seen >= 15


def test_every_expression_field_in_argo_examples(argo_dir):
    seen = 0
    for name, doc in _example_docs(argo_dir):
        for _, source in _collect(doc, lambda k, v: k == "expression"):
            source = substitute(source, _ctx_for(source))
            env = build_env(_ctx_for(source))
            env["data"] = ["logs/main.log", "x.txt"]
            env["workflow"]["status"] = "Running"
            result = evaluate(source, env)
            assert result is not None, (name, source)
            seen += 1
    assert seen >= 10


@pytest.mark.parametrize(
    "source, expected",
    [
        (
            (
                "{{=asInt(inputs.parameters.num) == 1? 1: asInt(inputs.parameters.num) == 2? 1: "
                "steps['fibonacci-helper'].outputs.parameters.result}}"
            ),
            "8",
        ),
        ("{{=jsonpath(workflow.parameters.config, '$.employees[?(@.name==\"Baris\")].age')}}", "[43]"),
        ("{{=jsonpath(workflow.parameters.config, '$.employees[?(@.age>42 && @.age<44)].age')}}", "[43]"),
        ("{{=jsonpath(workflow.parameters.config, '$.employees[0:1]')}}", '[{"age":43,"name":"Baris"}]'),
        ("{{=jsonpath(workflow.parameters.config, '$.employees[*].name')}}", '["Baris","Mo"]'),
        ("{{=jsonpath(workflow.parameters.config, '$.a')}}", "1"),
        ("{{=jsonpath(workflow.parameters.config, '$.b')}}", "two"),
        ("{{=jsonpath(workflow.parameters.config, '$.c')}}", "[3]"),
        ("{{=tasks.producer.outputs.parameters.msg ?? 'expr-fallback'}}", "expr-fallback"),
        ("{{=workflow.parameters.foo}}", "bar"),
        (
            (
                "{{=\n  map([\n jsonpath(sprig.b64dec(jsonpath(workflow.parameters.weather, '$.weekWeather')), '$.temps')\n"
                "  ], {\n toJson({\n avg: sprig.add(#[0], #[1], #[2], #[3], #[4]) / 5,\n"
                " min: sprig.min(#[0], #[1], #[2], #[3], #[4]),\n max: sprig.max(#[0], #[1], #[2], #[3], #[4])\n })\n })[0]\n}}"
            ),
            '{"avg":35.8,"max":57,"min":15}',
        ),
    ],
)
def test_example_expression_values(source, expected):
    assert substitute(source, _ctx_for(source)) == expected


def test_sprig_date_of_a_string_formats_now_like_sprig():
    # sprig.date only understands time values; for a string it formats time.Now()
    year = str(dt.datetime.now().year)
    assert substitute("{{=sprig.date('2006', workflow.creationTimestamp)}}", _ctx_for("")) in (year, str(int(year) + 1))


def test_nan_and_infinity_are_refused():
    with pytest.raises(ExpressionError):
        evaluate("float('inf') * 1", {})
    assert math.isinf(evaluate("float('inf')", {}))


def test_injected_clock():
    fixed = dt.datetime(2030, 6, 1, 12, 0, tzinfo=dt.UTC)
    with expr.use_clock(lambda: fixed):
        assert evaluate("now()", {}) == fixed
        assert evaluate("sprig.date('2006-01-02', 'not a time')", {}) == fixed.astimezone().strftime("%Y-%m-%d")
        env = {"cronworkflow": {"lastScheduledTime": fixed - dt.timedelta(seconds=400)}}
        assert evaluate("(now() - cronworkflow.lastScheduledTime).Seconds()", env) == 400.0
    assert evaluate("now()", {}).year >= 2024


# Argo's own ShouldExecute table (workflow/controller dag tests), verbatim
ARGO_TRUE = ["foo == foo", "'ref/branch/master' == 'ref/branch/master'", "foo != bar", "1 == 1", "1 != 2", "1 < 2",
             "1 <= 1", "1/2 == 0.5", "a < b", "(foo == bar) || (foo == foo)", "(1 > 0) && (1 < 2)",
             "Error in (Failed, Error)", "!(Succeeded in (Failed, Error))", "true == true",
             "even == even", "even == 'even'", "odd != even", ""]
ARGO_FALSE = ["foo != foo", "'ref/branch/master' != 'ref/branch/master'", "foo == bar", "1 != 1", "1 == 2", "1 > 2",
              "1 <= 0", "1/2 != 0.5", "a > b", "(foo == bar) || (bar == foo)", "(1 > 0) && (11 < 2)",
              "Succeeded in (Failed, Error)", "!(Error in (Failed, Error))", "false == true", "odd == even"]


@pytest.mark.parametrize("when", ARGO_TRUE)
def test_argo_should_execute_true(when):
    assert evaluate_when(when) is True


@pytest.mark.parametrize("when", ARGO_FALSE)
def test_argo_should_execute_false(when):
    assert evaluate_when(when) is False


def test_argo_invalid_when_hint():
    with pytest.raises(ExpressionError, match=r'\(hint: try wrapping the affected expression in quotes \("\)\)'):
        evaluate_when("heads == @tails")
