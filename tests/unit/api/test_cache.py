from api.cache import TTLCache


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def test_hit_miss_and_ttl():
    # Given a cache with a 10 s TTL
    clock = Clock()
    cache = TTLCache(10, 100, clock)
    # When a value is put and read before and after expiry
    assert cache.get("b1", "k") is None
    cache.put("b1", "k", b"v")
    assert cache.get("b1", "k") == b"v"
    clock.now = 10.5
    assert cache.get("b1", "k") is None
    # Then hits and misses are counted
    assert cache.stats()["hits"] == 1
    assert cache.stats()["misses"] == 2


def test_new_build_drops_everything():
    cache = TTLCache(60, 100, Clock())
    cache.put("b1", "k", b"old")
    assert cache.get("b2", "k") is None
    assert cache.stats()["entries"] == 0
    assert cache.stats()["invalidations"] == 1


def test_size_is_bounded_lru():
    cache = TTLCache(60, 2, Clock())
    cache.put("b", 1, "a")
    cache.put("b", 2, "b")
    cache.get("b", 1)
    cache.put("b", 3, "c")
    assert cache.get("b", 2) is None
    assert cache.get("b", 1) == "a"


def test_size_is_bounded_in_bytes():
    # Given a 100-byte budget
    cache = TTLCache(60, 100, Clock(), max_bytes=100)
    # When 40-byte answers are added / Then the oldest go, and the total stays in budget
    for i in range(5):
        cache.put("b", i, b"x" * 10)
    cache.put("b", "big", b"x" * 13)  # over an eighth of the budget: not cached
    assert cache.get("b", "big") is None
    for i in range(5, 10):
        cache.put("b", i, b"y" * 12)
    assert cache.stats()["bytes"] <= 100
    assert cache.get("b", 9) == b"y" * 12
    assert cache.get("b", 0) is None
