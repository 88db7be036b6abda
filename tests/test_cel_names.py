"""CEL expressions may call only the functions the CEL runtime has and read only the variables
they are given; the hand-written list of functions is proved against the runtime itself."""

from __future__ import annotations

import cel
import pytest
from cel.stdlib import STDLIB_FUNCTIONS

from agent.errors import VersionSpecError
from agent.mediation.cel_names import (
    CEL_FUNCTIONS,
    OUTPUT_CHECK_VARIABLES,
    RULE_VARIABLES,
    check_functions,
    check_variables,
)
from agent.mediation.policy import compile_expression

T = 'timestamp("2026-03-01T09:30:00Z")'
# One expression per listed name that evaluates to true in a plain cel.Context, which is how
# Steward evaluates conditions and output checks.
USES = {
    "has": 'has({"a": 1}.a)',
    "size": 'size("ab") == 2',
    "contains": '"abc".contains("b")',
    "startsWith": '"abc".startsWith("a")',
    "endsWith": '"abc".endsWith("c")',
    "matches": '"C-1002".matches("^C-[0-9]{4}$")',
    "all": "[1, 2].all(x, x > 0)",
    "exists": "[1, 2].exists(x, x == 2)",
    "exists_one": "[1, 2].exists_one(x, x == 2)",
    "map": "[1, 2].map(x, x * 2) == [2, 4]",
    "filter": "[1, 2].filter(x, x > 1) == [2]",
    "int": 'int("3") == 3',
    "uint": "uint(3) == 3u",
    "double": "double(1) == 1.0",
    "string": 'string(1) == "1"',
    "bytes": 'bytes("a") == b"a"',
    "dyn": "dyn(1) == 1",
    "type": "type(1) == int",
    "timestamp": f"{T} > timestamp('2026-01-01T00:00:00Z')",
    "duration": 'duration("90s") > duration("1m")',
    "getFullYear": f"{T}.getFullYear() == 2026",
    "getMonth": f"{T}.getMonth() == 2",
    "getDayOfYear": f"{T}.getDayOfYear() == 59",
    "getDayOfMonth": f"{T}.getDayOfMonth() == 0",
    "getDate": f"{T}.getDate() == 1",
    "getDayOfWeek": f"{T}.getDayOfWeek() == 0",
    "getHours": f"{T}.getHours() == 9",
    "getMinutes": f"{T}.getMinutes() == 30",
    "getSeconds": f"{T}.getSeconds() == 0",
    "getMilliseconds": f"{T}.getMilliseconds() == 0",
    "optional.of": "optional.of(1).hasValue()",
    "optional.none": "!optional.none().hasValue()",
    "hasValue": "optional.of(1).hasValue()",
    "value": "optional.of(1).value() == 1",
    "orValue": "optional.none().orValue(2) == 2",
    "or": "optional.none().or(optional.of(3)).value() == 3",
}


def _check_rule(expression: str) -> None:
    program = cel.compile(expression)
    check_functions(program, what="condition")
    check_variables(program, what="condition", allowed=RULE_VARIABLES)


def test_every_listed_function_is_in_the_runtime() -> None:
    assert set(USES) == set(CEL_FUNCTIONS)
    for name, expression in USES.items():
        assert cel.evaluate(expression, cel.Context()) is True, name
        check_functions(cel.compile(expression), what="check")  # and the check accepts it


@pytest.mark.parametrize("name", sorted(set(STDLIB_FUNCTIONS) - set(CEL_FUNCTIONS)))
def test_the_python_extensions_are_not_listed_because_steward_does_not_load_them(
    name: str,
) -> None:
    expression = f'{name}("a")'
    with pytest.raises(RuntimeError, match="Undefined variable or function"):
        cel.evaluate(expression, cel.Context())
    # A namespaced one (sets.contains) reads as the variable "sets" calling a known function,
    # so it is the variable check that refuses it.
    with pytest.raises(VersionSpecError, match=r"unknown (function|variable)"):
        _check_rule(expression)


@pytest.mark.parametrize(
    ("expression", "unknown"),
    [
        pytest.param("foo(args.amount)", "foo", id="global"),
        pytest.param('args.email.lowerAscii() == "a"', "lowerAscii", id="receiver"),
        pytest.param("max(args.amount, 3) > 2", "max", id="not-in-this-runtime"),
        pytest.param("[1].all(x, x > 0) && args.tags.size() > 0 && bar()", "bar", id="late"),
    ],
)
def test_an_unknown_function_is_refused_naming_it_and_the_known_ones(
    expression: str, unknown: str
) -> None:
    with pytest.raises(VersionSpecError) as caught:
        compile_expression(expression, what="condition", rule_id="refund-small")
    message = str(caught.value)
    assert message.startswith(f"rule 'refund-small': condition calls unknown function {unknown!r};")
    assert "CEL functions: has, size, contains, startsWith, endsWith, matches," in message
    assert caught.value.rule_id == "refund-small"


def test_a_macro_in_a_form_cel_does_not_expand_says_how_to_write_it() -> None:
    with pytest.raises(VersionSpecError, match=r"uses 'exists' in a form CEL does not expand"):
        compile_expression("exists(args.tags)", what="condition")
    with pytest.raises(VersionSpecError, match=r"write list\.all\(x, predicate\)"):
        compile_expression("args.grants.all(k, v, v)", what="condition")


def test_operators_and_known_functions_compile() -> None:
    expression = (
        'args.amount > 10.0 && args.id in ["a"] && !has(args.note) && args.to != facts.email'
        ' && args["x"] == 1 ? size(args.tags) >= 0 : args.email.matches("@example\\\\.com$")'
    )
    compile_expression(expression, what="condition")


@pytest.mark.parametrize(
    "expression",
    [
        "args.amount <= 100.0 && facts.refunds_today < 3",
        "run.calls.pay < 2 && agent.version > 1 && task.customer_id == args.customer_id",
        "counters.refunds < 5",
        "args.tags.all(tag, tag.size() < 20) && args.items.exists(item, item.qty > 1)",
        "args.items.map(i, i.qty).filter(q, q > 1).size() == 0",
        "type(args.amount) == double || type(args.amount) == int",
        "optional.of(args.amount).hasValue()",
    ],
)
def test_rule_variables_binders_type_names_and_namespaces_are_known(expression: str) -> None:
    check_variables(cel.compile(expression), what="condition", allowed=RULE_VARIABLES)


@pytest.mark.parametrize(
    ("expression", "allowed", "unknown"),
    [
        pytest.param("argz.amount > 1.0", RULE_VARIABLES, "argz", id="typo"),
        pytest.param("output.total > 1.0", RULE_VARIABLES, "output", id="output-in-a-rule"),
        pytest.param("args.amount > 1.0", OUTPUT_CHECK_VARIABLES, "args", id="args-in-a-check"),
        pytest.param("amount > 1.0", RULE_VARIABLES, "amount", id="bare-field"),
    ],
)
def test_an_unknown_variable_is_refused_naming_what_may_be_read(
    expression: str, allowed: tuple[str, ...], unknown: str
) -> None:
    with pytest.raises(VersionSpecError) as caught:
        check_variables(cel.compile(expression), what="condition", allowed=allowed)
    assert str(caught.value) == (
        f"condition reads unknown variable {unknown!r}; it may read {', '.join(allowed)}."
    )
