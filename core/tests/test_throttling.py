"""The user throttle's process memory: histories kept unpickled, bounded, unshared."""

from core.throttling import ProcessMemory


def test_get_gives_a_copy_that_the_caller_may_change():
    memory = ProcessMemory()
    memory.set("user_1", [3.0, 2.0, 1.0])

    history = memory.get("user_1")
    history.pop()

    assert memory.get("user_1") == [3.0, 2.0, 1.0]
    assert memory.get("user_2", []) == []


def test_least_recently_set_key_is_dropped_past_the_size():
    memory = ProcessMemory(size=2)
    memory.set("a", [1.0])
    memory.set("b", [2.0])
    memory.set("a", [1.0, 1.5])
    memory.set("c", [3.0])

    assert memory.get("b") is None
    assert memory.get("a") == [1.0, 1.5]
    assert memory.get("c") == [3.0]


def test_clear_forgets_every_key():
    memory = ProcessMemory()
    memory.set("a", [1.0])

    memory.clear()

    assert memory.get("a") is None
