"""Scrapes of /metrics as promtool ``input_series`` (tests/monitoring)."""

from __future__ import annotations

import math

from prometheus_client.parser import text_string_to_metric_families


def samples(text: str) -> dict[str, float]:
    """``series selector -> value`` of one scrape (label values escaped as PromQL wants)."""
    out: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            labels = ", ".join(f'{k}="{_escape(v)}"' for k, v in sorted(s.labels.items()))
            out[f"{s.name}{{{labels}}}"] = s.value
    return out


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def with_target(series: str, target: str) -> str:
    """The selector with the labels Prometheus adds to every scraped series."""
    name, _, rest = series.partition("{")
    rest = rest[:-1]
    return f"{name}{{{target}{', ' if rest else ''}{rest}}}"


def input_series(scrapes: list[str], target: str, hold: int) -> list[dict[str, str]]:
    """One promtool series per scraped series: one value per scrape (``_`` where it
    was missing), then the last scrape's value ``hold`` more times."""
    parsed = [samples(text) for text in scrapes]
    names = sorted({name for p in parsed for name in p})
    out = []
    for name in names:
        values = [_value(p.get(name)) for p in parsed]
        values += [values[-1]] * hold
        out.append({"series": with_target(name, target), "values": " ".join(values)})
    return out


def _value(v: float | None) -> str:
    if v is None or math.isnan(v) or math.isinf(v):
        return "_"
    return repr(float(v))
