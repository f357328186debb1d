"""The CLI's edges and the EMF line of a consumer batch."""

from __future__ import annotations

import json

import pytest

from realtime import metrics
from realtime.__main__ import main
from realtime.settings import Settings, SettingsError
from realtime.sqlite_store import Checkpoint, SqliteStore, store_path


def test_send_a_missing_file_is_exit_1_with_the_reason(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("DUFF_LAKE", str(tmp_path))
    monkeypatch.delenv("DUFF_STREAM", raising=False)
    assert main(["send", str(tmp_path / "nope.jsonl")]) == 1
    out = capsys.readouterr()
    assert out.err == f"error: cannot read {tmp_path / 'nope.jsonl'}: No such file or directory\n"
    assert out.out.startswith("accepted 0 events")


def test_send_a_file_counts_events_not_empty_lines(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("DUFF_LAKE", str(tmp_path))
    monkeypatch.delenv("DUFF_STREAM", raising=False)
    src = tmp_path / "e.jsonl"
    src.write_bytes(b'{"order_id": 1}\r\n\r\n\n{"order_id": 2}')  # CRLF, blank lines, no final EOL
    assert main(["send", str(src)]) == 0
    assert capsys.readouterr().out.strip() == "accepted 2 events on local://orders"


def test_an_event_over_the_record_limit_is_refused_alone(tmp_path, monkeypatch, capsys):
    # Given 20 events with one of 1.1 MB in the middle (over the stream's 1 MiB per record)
    monkeypatch.setenv("DUFF_LAKE", str(tmp_path))
    monkeypatch.delenv("DUFF_STREAM", raising=False)
    big = b'{"order_id": 11, "client_name": "' + b"x" * 1_100_000 + b'"}'
    lines = [b'{"order_id": %d}' % i for i in range(1, 21)]
    lines.insert(10, big)
    src = tmp_path / "e.jsonl"
    src.write_bytes(b"\n".join(lines) + b"\n")
    # When it is sent, Then the other 20 are on the stream, the big one is named, exit 1
    assert main(["send", str(src)]) == 1
    out = capsys.readouterr()
    assert out.out.strip() == "accepted 20 events on local://orders"
    assert "event 11 (1100035 bytes) is over the stream's record limit" in out.err
    from realtime.localstream import LocalStream

    stream = LocalStream(tmp_path / "stream", "orders")
    assert sum(stream.end(shard).sequence - 1 for shard in stream.shards) == 20  # records


def test_a_bad_stream_setting_is_refused():
    bad_names = ("local://.hidden", "local://a/b", "local://..", "kinesis://a b", "kinesis://")
    for bad in ("kafka://x", "local://", "orders", *bad_names, "local://" + "x" * 129):
        try:
            Settings.from_env({"DUFF_STREAM": bad})
        except SettingsError as exc:
            assert "DUFF_STREAM" in str(exc)
        else:
            raise AssertionError(bad)


def test_good_stream_names_are_kept():
    for good in ("local://orders", "local://a.b_c-1", "kinesis://.odd", "kinesis://orders-1"):
        assert Settings.from_env({"DUFF_STREAM": good}).stream == good


def test_a_bad_stream_name_on_the_command_line_is_exit_2_without_a_traceback(
    tmp_path, monkeypatch, capsys
):
    monkeypatch.setenv("DUFF_LAKE", str(tmp_path))
    monkeypatch.setenv("DUFF_STREAM", "local://a/b")
    assert main(["consume"]) == 2
    err = capsys.readouterr().err
    assert "DUFF_STREAM" in err and "Traceback" not in err


def bound_lake(tmp_path, monkeypatch):
    """A lake whose store holds local://orders (shard-0000 applied up to sequence 5), and the
    environment of a command acting on local://other in the same lake."""
    store = SqliteStore(store_path(str(tmp_path)))
    store.bind_stream("local://orders")
    store.set_checkpoint(Checkpoint("shard-0000", 5, 500, 5, 500))
    store.close()
    monkeypatch.setenv("DUFF_LAKE", str(tmp_path))
    monkeypatch.setenv("DUFF_STREAM", "local://other")
    monkeypatch.setenv("DUFF_REALTIME_WORKERS", "1")


@pytest.mark.parametrize(
    ("command", "workers"),
    [
        (["consume"], "1"),
        (["consume"], "2"),
        (["replay", "--shard", "shard-0000", "--from-sequence", "1"], "1"),
    ],
    ids=["consume", "consume-in-workers", "replay"],
)
def test_a_second_local_stream_is_refused_by_the_first_ones_store(
    tmp_path, monkeypatch, capsys, command, workers
):
    # Given a lake whose store holds local://orders, and a consumer that must not start
    bound_lake(tmp_path, monkeypatch)
    monkeypatch.setenv("DUFF_REALTIME_WORKERS", workers)
    monkeypatch.setattr(
        "realtime.__main__._consume_in_workers",
        lambda shards: pytest.fail("workers started on another stream's store"),
    )

    def started(self):
        raise AssertionError("the consumer started on another stream's checkpoints")

    monkeypatch.setattr("realtime.consumer.Consumer.run", started)
    # When a command acts on local://other in the same lake
    # Then it is refused as bad usage, with one line naming both streams and the way out
    assert main(command) == 2
    err = capsys.readouterr().err
    assert "local://orders" in err and "local://other" in err and "Traceback" not in err
    assert "realtime reset" in err
    # and the first stream's checkpoint is untouched, and nothing of the refused one is made
    store = SqliteStore(store_path(str(tmp_path)))
    assert store.checkpoint("shard-0000") == Checkpoint("shard-0000", 5, 500, 5, 500)
    store.close()
    assert not (tmp_path / "stream" / "other").exists()


def test_a_reset_rebuilds_the_store_for_its_stream_and_binds_it(tmp_path, monkeypatch, capsys):
    # Given a lake whose store holds local://orders
    bound_lake(tmp_path, monkeypatch)
    # When the store is reset for local://other (nothing of it landed yet)
    assert main(["reset"]) == 0
    capsys.readouterr()
    # Then it holds local://other from its first records, and the old checkpoint is gone
    store = SqliteStore(store_path(str(tmp_path)))
    assert store.checkpoint("shard-0000").sequence == 1
    store.close()
    # And local://orders is now the stream refused
    monkeypatch.setenv("DUFF_STREAM", "local://orders")
    assert main(["replay", "--shard", "shard-0000", "--from-sequence", "1"]) == 2
    assert "local://other" in capsys.readouterr().err


def test_a_worker_killed_by_a_signal_fails_the_consumer(monkeypatch):
    # Given two shard workers: one killed outright (SIGKILL: returncode -9), one that lands
    # what it holds and exits 0 when told to stop
    import realtime.__main__ as cli

    class Worker:
        def __init__(self, code):
            self.returncode, self._code = None, code

        def poll(self):
            self.returncode = self._code
            return self.returncode

        def send_signal(self, _signum):
            pass

    workers = iter([Worker(-9), Worker(0)])
    monkeypatch.setattr(cli.subprocess, "Popen", lambda *a, **k: next(workers))
    monkeypatch.setattr(cli.signal, "signal", lambda *a: None)
    # Then the consumer exits 137 (128 + 9), not 0
    assert cli._consume_in_workers(["shard-0000", "shard-0001"]) == 137


def test_emf_line_names_the_metrics_and_the_shard(monkeypatch, capsys):
    monkeypatch.setenv("DUFF_REALTIME_EMF", "1")
    metrics.emit_batch("Duff/Test/Realtime", "shard-0001", 10, 8, 2, 0.25)
    line = json.loads(capsys.readouterr().out)
    spec = line["_aws"]["CloudWatchMetrics"][0]
    assert spec["Namespace"] == "Duff/Test/Realtime"
    assert spec["Dimensions"] == [["Shard"], []]
    assert {m["Name"]: m["Unit"] for m in spec["Metrics"]} == {
        "EventsIn": "Count",
        "Valid": "Count",
        "Rejected": "Count",
        "LagSeconds": "Seconds",
    }
    assert (
        line["Shard"],
        line["EventsIn"],
        line["Valid"],
        line["Rejected"],
        line["LagSeconds"],
    ) == ("shard-0001", 10, 8, 2, 0.25)
