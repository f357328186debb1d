import json
import logging

from api.metrics import Metrics


def test_emf_document_carries_the_counts_since_last_flush(api_get, api_unit_app, caplog):
    # Given a few requests: one miss, one hit, one client error
    api_unit_app.metrics.emf()  # reset
    api_get("/products")
    api_get("/products")
    api_get("/clients/abc")
    # When the metrics are flushed
    caplog.set_level(logging.INFO, logger="duff.api.metrics")
    api_unit_app.metrics.flush()
    # Then one EMF line with the right namespace, dimension and counts
    doc = json.loads(caplog.records[-1].getMessage())
    directive = doc["_aws"]["CloudWatchMetrics"][0]
    assert directive["Namespace"] == "Duff/Api"
    assert directive["Dimensions"] == [["Service"]]
    assert {m["Name"] for m in directive["Metrics"]} >= {"CacheHits", "CacheMisses"}
    assert (doc["CacheHits"], doc["CacheMisses"], doc["Requests"], doc["ClientErrors"]) == (
        1,
        1,
        3,
        1,
    )
    # and nothing is emitted when nothing happened since
    assert api_unit_app.metrics.emf() is None


def test_empty_metrics_emit_nothing():
    assert Metrics().emf() is None
