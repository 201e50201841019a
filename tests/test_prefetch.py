"""The read-ahead thread of the text readers (``loglib.sources.files.prefetch``): order, errors, early stop."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from loglib.sources.files import prefetch


def test_items_in_order_and_the_producers_error_at_its_item() -> None:
    def chunks() -> Iterator[int]:
        yield 1
        yield 2
        raise OSError("disk read failed")

    ahead = prefetch(chunks())
    assert [next(ahead), next(ahead)] == [1, 2]
    with pytest.raises(OSError, match="disk read failed"):
        next(ahead)


def test_a_consumer_that_stops_early_stops_the_reading() -> None:
    taken: list[int] = []

    def chunks() -> Iterator[int]:
        for i in range(1000):
            taken.append(i)
            yield i

    ahead = prefetch(chunks(), depth=2)
    assert next(ahead) == 0
    ahead.close()
    for t in threading.enumerate():
        if t.name.startswith("loglib-prefetch"):
            t.join(5)
    assert len(taken) <= 4  # the item handed over and at most the two read ahead (+1 in flight)
