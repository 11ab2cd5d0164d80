"""Reading a Prometheus exposition in tests: one sample's value, by name and labels."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from gateway_app.metrics.collector import WorkerCollector, exposition


def samples(text: str) -> dict[tuple[str, frozenset], float]:
    """Every sample of ``text`` by (sample name, its labels)."""
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(text: str, name: str, **labels: str) -> float | None:
    """The value of the sample ``name`` whose labels include ``labels`` (None: absent; an
    ambiguous match is an error)."""
    found = [
        sample_value
        for (sample_name, sample_labels), sample_value in samples(text).items()
        if sample_name == name and set(labels.items()) <= set(sample_labels)
    ]
    assert len(found) <= 1, f"{name} {labels} matches {len(found)} samples"
    return found[0] if found else None


def scrape(host) -> str:
    """The exposition of ``host``'s worker, as a scrape returns it."""
    return exposition(WorkerCollector(host)).decode()
