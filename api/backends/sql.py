"""The marts queried with SQL: one implementation of the snapshot interface for any engine
that runs Trino/DuckDB-compatible SQL with ``?`` placeholders (Athena in AWS; DuckDB in tests,
as a cross-check of the local Arrow twin).

Every client value is a bound parameter. The only values formatted into the text are the
page size (an int the server validated and computed) and table names from configuration.
Decimal and date parameters are passed as text and cast in SQL, so an engine that only takes
string literals (Athena's ExecutionParameters) binds them the same way. Date filters compare
``pa_date`` directly, so Athena prunes partitions.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from decimal import Decimal

from api.service import (
    CHANNEL_COLUMNS,
    CLIENT_COLUMNS,
    DAILY_COLUMNS,
    ORDER_COLUMNS,
    PRODUCT_CHANNEL_COLUMNS,
    PRODUCT_COLUMNS,
    STATUS_COLUMNS,
    OrderFilter,
)


def _cols(cols: Sequence[str]) -> str:
    return ", ".join(cols)


class SqlSnapshot:
    """Subclasses provide ``table(name)`` and ``query(sql, params) -> list[tuple]``."""

    build_id: str
    data_as_of: dt.datetime | None

    def table(self, name: str) -> str:
        raise NotImplementedError

    def query(self, sql: str, params: Sequence[object]) -> list[tuple]:
        raise NotImplementedError

    # -- statements (public so tests can parse them as Trino) -------------------------------
    def clients_sql(self, after: tuple[Decimal, int] | None, limit: int):
        where, args = "", []
        if after is not None:
            where = (
                " where total_spend < cast(? as decimal(38, 2))"
                " or (total_spend = cast(? as decimal(38, 2)) and client_id > ?)"
            )
            args = [format(after[0], "f"), format(after[0], "f"), after[1]]
        sql = (
            f"select {_cols(CLIENT_COLUMNS)} from {self.table('mart_client_sales')}{where}"
            f" order by total_spend desc, client_id limit {int(limit)}"
        )
        return sql, args

    def orders_sql(self, f: OrderFilter, after: int | None, limit: int):
        conds: list[str] = []
        args: list[object] = []
        for column, value in (
            ("client_id", f.client_id),
            ("product_id", f.product_id),
            ("status", f.status),
            ("channel", f.channel),
        ):
            if value is not None:
                conds.append(f"{column} = ?")
                args.append(value)
        if f.date_from is not None:
            conds.append("pa_date >= cast(? as date)")
            args.append(f.date_from.isoformat())
        if f.date_to is not None:
            conds.append("pa_date <= cast(? as date)")
            args.append(f.date_to.isoformat())
        if after is not None:
            conds.append("order_id > ?")
            args.append(after)
        where = (" where " + " and ".join(conds)) if conds else ""
        sql = (
            f"select {_cols(ORDER_COLUMNS)} from {self.table('mart_orders')}{where}"
            f" order by order_id limit {int(limit)}"
        )
        return sql, args

    def daily_sql(self, date_from: dt.date | None, date_to: dt.date | None):
        conds, args = [], []
        if date_from is not None:
            conds.append("pa_date >= cast(? as date)")
            args.append(date_from.isoformat())
        if date_to is not None:
            conds.append("pa_date <= cast(? as date)")
            args.append(date_to.isoformat())
        where = (" where " + " and ".join(conds)) if conds else ""
        sql = (
            f"select {_cols(DAILY_COLUMNS)} from {self.table('mart_daily_sales')}{where}"
            " order by pa_date"
        )
        return sql, args

    # -- the snapshot interface ------------------------------------------------------------
    def clients_page(self, after: tuple[Decimal, int] | None, limit: int) -> list[tuple]:
        return self.query(*self.clients_sql(after, limit))

    def client(self, client_id: int) -> tuple | None:
        rows = self.query(
            f"select {_cols(CLIENT_COLUMNS)} from {self.table('mart_client_sales')}"
            " where client_id = ?",
            [client_id],
        )
        return rows[0] if rows else None

    def orders_page(self, f: OrderFilter, after: int | None, limit: int) -> list[tuple]:
        return self.query(*self.orders_sql(f, after, limit))

    def products(self) -> list[tuple]:
        return self.query(
            f"select {_cols(PRODUCT_COLUMNS)} from {self.table('mart_product_sales')}"
            " order by product_id",
            [],
        )

    def channel_sales(self) -> list[tuple]:
        return self.query(
            f"select {_cols(CHANNEL_COLUMNS)} from {self.table('mart_channel_sales')}"
            " order by channel",
            [],
        )

    def product_channel_sales(self) -> list[tuple]:
        return self.query(
            f"select {_cols(PRODUCT_CHANNEL_COLUMNS)}"
            f" from {self.table('mart_product_channel_sales')} order by product_id, channel",
            [],
        )

    def status_summary(self) -> list[tuple]:
        return self.query(
            f"select {_cols(STATUS_COLUMNS)} from {self.table('mart_status_summary')}"
            " order by status",
            [],
        )

    def daily_sales(self, date_from: dt.date | None, date_to: dt.date | None) -> list[tuple]:
        return self.query(*self.daily_sql(date_from, date_to))
