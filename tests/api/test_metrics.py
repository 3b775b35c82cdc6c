"""/api/health/metrics: request durations by route template, a well-formed Prometheus histogram."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families
from starlette.testclient import TestClient


def request_histogram(client: TestClient) -> dict[tuple[str, ...], float]:
    text = client.get("/api/health/metrics").text
    (family,) = [f for f in text_string_to_metric_families(text) if f.name == "http_request_duration_seconds"]
    assert family.type == "histogram"
    return {
        (sample.name, sample.labels["method"], sample.labels["route"], sample.labels["status"])
        + ((sample.labels["le"],) if "le" in sample.labels else ()): sample.value
        for sample in family.samples
    }


def test_requests_are_counted_by_route_template_and_status(client: TestClient) -> None:
    for _ in range(3):
        assert client.get("/api/health/live").status_code == 200
    assert client.get("/api/projects/0190a0b0-0000-7000-8000-000000000000").status_code == 401  # no token
    assert client.get("/nowhere").status_code == 404

    samples = request_histogram(client)
    live = ("GET", "/api/health/live", "200")
    assert samples[("http_request_duration_seconds_count", *live)] == 3
    assert samples[("http_request_duration_seconds_bucket", *live, "+Inf")] == 3
    assert 0 < samples[("http_request_duration_seconds_sum", *live)] < 3 * 5
    buckets = [value for key, value in samples.items() if key[0].endswith("_bucket") and key[1:4] == live]
    assert buckets == sorted(buckets), "buckets are cumulative"
    assert len(buckets) == 14  # 13 bounds and +Inf
    assert samples[("http_request_duration_seconds_count", "GET", "/api/projects/{project_id}", "401")] == 1
    assert samples[("http_request_duration_seconds_count", "GET", "<unmatched>", "404")] == 1
