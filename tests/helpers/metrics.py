"""Reading /metrics in tests: the Prometheus text parsed into samples that a test can subtract."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families


def scrape(client, headers: dict | None = None) -> dict:
    """{(sample name, frozenset of labels): value} from /metrics."""
    response = client.get("/metrics", headers=headers)
    assert response.status_code == 200 and response.mimetype == "text/plain"
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.get_data(as_text=True))
        for sample in family.samples
    }


def sample(scraped, name, **labels) -> float:
    return scraped.get((name, frozenset(labels.items())), 0.0)
