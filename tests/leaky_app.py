"""A small app with the seed story's leak: a Session opened without a context manager, and an
exception after commit, so the connection checked out after the commit is never returned.

Failed orders are kept for a retry queue (``FAILED``); the exceptions hold the frames, the
frames hold the sessions, so the garbage collector cannot return the connections either.
"""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

FAILED: list[Exception] = []


class ReceiptError(RuntimeError):
    """The post-commit step failed."""


def create_order(engine, order_id: int, *, fail: bool) -> int:
    session = Session(engine)  # the bug: no `with`, no try/finally
    session.execute(text("insert into orders (id) values (:id)"), {"id": order_id})
    session.commit()
    total = session.execute(text("select count(*) from orders")).scalar_one()  # LEAK: autobegin checks out
    if fail:
        raise ReceiptError(f"receipt for order {order_id} failed")
    session.close()
    return total


def list_orders(engine) -> int:
    with Session(engine) as session:
        return session.execute(text("select count(*) from orders")).scalar_one()


def handle(engine, order_id: int, *, fail: bool) -> None:
    """The request handler: logs and queues failures (keeping the exception alive)."""
    try:
        create_order(engine, order_id, fail=fail)
    except ReceiptError as exc:
        FAILED.append(exc)


async def create_order_async(engine, order_id: int, *, fail: bool) -> int:
    session = AsyncSession(engine)
    await session.execute(text("insert into orders (id) values (:id)"), {"id": order_id})
    await session.commit()
    total = (await session.execute(text("select count(*) from orders"))).scalar_one()  # ASYNC LEAK
    if fail:
        raise ReceiptError(f"receipt for order {order_id} failed")
    await session.close()
    return total
