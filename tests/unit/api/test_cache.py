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
