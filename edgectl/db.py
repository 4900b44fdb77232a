"""Database access for one CLI invocation: a single short-lived connection with a short connect timeout."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, sessionmaker

from edgectl.connection import Connection
from edgectl.errors import Unreachable
from shared.db.session import is_disconnect, make_engine, make_session_factory


@contextmanager
def session_factory(conn: Connection, timeout_s: int = 5) -> Iterator[sessionmaker[Session]]:
    engine = make_engine(
        conn.sqlalchemy_url(), pool_size=1, connect_timeout_s=timeout_s, application_name="edgectl"
    )
    try:
        yield make_session_factory(engine)
    except DBAPIError as exc:
        if is_disconnect(exc):
            # psycopg2's message names host and port, never the password.
            reason = str(exc.orig).strip().splitlines()[0] if exc.orig else type(exc).__name__
            raise Unreachable(f"database {conn.describe_database()} unreachable: {reason}") from None
        raise
    finally:
        engine.dispose()
