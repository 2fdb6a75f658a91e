"""The pyirqbalance monitoring mixin: Prometheus alerts, recording rules, Grafana dashboard.

Writes, next to this script::

    prometheus/pyirqbalance-alerts.yaml   alerting rules
    prometheus/pyirqbalance-rules.yaml    recording rules (the fleet dashboard reads them)
    grafana/pyirqbalance.json             the dashboard (grafana-foundation-sdk)

The committed files are what this script writes with the defaults of
:class:`Params`; a test regenerates them and compares. For other thresholds,
generate your own copy::

    python3 monitoring/generate.py --out /etc/prometheus/pyirqbalance \\
        --set hot_spot_share=0.6 --set selector='job="irq"'

The dashboard needs ``grafana-foundation-sdk`` (the test extra installs it);
``--rules-only`` writes the two rule files without it.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, NamedTuple

import yaml

HERE = Path(__file__).resolve().parent


class Params(NamedTuple):
    """Every threshold and window of the alerts (docs/monitoring.md explains each)."""

    #: Label matchers of the scrape job, inside {...}.
    selector: str = 'job="pyirqbalance"'
    #: PyirqbalanceDown: the target has been unreachable this long.
    down_for: str = "5m"
    #: PyirqbalanceStuck: no pass for this many pass intervals.
    stuck_intervals: int = 3
    #: PyirqbalanceInterruptHotSpot: the busiest usable CPU spends more than this share of
    #: its time in irq + softirq ...
    hot_spot_share: float = 0.5
    #: ... for this long.
    hot_spot_for: str = "10m"
    #: PyirqbalanceImbalanceAboveFloor: the busiest CPU's share is more than this many
    #: times the floor the balanced placement computed ...
    floor_factor: float = 2.0
    #: ... and above this share (an idle host is never worth an alert) ...
    floor_min_share: float = 0.2
    #: ... for this long.
    floor_for: str = "30m"
    #: PyirqbalanceBalancerFight: something else changed smp_affinity within this window.
    fight_window: str = "15m"
    #: PyirqbalanceWritesRefused: refused writes within this window ...
    refused_window: str = "15m"
    #: ... except these errnos (regex): EIO is a kernel-managed IRQ, refused by design.
    refused_ignored: str = "EIO"
    #: PyirqbalanceHistoryDisabled, PyirqbalanceThreadDisabled: this long.
    disabled_for: str = "10m"


DEFAULTS = Params()

# --------------------------------------------------------------------------
# Prometheus rules
# --------------------------------------------------------------------------


def _alert(name: str, expr: str, severity: str, summary: str, description: str,
           for_: str | None = None) -> dict[str, Any]:
    rule: dict[str, Any] = {"alert": name, "expr": expr}
    if for_:
        rule["for"] = for_
    rule["labels"] = {"severity": severity}
    rule["annotations"] = {"summary": summary, "description": description}
    return rule


def alerts(p: Params = DEFAULTS) -> dict[str, Any]:
    """The alerting rules, one group."""
    s = p.selector
    rules = [
        _alert("PyirqbalanceDown", f"up{{{s}}} == 0", "critical",
               "pyirqbalance on {{ $labels.instance }} is down",
               "Prometheus cannot scrape pyirqbalance on {{ $labels.instance }}: the daemon "
               "(or its API) is not running, so nothing balances this host's interrupts.",
               p.down_for),
        _alert("PyirqbalanceStuck",
               f"pyirqbalance_last_pass_age_seconds{{{s}}}\n"
               f"  > {p.stuck_intervals} * pyirqbalance_pass_interval_seconds{{{s}}}",
               "critical",
               "pyirqbalance on {{ $labels.instance }} has not balanced for "
               f"{p.stuck_intervals} intervals",
               "The last balancing pass on {{ $labels.instance }} ended "
               "{{ $value | humanizeDuration }} ago; the daemon answers but its loop is "
               "stuck."),
        _alert("PyirqbalanceInterruptHotSpot",
               f"pyirqbalance_busiest_cpu_interrupt_time_ratio{{{s}}} > {p.hot_spot_share:g}",
               "warning",
               "Interrupt hot spot on {{ $labels.instance }}",
               "The busiest usable CPU on {{ $labels.instance }} spends "
               "{{ $value | humanizePercentage }} of its time in interrupt context "
               f"(irq + softirq), above {p.hot_spot_share:.0%} for {p.hot_spot_for}.",
               p.hot_spot_for),
        _alert("PyirqbalanceImbalanceAboveFloor",
               f"pyirqbalance_busiest_cpu_interrupt_time_ratio{{{s}}}\n"
               f"  > {p.floor_factor:g} * pyirqbalance_interrupt_time_floor_ratio{{{s}}}\n"
               f"and pyirqbalance_busiest_cpu_interrupt_time_ratio{{{s}}} "
               f"> {p.floor_min_share:g}",
               "warning",
               "Interrupt load on {{ $labels.instance }} is far above what placement could "
               "reach",
               "The busiest usable CPU on {{ $labels.instance }} spends "
               "{{ $value | humanizePercentage }} of its time in interrupt context, more than "
               f"{p.floor_factor:g} times the floor the balanced placement computed, for "
               f"{p.floor_for}.",
               p.floor_for),
        _alert("PyirqbalanceBalancerFight",
               f"increase(pyirqbalance_foreign_writes_total{{{s}}}[{p.fight_window}]) > 0",
               "warning",
               "Something else is moving IRQs on {{ $labels.instance }}",
               "{{ $value | humanize }} smp_affinity changes on {{ $labels.instance }} in the "
               f"last {p.fight_window} were not made by pyirqbalance (another irqbalance, "
               "tuned, a driver reset, a script)."),
        _alert("PyirqbalanceIrqsLeftAlone",
               f"pyirqbalance_irqs_left_alone{{{s}}} > 0", "info",
               "pyirqbalance left IRQs alone on {{ $labels.instance }}",
               "{{ $value }} IRQs on {{ $labels.instance }} are no longer balanced: something "
               "else kept changing them (foreign_writes.max_changes)."),
        _alert("PyirqbalanceWritesRefused",
               f'increase(pyirqbalance_affinity_write_errors_total{{{s},'
               f'errno!~"{p.refused_ignored}"}}[{p.refused_window}]) > 0',
               "warning",
               "The kernel refuses smp_affinity writes on {{ $labels.instance }}",
               "{{ $value | humanize }} smp_affinity writes on {{ $labels.instance }} failed "
               f"with {{{{ $labels.errno }}}} in the last {p.refused_window}."),
        _alert("PyirqbalanceHistoryDisabled", f"pyirqbalance_history_enabled{{{s}}} == 0",
               "warning",
               "pyirqbalance history is not recording on {{ $labels.instance }}",
               "The configured history store on {{ $labels.instance }} cannot be written; "
               "windows in the API and pyirqbalancectl have no data.",
               p.disabled_for),
        _alert("PyirqbalanceThreadDisabled",
               f'pyirqbalance_thread_state{{{s},state="disabled"}} == 1', "warning",
               "pyirqbalance's {{ $labels.thread }} thread is disabled on "
               "{{ $labels.instance }}",
               "The {{ $labels.thread }} thread failed repeatedly and was disabled; "
               "balancing goes on without it.",
               p.disabled_for),
        _alert("PyirqbalanceConfigReloadFailed",
               f"pyirqbalance_config_last_reload_successful{{{s}}} == 0", "warning",
               "pyirqbalance on {{ $labels.instance }} rejected its new configuration",
               "The last reload (SIGHUP) on {{ $labels.instance }} failed; the daemon runs "
               "with the configuration it had before."),
    ]
    return {"groups": [{"name": "pyirqbalance", "rules": rules}]}


def recording_rules(p: Params = DEFAULTS) -> dict[str, Any]:
    """The recording rules the fleet dashboard reads (cheap over thousands of hosts)."""
    s = p.selector
    rules = [
        ("instance:pyirqbalance_busiest_cpu_interrupt_time_ratio:avg10m",
         f"avg_over_time(pyirqbalance_busiest_cpu_interrupt_time_ratio{{{s}}}[10m])"),
        ("instance:pyirqbalance_interrupt_time_imbalance_ratio:avg10m",
         f"avg_over_time(pyirqbalance_interrupt_time_imbalance_ratio{{{s}}}[10m])"),
        ("instance:pyirqbalance_foreign_writes:increase1h",
         f"increase(pyirqbalance_foreign_writes_total{{{s}}}[1h])"),
        ("instance:pyirqbalance_affinity_write_errors:increase1h",
         f"sum without (errno) (increase(pyirqbalance_affinity_write_errors_total{{{s}}}[1h]))"),
        ("instance:pyirqbalance_irq_moves:rate5m",
         f"rate(pyirqbalance_irq_moves_total{{{s}}}[5m])"),
        ("instance_cpu:pyirqbalance_cpu_interrupt_time_ratio:rate5m",
         f"rate(pyirqbalance_cpu_irq_seconds_total{{{s}}}[5m])\n"
         f"+ rate(pyirqbalance_cpu_softirq_seconds_total{{{s}}}[5m])"),
    ]
    return {"groups": [{"name": "pyirqbalance.rules",
                        "rules": [{"record": name, "expr": expr} for name, expr in rules]}]}


class _Dumper(yaml.SafeDumper):
    """Block style; multi-line strings (PromQL) as literal blocks."""


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str)


def to_yaml(data: dict[str, Any]) -> str:
    header = "# Generated by monitoring/generate.py; edit that, not this file.\n"
    return header + yaml.dump(data, Dumper=_Dumper, sort_keys=False, width=1 << 16,
                              allow_unicode=True)


# --------------------------------------------------------------------------
# Grafana dashboard
# --------------------------------------------------------------------------


def dashboard() -> dict[str, Any]:
    """The dashboard as Grafana's JSON model, built with grafana-foundation-sdk."""
    from grafana_foundation_sdk.builders import dashboard as db
    from grafana_foundation_sdk.builders import heatmap, prometheus, table, timeseries
    from grafana_foundation_sdk.cog.encoder import JSONEncoder
    from grafana_foundation_sdk.models import dashboard as model
    from grafana_foundation_sdk.models.heatmap import HeatmapColorMode
    from grafana_foundation_sdk.models.prometheus import PromQueryFormat

    ds = model.DataSourceRef(type_val="prometheus", uid="${datasource}")
    fleet = 'job=~"$job"'
    host = 'job=~"$job", instance="$instance"'

    def query(expr: str, legend: str = "", ref: str = "A", instant: bool = False) -> Any:
        q = prometheus.Dataquery().expr(expr).ref_id(ref).datasource(ds)
        if legend:
            q = q.legend_format(legend)
        if instant:
            q = q.instant().format(PromQueryFormat.TABLE)
        return q

    def series(title: str, description: str, unit: str, *queries: Any, width: int = 12) -> Any:
        p = (timeseries.Panel().title(title).description(description).unit(unit)
             .datasource(ds).height(8).span(width))
        for q in queries:
            p = p.with_target(q)
        return p

    ranked = (
        table.Panel().title("Hosts by interrupt imbalance")
        .description("The 20 most unbalanced hosts: the busiest usable CPU's share of time in "
                     "irq + softirq and its ratio to the mean (10 min averages), smp_affinity "
                     "changes made by something else and refused writes over the last hour.")
        .datasource(ds).height(10).span(24)
        .with_target(query(
            f"topk(20, instance:pyirqbalance_interrupt_time_imbalance_ratio:avg10m{{{fleet}}})",
            ref="imbalance", instant=True))
        .with_target(query(
            f"instance:pyirqbalance_busiest_cpu_interrupt_time_ratio:avg10m{{{fleet}}}",
            ref="busiest", instant=True))
        .with_target(query(f"instance:pyirqbalance_foreign_writes:increase1h{{{fleet}}}",
                           ref="fights", instant=True))
        .with_target(query(f"instance:pyirqbalance_affinity_write_errors:increase1h{{{fleet}}}",
                           ref="refused", instant=True))
        .with_transformation(model.DataTransformerConfig(id_val="merge", options={}))
        .with_transformation(model.DataTransformerConfig(
            id_val="organize",
            options={"excludeByName": {"Time": True, "__name__": True},
                     "renameByName": {"Value #imbalance": "busiest / mean",
                                      "Value #busiest": "busiest CPU share",
                                      "Value #fights": "foreign writes (1 h)",
                                      "Value #refused": "refused writes (1 h)"}}))
        .with_transformation(model.DataTransformerConfig(
            id_val="sortBy", options={"sort": [{"field": "busiest / mean", "desc": True}]}))
    )
    d = (
        db.Dashboard("pyirqbalance")
        .uid("pyirqbalance")
        .description("Interrupt balance of a fleet running pyirqbalance, and of one host.")
        .tags(["pyirqbalance", "irq"])
        .time("now-6h", "now")
        .refresh("1m")
        .tooltip(model.DashboardCursorSync.CROSSHAIR)
        .with_variable(db.DatasourceVariable("datasource").label("Data source")
                       .type("prometheus"))
        .with_variable(db.QueryVariable("job").label("Job").datasource(ds)
                       .query("label_values(pyirqbalance_info, job)")
                       .refresh(model.VariableRefresh.ON_TIME_RANGE_CHANGED)
                       .multi(True).include_all(True).all_value(".+"))
        .with_variable(db.QueryVariable("instance").label("Host").datasource(ds)
                       .query('label_values(pyirqbalance_info{job=~"$job"}, instance)')
                       .refresh(model.VariableRefresh.ON_TIME_RANGE_CHANGED))
        .with_row(db.Row("Fleet"))
        .with_panel(ranked)
        .with_panel(series(
            "Busiest CPU's interrupt time (top 10 hosts)",
            "Share of time the busiest usable CPU of each host spends in irq + softirq.",
            "percentunit",
            query(f"topk(10, pyirqbalance_busiest_cpu_interrupt_time_ratio{{{fleet}}})",
                  "{{instance}}")))
        .with_panel(series(
            "Balancer fights",
            "smp_affinity changes pyirqbalance did not make, per host (another irqbalance, "
            "tuned, a script).",
            "short",
            query(f"increase(pyirqbalance_foreign_writes_total{{{fleet}}}[$__rate_interval]) "
                  "> 0", "{{instance}}")))
        .with_panel(series(
            "Refused writes",
            "smp_affinity writes the kernel refused, per host and errno (EIO: kernel-managed "
            "IRQs, expected).",
            "short",
            query(f"increase(pyirqbalance_affinity_write_errors_total{{{fleet}}}"
                  "[$__rate_interval]) > 0", "{{instance}} {{errno}}"), width=24))
        .with_row(db.Row("Host $instance"))
        .with_panel(
            heatmap.Panel().title("Interrupt time per CPU")
            .description("Share of each CPU's time in irq + softirq; a hot spot is one bright "
                         "row.")
            .datasource(ds).height(10).span(24)
            .with_target(query(
                f"rate(pyirqbalance_cpu_irq_seconds_total{{{host}}}[$__rate_interval])\n"
                f"+ rate(pyirqbalance_cpu_softirq_seconds_total{{{host}}}[$__rate_interval])",
                "{{cpu}}"))
            .calculate(False)
            .color(heatmap.HeatmapColorOptions().mode(HeatmapColorMode.SCHEME)
                   .scheme("Oranges").steps(64))
            .y_axis(heatmap.YAxisConfig().unit("none"))
            .cell_values(heatmap.CellValues().unit("percentunit")))
        .with_panel(series(
            "Busiest, mean and floor",
            "The busiest usable CPU's interrupt time share, the mean over usable CPUs, and the "
            "floor no placement can go below (--placement=balanced only).",
            "percentunit",
            query(f"pyirqbalance_busiest_cpu_interrupt_time_ratio{{{host}}}", "busiest", "A"),
            query(f"pyirqbalance_mean_cpu_interrupt_time_ratio{{{host}}}", "mean", "B"),
            query(f"pyirqbalance_interrupt_time_floor_ratio{{{host}}}", "floor", "C"),
            width=8))
        .with_panel(series(
            "Moves per pass",
            "IRQs whose smp_affinity the last pass changed.",
            "short",
            query(f"pyirqbalance_irq_moves_last_pass{{{host}}}", "moves"), width=8))
        .with_panel(series(
            "Pass duration",
            "How long a balancing pass takes (99th percentile and mean), and how long ago the "
            "last one ended.",
            "s",
            query("histogram_quantile(0.99, sum by (le) (rate("
                  f"pyirqbalance_pass_duration_seconds_bucket{{{host}}}[$__rate_interval])))",
                  "p99", "A"),
            query(f"rate(pyirqbalance_pass_duration_seconds_sum{{{host}}}[$__rate_interval])\n"
                  f"/ rate(pyirqbalance_pass_duration_seconds_count{{{host}}}"
                  "[$__rate_interval])", "mean", "B"),
            query(f"pyirqbalance_last_pass_age_seconds{{{host}}}", "since last pass", "C"),
            width=8))
    )
    return json.loads(json.dumps(d.build(), cls=JSONEncoder, sort_keys=True))


# --------------------------------------------------------------------------
# command line
# --------------------------------------------------------------------------


def outputs(p: Params = DEFAULTS, *, rules_only: bool = False) -> dict[str, str]:
    """Relative path -> content of every generated file."""
    files = {
        "prometheus/pyirqbalance-alerts.yaml": to_yaml(alerts(p)),
        "prometheus/pyirqbalance-rules.yaml": to_yaml(recording_rules(p)),
    }
    if not rules_only:
        files["grafana/pyirqbalance.json"] = json.dumps(dashboard(), indent=2,
                                                        sort_keys=True) + "\n"
    return files


def _params(settings: list[str]) -> Params:
    values: dict[str, Any] = {}
    defaults = DEFAULTS
    for item in settings:
        key, sep, value = item.partition("=")
        if not sep or key not in Params._fields:
            raise SystemExit(f"generate.py: --set {item!r}: expected NAME=VALUE, NAME one of "
                             f"{', '.join(Params._fields)}")
        kind = type(getattr(defaults, key))
        try:
            values[key] = kind(value)
        except ValueError:
            raise SystemExit(f"generate.py: --set {key}: not a {kind.__name__}: "
                             f"{value!r}") from None
    return defaults._replace(**values)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(HERE),
                    help="directory to write into (default: %(default)s)")
    ap.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                    help="change one of the thresholds (see Params)")
    ap.add_argument("--rules-only", action="store_true",
                    help="only the Prometheus rule files (no grafana-foundation-sdk needed)")
    args = ap.parse_args(argv)
    out = Path(args.out)
    for rel, text in outputs(_params(args.set), rules_only=args.rules_only).items():
        path = out / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
