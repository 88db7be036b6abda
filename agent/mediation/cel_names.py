"""The functions and variables a CEL expression may name, checked when the expression compiles.

The ``cel`` library (common-expression-language 0.10, on the Rust crate cel 0.14.5) compiles a
call to any function and fails only when it evaluates it (``Undefined variable or function:
'foo'``), so a misspelt function in a deny rule would pass ``versions create`` and then fail in
every run. The library parses the expression and reports the names it uses
(``Program.references()``), but not which functions its runtime provides. That list is therefore
written out by hand below, from the crate's default context (``cel/src/context.rs``) and the
macros its parser expands; Steward evaluates with a plain ``cel.Context``, so the Python
extensions of ``cel.stdlib`` (``charAt``, ``math.greatest``, ...) are not available and not
listed. ``tests/test_cel_names.py`` evaluates every listed name, so an upgrade of the library
that drops or renames one fails there.

The check is by name: a known function called with the wrong arguments still fails only when
evaluated, where a rule fails safe.
"""

from __future__ import annotations

import re
from collections.abc import Collection

import cel

from agent.errors import VersionSpecError

RULE_VARIABLES = ("args", "task", "run", "agent", "facts", "counters")
"""The variables a policy condition may read."""

OUTPUT_CHECK_VARIABLES = ("output", "task")
"""The variables an output check may read."""

# What a person may write, in the order the error message lists it.
CEL_FUNCTIONS = (
    "has",
    "size",
    "contains",
    "startsWith",
    "endsWith",
    "matches",
    "all",
    "exists",
    "exists_one",
    "map",
    "filter",
    "int",
    "uint",
    "double",
    "string",
    "bytes",
    "dyn",
    "type",
    "timestamp",
    "duration",
    "getFullYear",
    "getMonth",
    "getDayOfYear",
    "getDayOfMonth",
    "getDate",
    "getDayOfWeek",
    "getHours",
    "getMinutes",
    "getSeconds",
    "getMilliseconds",
    "optional.of",
    "optional.none",
    "hasValue",
    "value",
    "orValue",
    "or",
)

# The parser expands these into comprehensions, so they never reach the runtime as calls; one
# that does was written in a form the parser does not expand.
_MACROS = {
    "has": "has(a.field)",
    "all": "list.all(x, predicate)",
    "exists": "list.exists(x, predicate)",
    "exists_one": "list.exists_one(x, predicate)",
    "map": "list.map(x, expression)",
    "filter": "list.filter(x, predicate)",
}
# references() splits a namespaced call such as optional.of(x) into the variable "optional" and
# the function "of".
_NAMESPACES = {
    namespace: frozenset(n.split(".", 1)[1] for n in CEL_FUNCTIONS if n.startswith(f"{namespace}."))
    for namespace in ("optional",)
}
_FUNCTIONS = frozenset(n for n in CEL_FUNCTIONS if "." not in n and n not in _MACROS)
# Type values an expression may compare ``type(x)`` with.
_TYPE_NAMES = frozenset(
    {"bool", "bytes", "double", "int", "list", "map", "null_type", "string", "type", "uint"}
)
_NAMED = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# references() also lists the names a comprehension binds (the x of list.all(x, ...)).
_BINDER = re.compile(
    r"\.\s*(?:all|exists_one|exists|map|filter)\s*\(\s*([A-Za-z_][A-Za-z0-9_]*)\s*,"
)


def check_functions(program: cel.Program, *, what: str, rule_id: str | None = None) -> None:
    """Refuse an expression that calls a function CEL does not have.

    Args:
        program: the compiled expression.
        what: how the expression is named in the message (``condition``, ``output check 'x'``).
        rule_id: the policy rule the expression belongs to, if any.

    Raises:
        VersionSpecError: naming the unknown function and listing the known ones.
    """
    references = program.references()
    variables = set(references["variables"])
    for name in references["functions"]:
        # Operators come as overload ids such as _&&_ or @in; only named calls are checked.
        if not _NAMED.fullmatch(name) or name in _FUNCTIONS:
            continue
        if any(name in members and space in variables for space, members in _NAMESPACES.items()):
            continue
        if name in _MACROS:
            raise VersionSpecError(
                f"{what} uses {name!r} in a form CEL does not expand; write {_MACROS[name]}.",
                rule_id=rule_id,
            )
        raise VersionSpecError(
            f"{what} calls unknown function {name!r}; CEL functions: {', '.join(CEL_FUNCTIONS)}.",
            rule_id=rule_id,
        )


def check_variables(
    program: cel.Program, *, what: str, allowed: Collection[str], rule_id: str | None = None
) -> None:
    """Refuse an expression that reads a top-level variable it will never be given.

    Args:
        program: the compiled expression.
        what: how the expression is named in the message.
        allowed: the variables the expression is evaluated with (``RULE_VARIABLES`` or
            ``OUTPUT_CHECK_VARIABLES``).
        rule_id: the policy rule the expression belongs to, if any.

    Raises:
        VersionSpecError: naming the unknown variable and the ones it may read.
    """
    references = program.references()
    functions = set(references["functions"])
    bound = set(_BINDER.findall(program.source))
    for name in references["variables"]:
        if name in allowed or name in bound or name in _TYPE_NAMES:
            continue
        if name in _NAMESPACES and functions & _NAMESPACES[name]:
            continue
        raise VersionSpecError(
            f"{what} reads unknown variable {name!r}; it may read {', '.join(allowed)}.",
            rule_id=rule_id,
        )
