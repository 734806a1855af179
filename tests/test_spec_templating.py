"""Template tags: finding, checking and substituting ``{{...}}`` as Argo does."""

from __future__ import annotations

import pytest

from chute.errors import ExpressionError, Issue
from chute.spec import templating
from chute.spec.expr import UndefinedVariableError
from chute.spec.templating import (
    Tag,
    check_tags,
    find_tags,
    referenced_variables,
    substitute,
    substitute_all,
)

CTX = {
    "inputs.parameters.message": "hello world",
    "inputs.parameters.foo": "2",
    "inputs.parameters.should-print": "true",
    "inputs.parameters.week-temps": '{"avg": 35.8, "min": 15, "max": 57}',
    "workflow.name": "wf-abc",
    "workflow.parameters.json": '[{"name": "x", "value": "true"}]',
    "steps.flip-coin.outputs.result": "heads",
    "steps.heads.outputs.result": "it was heads",
    "steps.tails.outputs.result": "it was tails",
    "tasks.a-b.outputs.result": "AB",
    "item": "3",
}


def test_find_tags_kinds_and_offsets():
    text = "a {{x}} b {{=1 + 1}} c {{ y }}"
    assert find_tags(text) == [
        Tag("simple", "x", 2, 7),
        Tag("expression", "1 + 1", 10, 20),
        Tag("simple", " y ", 23, 30),
    ]
    assert find_tags(text)[2].name == "y"
    assert find_tags("no tags here") == []


def test_tag_ends_at_first_closing_braces():
    # fasttemplate semantics: no nesting, the first "}}" closes
    assert find_tags("{{a {{b}} c}}") == [Tag("simple", "a {{b", 0, 9)]


def test_space_before_equals_makes_a_simple_tag():
    assert find_tags("{{ =x}}")[0].kind == "simple"


@pytest.mark.parametrize(
    "text, expected",
    [
        ("echo {{inputs.parameters.message}}", "echo hello world"),
        ("{{ inputs.parameters.message }}", "hello world"),
        ("{{workflow.name}}-{{item}}", "wf-abc-3"),
        ("no tags", "no tags"),
        ("{{=asInt(inputs.parameters.foo) * 10}}", "20"),
        ("{{=toJson(filter([1, 3], {# > 1}))}}", "[3]"),
        ("{{=item}}", "3"),
        ("{{= inputs.parameters[\"should-print\"] == 'true'}}", "true"),
        ("{{=jsonpath(workflow.parameters.json, '$[0].value') == 'true'}}", "true"),
        ("{{=jsonpath(inputs.parameters['week-temps'], '$.avg')}}", "35.8"),
        ("{{=jsonpath(inputs.parameters['week-temps'], '$.max')}}", "57"),
        ("{{=steps['flip-coin'].outputs.result == 'heads' ? steps.heads.outputs.result : steps.tails.outputs.result}}",
         "it was heads"),
        ("{{=tasks['a-b'].outputs.result}}", "AB"),
        ("{{=sprig.upper(workflow.name)}}", "WF-ABC"),
        ("{{={'b': 1, 'a': [true, nil]} }}", '{"a":[true,null],"b":1}'),
        ("x{{=1 / 4}}y", "x0.25y"),
    ],
)
def test_substitute_table(text, expected):
    assert substitute(text, CTX) == expected


def test_values_are_data_and_never_rescanned():
    # CVE-2021-37914: a parameter value containing a tag must come out literally
    ctx = {"inputs.parameters.evil": "{{workflow.name}} {{=sprig.upper('x')}}", "workflow.name": "SECRET"}
    assert substitute("v={{inputs.parameters.evil}}", ctx) == "v={{workflow.name}} {{=sprig.upper('x')}}"
    # and the same through an expression result
    assert substitute("{{=inputs.parameters.evil}}", ctx) == "{{workflow.name}} {{=sprig.upper('x')}}"


def test_special_characters_inserted_verbatim():
    ctx = {"p": 'line1\nline2 "quoted" \\ <b>&'}
    assert substitute("{{p}}", ctx) == ctx["p"]


def test_strict_names_the_unresolved_variable():
    with pytest.raises(UndefinedVariableError) as e:
        substitute("echo {{inputs.parameters.missing}}", CTX)
    assert e.value.name == "inputs.parameters.missing"
    assert "inputs.parameters.missing" in str(e.value)
    with pytest.raises(UndefinedVariableError) as e:
        substitute("{{=asInt(steps.nothere.outputs.result)}}", CTX)
    assert "steps.nothere" in str(e.value)
    with pytest.raises(UndefinedVariableError) as e:
        substitute("{{=nosuchname + 1}}", CTX)
    assert e.value.name == "nosuchname"


def test_non_strict_leaves_unknown_tags_as_written():
    text = "{{inputs.parameters.message}} {{ tasks.later.outputs.result }} {{=retries + 1}} {{=asInt('x')}}"
    assert substitute(text, CTX, strict=False) == (
        "hello world {{ tasks.later.outputs.result }} {{=retries + 1}} {{=asInt('x')}}"
    )


def test_expression_errors_in_strict_mode():
    with pytest.raises(ExpressionError, match="asInt|int"):
        substitute("{{=asInt('abc')}}", CTX)
    with pytest.raises(ExpressionError):
        substitute("{{=1 +}}", CTX)
    with pytest.raises(ExpressionError, match="nil"):
        substitute("{{=nil}}", CTX)


def test_unclosed_tag_is_an_error_in_both_modes():
    for strict in (True, False):
        with pytest.raises(ExpressionError, match="unclosed"):
            substitute("echo {{inputs.parameters.message", CTX, strict=strict)


def test_dashed_name_without_brackets_fails_like_argo():
    # expr parses steps.flip-coin as steps.flip - coin
    with pytest.raises(ExpressionError):
        substitute("{{=steps.flip-coin.outputs.result}}", CTX)


def test_less_specific_key_is_dropped_in_expression_env():
    ctx = {"workflow.parameters": '{"x": 1}', "workflow.parameters.x": "1"}
    assert substitute("{{=workflow.parameters.x}}", ctx) == "1"
    # the simple tag still sees both keys
    assert substitute("{{workflow.parameters}}", ctx) == '{"x": 1}'


def test_nested_tag_rule():
    assert substitute("{{a {{item}}", CTX) == "{{a 3"


@pytest.mark.parametrize(
    "text, messages",
    [
        ("fine {{x}} {{=1+1}}", []),
        ("{{}}", ["empty template tag"]),
        ("{{   }}", ["empty template tag"]),
        ("{{=}}", ["empty expression tag"]),
        ("{{=1 +}}", ["invalid expression"]),
        ("{{=a ? b}}", ["invalid expression"]),
        ("a {{x", ["unclosed template tag"]),
        ("{{=(}} and {{y", ["invalid expression", "unclosed template tag"]),
    ],
)
def test_check_tags(text, messages):
    issues = check_tags(text, "spec.templates[0].container.args[0]")
    assert [m for m in messages] == [next(m for m in messages if m in i.message) for i in issues]
    assert all(isinstance(i, Issue) and i.path == "spec.templates[0].container.args[0]" for i in issues)


def test_referenced_variables():
    text = (
        "{{inputs.parameters.a}} {{ workflow.name }} "
        "{{=asInt(inputs.parameters.foo) + len(steps['flip-coin'].outputs.result)}} "
        "{{=filter(inputs.parameters.list, {# > 1})}} {{=sprig.trim(item)}} {{=(}}"
    )
    assert referenced_variables(text) == {
        "inputs.parameters.a",
        "workflow.name",
        "inputs.parameters.foo",
        "steps.flip-coin.outputs.result",
        "inputs.parameters.list",
        "item",
    }


def test_substitute_all_walks_structures_without_mutating():
    template = {
        "name": "t",
        "container": {"args": ["{{inputs.parameters.message}}", "{{=asInt(item) + 1}}"], "image": "busybox"},
        "labels": {"{{workflow.name}}": "{{item}}"},
        "n": 3,
        "flag": True,
    }
    out = substitute_all(template, CTX)
    assert out == {
        "name": "t",
        "container": {"args": ["hello world", "4"], "image": "busybox"},
        "labels": {"wf-abc": "3"},
        "n": 3,
        "flag": True,
    }
    assert template["container"]["args"][0] == "{{inputs.parameters.message}}"
    partial = substitute_all({"a": ["{{x}}", "{{item}}"]}, CTX, strict=False)
    assert partial == {"a": ["{{x}}", "3"]}


def test_has_tags():
    assert templating.has_tags("a {{b}}")
    assert not templating.has_tags("a { b }")


def test_closing_braces_inside_an_expression_end_the_tag():
    # "{{={'b': 1}}}" is the tag "{'b': 1" followed by "}", as in Argo
    with pytest.raises(ExpressionError):
        substitute("{{={'b': 1}}}", CTX)
    assert substitute("{{={'b': 1}}}", CTX, strict=False) == "{{={'b': 1}}}"


def test_non_strict_defers_expressions_reading_missing_variables():
    # a later phase knows tasks.producer; do not let `??` decide on incomplete data
    ctx = {"tasks.other.outputs.result": "x", "item": "1"}
    text = "{{=tasks.producer.outputs.parameters.msg ?? 'fallback'}}"
    assert substitute(text, ctx, strict=False) == text
    ctx["tasks.producer.outputs.parameters.msg"] = None
    assert substitute(text, ctx, strict=False) == "fallback"
    assert substitute(text, ctx) == "fallback"
    # structured and prefix keys count as present
    assert substitute("{{=len(inputs.parameters)}}", {"inputs.parameters.a": "1"}, strict=False) == "1"


# Cases from Argo's util/template/template_test.go (expected values as Argo asserts them)
EMPLOYEES = (
    '{"employees": [{"name": "Baris", "age":43, "friends": ["Mo", "Jai"]}, '
    '{"name": "Mo", "age": 42, "friends": ["Baris", "Jai"]}, {"name": "Jai", "age" :44, "friends": ["Baris", "Mo"]}]}'
)


@pytest.mark.parametrize(
    "text, expected",
    [
        ("{{='test'}}", "test"),
        ('{{="test"}}', "test"),
        ("{{='some\\\\path\\\\with\\\\backslashes'}}", "some\\path\\with\\backslashes"),
        ("{{='some\\nstring\\nwith\\nescaped\\nnewlines'}}", "some\nstring\nwith\nescaped\nnewlines"),
        ("{{=1 + \n1}}", "2"),
        ("{{=toJson('test')}}", '"test"'),
        ("{{=toJson({test: 1})}}", '{"test":1}'),
        ("{{=toJson([1, '2', {an: 'object'}])}}", '[1,"2",{"an":"object"}]'),
        ('{{="\'"}}', "'"),
        ("{{='\"'}}", '"'),
        ("{{=true == false}}", "false"),
        ("{{=jsonpath('" + EMPLOYEES + "', '$.employees[*].name')}}", '["Baris","Mo","Jai"]'),
        ("{{=jsonpath('" + EMPLOYEES + "', '$.employees[0].friends')}}", '["Mo","Jai"]'),
        ("{{=jsonpath('" + EMPLOYEES + "', '$.employees[0]')}}", '{"age":43,"friends":["Mo","Jai"],"name":"Baris"}'),
    ],
)
def test_argo_template_cases(text, expected):
    assert substitute(text, {}, strict=False) == expected


def test_argo_simple_quotes_and_nested_passes():
    assert substitute("{{customParam}}", {"customParam": "This is ' John"}) == "This is ' John"
    assert substitute("{{customParam}}", {"customParam": 'This is " John'}) == 'This is " John'
    ctx = {"inner": "suffix", "outer-suffix": "final-value"}
    pass1 = substitute("{{outer-{{inner}}}}", ctx, strict=False)
    assert pass1 == "{{outer-suffix}}"  # one pass resolves only the inner tag
    assert substitute(pass1, ctx, strict=False) == "final-value"
    ctx = {"C": "valC", "B valC": "valB", "A valB": "final"}
    text = "{{A {{B {{C}}}}}}"
    for expected in ("{{A {{B valC}}}}", "{{A valB}}", "final"):
        text = substitute(text, ctx, strict=False)
        assert text == expected
