"""
The connect-time token lookup as SQL built once per database connection: the ORM would
compile the same ``select_related`` query for every connect, which costs several times
what running it does. Every connect still reads the whole row and gets new objects.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.db import connections, router
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models.expressions import Col
from django.db.models.options import Options

from ..models import ApiToken

USER_FIELD = ApiToken._meta.get_field("user")


@dataclass(frozen=True)
class _Plan:
    """The statement and the ORM's column converters, for one database connection."""

    connection: BaseDatabaseWrapper
    sql: str
    #: (row position, column, converters) for every column the ORM converts.
    converters: tuple[tuple[int, Col, tuple[Callable[..., Any], ...]], ...]
    token_columns: int

    @classmethod
    def build(cls, connection: BaseDatabaseWrapper) -> _Plan:
        """Token columns, then user columns, in model field order (what ``from_db`` takes)."""
        quote = connection.ops.quote_name
        token, user = ApiToken._meta, USER_FIELD.related_model._meta

        def column(meta: Options, name: str) -> str:
            return f"{quote(meta.db_table)}.{quote(meta.get_field(name).column)}"

        fields = [(token, f) for f in token.concrete_fields] + [
            (user, f) for f in user.concrete_fields
        ]
        sql = (
            f"SELECT {', '.join(column(meta, f.name) for meta, f in fields)}"
            f" FROM {quote(token.db_table)} INNER JOIN {quote(user.db_table)}"
            f" ON {column(token, 'user')} = {column(user, user.pk.name)}"
            f" WHERE {column(token, 'key_hash')} = %s AND {column(token, 'revoked_at')} IS NULL"
        )
        converters = []
        for position, (meta, field) in enumerate(fields):
            col = field.get_col(meta.db_table)
            found = connection.ops.get_db_converters(col) + col.get_db_converters(connection)
            if found:
                converters.append((position, col, tuple(found)))
        return cls(connection, sql, tuple(converters), len(token.concrete_fields))

    def token(self, alias: str, row: tuple[Any, ...]) -> ApiToken:
        """A new token with its user from one row, values converted as the ORM does."""
        values = list(row)
        for position, col, found in self.converters:
            for converter in found:
                values[position] = converter(values[position], col, self.connection)
        token = ApiToken.from_db(alias, None, values[: self.token_columns])
        user = USER_FIELD.related_model.from_db(alias, None, values[self.token_columns :])
        USER_FIELD.set_cached_value(token, user)
        return token


_plan: _Plan | None = None


def unrevoked_token(key_hash: str) -> ApiToken | None:
    """
    The unrevoked token with this hash, its user loaded, read from the database now
    (blocking: for the database thread); ``None`` if there is none. Whether the user is
    active is the caller's to check.
    """
    global _plan
    alias = router.db_for_read(ApiToken)
    connection = connections[alias]
    plan = _plan
    if plan is None or plan.connection is not connection:
        # Its converters are bound to a connection, which is per thread.
        plan = _plan = _Plan.build(connection)
    with connection.cursor() as cursor:
        cursor.execute(plan.sql, [key_hash])
        row = cursor.fetchone()
    return None if row is None else plan.token(alias, row)
