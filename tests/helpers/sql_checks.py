"""Static checks of the SQL the service issues, on PostgreSQL's own parse trees (pglast, libpg_query).

`unpinned_accesses`: the table accesses in a statement that are not pinned to one value of the table's
distribution column. This is the property Citus needs for a statement to run on one shard: every distributed table it reads
or writes is restricted, by an equality in its WHERE (or JOIN ... ON), to one value of the table's
distribution column. A table access is *pinned* when its distribution column is compared with `=` to
a constant, a query parameter, one of the given names (a plpgsql function's distribution argument), or
the distribution column of a table already pinned in the same or an enclosing query (a colocated
join, as in a correlated subquery). Only equalities joined by AND count: an OR could reach two shards.

`plpgsql_statements` splits a plpgsql function into its statements, so its body can be checked too.

`session_state`: what a statement would leave behind on its connection after the transaction ends,
which PgBouncer's transaction pooling would hand to another client (or lose).

`first_arguments`: the first argument of each call of the given functions (their distribution argument).
"""

from __future__ import annotations

from collections.abc import Iterator

from pglast import ast, parse_plpgsql, parse_sql
from pglast.enums import A_Expr_Kind, BoolExprType

PLPGSQL_SQL_STATEMENT = 0  # parseMode of an embedded SQL statement; the others are expressions


def unpinned_accesses(sql: str, keys: dict[str, str], pins: frozenset[str] = frozenset()) -> list[str]:
    """The distributed tables (named in `keys`, with their distribution columns) `sql` reaches unpinned."""
    found: list[str] = []
    for raw in parse_sql(sql):
        _check_query(raw.stmt, keys, pins, {}, found)
    return found


def plpgsql_statements(function_definition: str) -> list[str]:
    """Every SQL statement and expression in a plpgsql function, as SQL that parses on its own."""
    return [_as_sql(expr) for expr in _plpgsql_expressions(parse_plpgsql(function_definition))]


def _as_sql(expr: dict) -> str:
    query = expr["query"]
    if expr.get("parseMode", PLPGSQL_SQL_STATEMENT) == PLPGSQL_SQL_STATEMENT:
        return query
    return "SELECT " + query.split(":=", 1)[-1]  # an expression, or an assignment's right-hand side


def _plpgsql_expressions(tree) -> Iterator[dict]:
    if isinstance(tree, dict):
        if "PLpgSQL_expr" in tree:
            yield tree["PLpgSQL_expr"]
        for value in tree.values():
            yield from _plpgsql_expressions(value)
    elif isinstance(tree, list):
        for item in tree:
            yield from _plpgsql_expressions(item)


def _check_query(stmt, keys, pins, outer_pinned: dict[str, str], found: list[str]) -> None:
    """Check one query level, then every query nested in it, which may lean on what this level pinned."""
    relations = _relations(stmt, keys)  # alias -> table
    pinned = _pin(relations, keys, _equalities(stmt), pins, outer_pinned)  # alias -> its distribution column
    if isinstance(stmt, ast.InsertStmt) and stmt.relation.relname in keys and not _insert_pinned(stmt, keys, pins):
        found.append(stmt.relation.relname)
    found.extend(table for alias, table in relations.items() if alias not in pinned)
    for nested in _nested_queries(stmt):
        _check_query(nested, keys, pins, pinned, found)


def _relations(stmt, keys) -> dict[str, str]:
    """The distributed tables this query level names (not those of its subqueries), by alias."""
    nodes = list(getattr(stmt, "fromClause", None) or ()) + list(getattr(stmt, "usingClause", None) or ())
    if isinstance(stmt, (ast.UpdateStmt, ast.DeleteStmt)):
        nodes.append(stmt.relation)
    relations = {}
    for node in _flatten_joins(nodes):
        if isinstance(node, ast.RangeVar) and node.relname in keys:
            relations[node.alias.aliasname if node.alias else node.relname] = node.relname
    return relations


def _flatten_joins(nodes) -> Iterator:
    for node in nodes:
        if isinstance(node, ast.JoinExpr):
            yield from _flatten_joins([node.larg, node.rarg])
        else:
            yield node


def _equalities(stmt) -> list[tuple]:
    """`a = b` pairs ANDed into this level's WHERE and JOIN ... ON conditions."""
    conditions = [getattr(stmt, "whereClause", None)]
    conditions += [node.quals for node in _join_exprs(getattr(stmt, "fromClause", None) or ())]
    return [pair for condition in conditions for pair in _anded_equalities(condition)]


def _join_exprs(nodes) -> Iterator[ast.JoinExpr]:
    for node in nodes:
        if isinstance(node, ast.JoinExpr):
            yield node
            yield from _join_exprs([node.larg, node.rarg])


def _anded_equalities(node) -> Iterator[tuple]:
    if isinstance(node, ast.BoolExpr) and node.boolop == BoolExprType.AND_EXPR:
        for arg in node.args:
            yield from _anded_equalities(arg)
    elif isinstance(node, ast.A_Expr) and node.kind == A_Expr_Kind.AEXPR_OP and _operator(node) == "=":
        yield node.lexpr, node.rexpr


def _operator(node: ast.A_Expr) -> str:
    return node.name[-1].sval


def _pin(relations, keys, equalities, pins, outer_pinned: dict[str, str]) -> dict[str, str]:
    """The outer query's pinned aliases and this level's, growing until no equality pins another."""
    pinned = dict(outer_pinned)
    changed = True
    while changed:
        changed = False
        for alias, table in relations.items():
            if alias not in pinned and _pinned_by(alias, keys[table], equalities, relations, pins, pinned):
                pinned[alias] = keys[table]
                changed = True
    return pinned


def _pinned_by(alias, key, equalities, relations, pins, pinned) -> bool:
    for left, right in equalities:
        for mine, other in ((left, right), (right, left)):
            if _names_column(mine, alias, key, relations) and _is_pin(other, pins, pinned):
                return True
    return False


def _names_column(node, alias: str, column: str, relations) -> bool:
    """Whether `node` is a reference to `alias`.`column` (unqualified only if the level names one table)."""
    path = _column_path(node)
    if path is None or path[-1] != column:
        return False
    return path[:-1] == (alias,) or (len(path) == 1 and len(relations) == 1)


def _is_pin(node, pins, pinned: dict[str, str]) -> bool:
    """A constant, a parameter, a pin name, or the distribution column of a table pinned already."""
    node = _uncast(node)
    if isinstance(node, (ast.A_Const, ast.ParamRef)):
        return True
    path = _column_path(node)
    if path is None:
        return False
    if len(path) == 1 and path[0] in pins:
        return True
    return len(path) == 2 and pinned.get(path[0]) == path[1]


def _uncast(node):
    """The value under any casts: `'...'::uuid::UUID` is a constant all the same."""
    while isinstance(node, ast.TypeCast):
        node = node.arg
    return node


def _column_path(node) -> tuple[str, ...] | None:
    if not isinstance(node, ast.ColumnRef) or not all(isinstance(f, ast.String) for f in node.fields):
        return None
    return tuple(field.sval for field in node.fields)


def _insert_pinned(stmt: ast.InsertStmt, keys, pins) -> bool:
    """An INSERT is pinned when the value it gives the distribution column is a pin, in every row."""
    columns = [target.name for target in stmt.cols or ()]
    key = keys[stmt.relation.relname]
    if key not in columns:
        return False
    index, select = columns.index(key), stmt.selectStmt
    rows = [list(row) for row in select.valuesLists] if select.valuesLists else [[t.val for t in select.targetList]]
    return all(_is_pin(row[index], pins, {}) for row in rows)


def _nested_queries(node) -> Iterator:
    """The queries directly nested in `node` (subqueries, CTEs, INSERT's SELECT), not deeper ones."""
    for child in _children(node):
        if isinstance(child, (ast.SelectStmt, ast.UpdateStmt, ast.DeleteStmt, ast.InsertStmt)):
            yield child
        else:
            yield from _nested_queries(child)


def _children(node) -> Iterator:
    if isinstance(node, ast.Node):
        yield from (getattr(node, slot) for slot in type(node).__slots__)
    elif isinstance(node, (list, tuple)):
        yield from node


def session_state(sql: str) -> list[str]:
    """What in `sql` outlives its transaction on the server connection: SET, PREPARE, LISTEN, ..."""
    found = []
    for node in _walk([raw.stmt for raw in parse_sql(sql)]):
        if isinstance(node, ast.VariableSetStmt) and not node.is_local:
            found.append(f"SET {node.name}")
        elif isinstance(node, (ast.PrepareStmt, ast.ListenStmt)):
            found.append(type(node).__name__)
        elif isinstance(node, ast.DeclareCursorStmt) and node.options & CURSOR_OPT_HOLD:
            found.append("DECLARE ... WITH HOLD")
        elif isinstance(node, ast.CreateStmt) and node.relation.relpersistence == "t":
            found.append(f"CREATE TEMP TABLE {node.relation.relname}")
        elif isinstance(node, ast.FuncCall) and _function_name(node) in SESSION_LOCKS:
            found.append(_function_name(node))
    return found


def first_arguments(sql: str, functions: set[str]) -> list[tuple[str, str | None]]:
    """(function, its first argument if a constant) for each call in `sql` of one of `functions`."""
    calls = [node for node in _walk([raw.stmt for raw in parse_sql(sql)]) if isinstance(node, ast.FuncCall)]
    return [(_function_name(call), _constant(call.args[0])) for call in calls if _function_name(call) in functions]


CURSOR_OPT_HOLD = 0x0020  # PostgreSQL's parsenodes.h
# Session-level advisory locks outlive the transaction; the pg_advisory_xact_* ones do not.
SESSION_LOCKS = {"pg_advisory_lock", "pg_advisory_lock_shared", "pg_try_advisory_lock", "pg_try_advisory_lock_shared"}


def _function_name(call: ast.FuncCall) -> str:
    return call.funcname[-1].sval


def _constant(node) -> str | None:
    node = _uncast(node)
    if isinstance(node, ast.A_Const) and isinstance(node.val, ast.String):
        return node.val.sval
    return None


def _walk(node) -> Iterator:
    """Every node in the tree, depth first."""
    if isinstance(node, ast.Node):
        yield node
    for child in _children(node):
        yield from _walk(child)
