import gc
import threading
import weakref

import pytest

from invoice_warehouse.engine.collector import BULK_THRESHOLD, bulk_allocation


@pytest.fixture(autouse=True)
def _known_thresholds():
    saved = gc.get_threshold()
    gc.set_threshold(700, 10, 10)
    yield
    gc.set_threshold(*saved)


def test_the_collector_is_held_back_inside_and_restored_after():
    assert gc.get_freeze_count() == 0
    with bulk_allocation():
        assert gc.get_threshold() == (BULK_THRESHOLD, 10, 10) == (50_000, 10, 10)
        assert gc.get_freeze_count() > 0  # the objects alive at the start are not walked again
        with bulk_allocation():  # re-entrant: the inner block leaves the settings to the outer one
            pass
        assert gc.get_threshold() == (50_000, 10, 10)
    assert gc.get_threshold() == (700, 10, 10)
    assert gc.get_freeze_count() == 0  # handed back to the collector


def test_restored_when_the_block_fails():
    with pytest.raises(RuntimeError, match="boom"), bulk_allocation():
        raise RuntimeError("boom")
    assert gc.get_threshold() == (700, 10, 10)
    assert gc.get_freeze_count() == 0


def test_cyclic_garbage_made_inside_is_still_freed():
    class Node:
        pass

    freed = []
    with bulk_allocation():
        for i in range(3):
            a, b = Node(), Node()
            a.other, b.other = b, a  # a cycle: reference counting alone never frees it
            a.marker = i
            weakref.finalize(a, freed.append, i)
        del a, b
        assert freed == []
    gc.collect()
    assert sorted(freed) == [0, 1, 2]


def test_two_threads_restore_only_when_both_are_out():
    inside, release = threading.Event(), threading.Event()

    def other():
        with bulk_allocation():
            inside.set()
            release.wait(5)

    t = threading.Thread(target=other)
    with bulk_allocation():
        t.start()
        assert inside.wait(5)
    assert gc.get_threshold() == (50_000, 10, 10)  # the other thread is still inside
    release.set()
    t.join(5)
    assert gc.get_threshold() == (700, 10, 10)
    assert gc.get_freeze_count() == 0


def test_as_a_decorator_every_call_holds_it_back_and_restores_it():
    @bulk_allocation()
    def inside():
        return gc.get_threshold(), gc.get_freeze_count() > 0

    assert inside() == ((50_000, 10, 10), True)
    assert inside() == ((50_000, 10, 10), True)  # a second call: the decorator's block is a new one
    assert (gc.get_threshold(), gc.get_freeze_count()) == ((700, 10, 10), 0)


def _tracked(obj) -> bool:
    """obj is walked by the collector (not frozen)."""
    return any(o is obj for o in gc.get_objects())


def test_objects_the_process_froze_itself_stay_frozen():
    early = [[]]
    gc.freeze()  # as a server does before forking its workers
    try:
        late = [[]]  # made after the process's freeze: the block must not freeze it either
        with bulk_allocation():
            assert gc.get_threshold() == (50_000, 10, 10)
            assert (_tracked(early), _tracked(late)) == (False, True)
        assert gc.get_threshold() == (700, 10, 10)
        assert (_tracked(early), _tracked(late)) == (False, True)  # the process's freeze is left in place
    finally:
        gc.unfreeze()
    assert (_tracked(early), _tracked(late)) == (True, True)
