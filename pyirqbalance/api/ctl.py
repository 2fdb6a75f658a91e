"""``pyirqbalancectl``: the command-line client of the REST API.

It talks to the daemon's API (``--url``, else ``PYIRQBALANCE_URL``, else the
first listener of the YAML ``api:`` section), or -- with ``--local``, or when
no API is configured -- answers the same requests in-process: the very same
Flask application runs on the machine's /proc (or ``--sysroot``) and on the
history store, with a dry-run balancer for decisions. Output is aligned text
for people (no terminal library: it pipes into grep/awk like ``lsirq``) or
``--json`` for scripts.

Exit status: 0 success, 1 not found, 2 bad usage or parameter, 3 API or
history unreachable, 4 not authorised, 5 the kernel refused the change.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import sys
import time
from collections.abc import Sequence
from typing import Any, TextIO

from .. import __version__
from ..errors import PyirqbalanceError
from ..history.records import HistoryConfig
from ..kernel.cpumask import MaskError, format_cpulist, parse_cpulist, parse_mask
from ..kernel.procinterrupts import ParseError, parse_interrupts
from ..kernel.sysroot import SysRoot
from ..service.config import (
    DEFAULT_CONFIG_PATH,
    Config,
    ConfigError,
    build_settings,
    check_banned_cpus_env,
    load_config,
)
from .client import ApiClient, ApiResponse, ApiUnreachable
from .overrides import OverrideRegistry
from .report import build_report, counts_from_interrupts, dry_run_decisions, format_report
from .server import ApiContext, LiveState, create_app

__all__ = [
    "EXIT_DENIED",
    "EXIT_NOT_FOUND",
    "EXIT_OK",
    "EXIT_REFUSED",
    "EXIT_UNREACHABLE",
    "EXIT_USAGE",
    "main",
]

EXIT_OK, EXIT_NOT_FOUND, EXIT_USAGE, EXIT_UNREACHABLE, EXIT_DENIED, EXIT_REFUSED = range(6)
_STATUS_EXIT = {400: EXIT_USAGE, 413: EXIT_USAGE, 401: EXIT_DENIED, 403: EXIT_DENIED,
                404: EXIT_NOT_FOUND, 409: EXIT_REFUSED, 422: EXIT_REFUSED, 503: EXIT_UNREACHABLE}


class CtlError(PyirqbalanceError):
    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


# --------------------------------------------------------------------------
# backends: the daemon's API, or the same application in this process
# --------------------------------------------------------------------------


class LocalBackend:
    """The API's application run in-process on /proc (or a sysroot) and the store."""

    def __init__(self, root: SysRoot, history: HistoryConfig | None, config: Config) -> None:
        self.config = config
        token = secrets.token_hex(16)
        self.ctx = ApiContext(
            root=root, live=LiveState(root),
            overrides=OverrideRegistry(history.path if history else None),
            history=history, token=token,
        )
        self._client = create_app(self.ctx).test_client()
        self._headers = {"Authorization": f"Bearer {token}"}
        self.url = f"local:{root.base}"

    def need_balancer(self) -> None:
        """Decisions come from a dry-run pass, as ``pyirqbalance --dry-run`` makes them."""
        if self.ctx.balancer is None:
            try:
                check_banned_cpus_env(os.environ)
            except ConfigError as err:
                raise CtlError(str(err), EXIT_USAGE) from err
            # The daemon's settings: the YAML balancing: section and IRQBALANCE_* variables.
            settings = build_settings(self.config.balancing, os.environ)
            self.ctx.balancer, _ = dry_run_decisions(self.ctx.root, settings)

    def wait(self, seconds: float) -> None:
        """Two readings ``seconds`` apart (no daemon passes feed this process)."""
        self.ctx.live.refresh()
        time.sleep(seconds)
        self.ctx.live.refresh()

    def request(self, method: str, path: str, params: dict[str, Any] | None = None,
                body: Any = None) -> ApiResponse:
        query = {k: v for k, v in (params or {}).items() if v is not None}
        resp = self._client.open(path, method=method, query_string=query, json=body,
                                 headers=self._headers)
        data = resp.get_json(silent=True) if resp.is_json else resp.get_data(as_text=True)
        return ApiResponse(resp.status_code, data)


class HttpBackend:
    def __init__(self, url: str, token: str | None) -> None:
        try:
            self._client = ApiClient(url, token)
        except ValueError as err:
            raise CtlError(str(err), EXIT_USAGE) from err
        self.url = url

    def need_balancer(self) -> None:
        """The daemon's own balancer answers."""

    def wait(self, seconds: float) -> None:
        """The daemon keeps its passes: nothing to wait for."""

    def request(self, method: str, path: str, params: dict[str, Any] | None = None,
                body: Any = None) -> ApiResponse:
        try:
            return self._client.request(method, path, params, body)
        except ApiUnreachable as err:
            raise CtlError(str(err), EXIT_UNREACHABLE) from err


def _call(backend: Any, method: str, path: str, params: dict[str, Any] | None = None,
          body: Any = None) -> Any:
    resp = backend.request(method, path, params, body)
    if not resp.ok:
        raise CtlError(resp.error, _STATUS_EXIT.get(resp.status, EXIT_UNREACHABLE))
    return resp.data


def _read_config(path: str, given: bool) -> Config:
    if not given and not os.path.exists(path):
        return Config()
    try:
        return load_config(path)
    except ConfigError as err:
        raise CtlError(str(err), EXIT_USAGE) from err


def _listen_url(config: Config) -> str | None:
    """The daemon's API listener, the unix socket first (root-only, no token sniffing)."""
    api = config.api
    if not api.enabled:
        return None
    return f"unix:{api.unix_socket}" if api.unix_socket else f"http://{api.listen}"


def _token(args: argparse.Namespace, config: Config) -> str | None:
    if os.environ.get("PYIRQBALANCE_TOKEN"):
        return os.environ["PYIRQBALANCE_TOKEN"]
    path = args.token_file or config.api.token_file
    if not path:
        return None
    try:
        with open(path, encoding="utf-8") as f:
            return f.read().strip()
    except OSError as err:
        if args.token_file:
            raise CtlError(f"token file {path}: {err.strerror}", EXIT_DENIED) from err
        return None  # reads still work; a write will say a token is needed


def make_backend(args: argparse.Namespace) -> Any:
    config = _read_config(args.config or DEFAULT_CONFIG_PATH, args.config is not None)
    url = None if args.local else (args.url or os.environ.get("PYIRQBALANCE_URL")
                                   or _listen_url(config))
    if url:
        return HttpBackend(url, _token(args, config))
    path = args.history
    if path is None:
        path = (config.history.path if args.sysroot == "/" else
                os.path.join(args.sysroot, "var", "lib", "pyirqbalance", "history.sqlite"))
    history = (HistoryConfig(path=path, resolution_s=config.history.resolution_s)
               if os.path.exists(path) else None)
    return LocalBackend(SysRoot(args.sysroot), history, config)


# --------------------------------------------------------------------------
# output
# --------------------------------------------------------------------------


def table(rows: Sequence[Sequence[Any]], right: Sequence[int] = ()) -> str:
    """Aligned columns; ``right`` lists the column indexes aligned right (numbers)."""
    cells = [[str(c) for c in r] for r in rows]
    if not cells:
        return ""
    widths = [max(len(r[k]) for r in cells) for k in range(len(cells[0]))]
    out = ["  ".join(c.rjust(w) if k in right else c.ljust(w)
                     for k, (c, w) in enumerate(zip(r, widths))).rstrip() for r in cells]
    return "\n".join(out) + "\n"


def _emit(args: argparse.Namespace, data: Any, text: str, out: TextIO) -> None:
    out.write(json.dumps(data, indent=1) + "\n" if args.json else text)


# --------------------------------------------------------------------------
# commands
# --------------------------------------------------------------------------


def cmd_status(args: argparse.Namespace, backend: Any, out: TextIO) -> int:
    data = _call(backend, "GET", "/api/v1/health")
    if isinstance(backend, LocalBackend):
        # The in-process application's token is this process's own, not a configured one:
        # changes are written to /proc/irq by this command, as the user running it.
        data["writes"] = {"token": False, "local_root": False, "local": True}
    hist = data["history"]
    lines = [
        f"api:        {backend.url}",
        f"version:    {data['version']}",
        "cycle:      " + (str(data["cycle"]) if data["cycle"] is not None
                             else "- (no daemon in this process)"),
        f"last pass:  {data['last_pass'] or '-'}",
        f"history:    {'on, ' + hist['path'] if hist['enabled'] else 'off'}"
        + (f" ({hist['error']})" if hist["error"] else ""),
        f"writes:     {_writes(data)}",
        "overrides:  " + (", ".join(f"IRQ {i} -> {c}" for i, c in data["overrides"].items())
                          or "none"),
        "reads:      " + ("open to the network (api.allow_remote_reads)"
                          if data.get("api_remote_reads") else "this host only"),
        "problems:   " + ("; ".join(data.get("problems") or ()) or "none"),
    ]
    _emit(args, data, "\n".join(lines) + "\n", out)
    return EXIT_OK


def _writes(health: dict[str, Any]) -> str:
    ways = health.get("writes") or {}
    if ways.get("local"):
        return "local mode: this command writes /proc/irq itself (needs root), no daemon API"
    doors = [d for d, on in (("token", ways.get("token")), ("root on this host",
                                                            ways.get("local_root"))) if on]
    return "enabled (" + ", ".join(doors) + ")" if doors else "disabled"


def _select_rows(data: dict[str, Any], args: argparse.Namespace) -> list[dict[str, Any]]:
    rows = data["rows"]
    if not args.all:
        rows = [r for r in rows if r["irq"] is not None]
    if args.irq:
        rows = [r for r in rows if r["irq"] in args.irq]
    if args.name:
        rows = [r for r in rows if args.name.lower() in (r["name"] or "").lower()]
    if args.nonzero:
        rows = [r for r in rows if r["total"]]
    return rows


def _cpu_filter(args: argparse.Namespace, cpus: list[int]) -> list[int]:
    if not args.cpus:
        return list(range(len(cpus)))
    try:
        wanted = parse_cpulist(args.cpus)
    except MaskError as err:
        raise CtlError(f"--cpus: {err}", EXIT_USAGE) from err
    return [k for k, c in enumerate(cpus) if wanted >> c & 1]


def cmd_distribution(args: argparse.Namespace, backend: Any, out: TextIO) -> int:
    data = _call(backend, "GET", "/api/v1/get_current_distribution", {"format": "json"})
    rows = _select_rows(data, args)
    cols = _cpu_filter(args, data["cpus"])
    if args.json:
        data = {**data, "cpus": [data["cpus"][k] for k in cols],
                "rows": [{**r, "counts": [r["counts"][k] for k in cols if k < len(r["counts"])]}
                         for r in rows]}
        _emit(args, data, "", out)
        return EXIT_OK
    head = ["IRQ"] + [f"CPU{data['cpus'][k]}" for k in cols] + ["TOTAL", "NAME"]
    body = [[r["label"]] + [r["counts"][k] if k < len(r["counts"]) else "" for k in cols]
            + [r["total"], r["name"]] for r in rows]
    out.write(table([head] + body, right=range(len(head) - 1)))
    return EXIT_OK


def cmd_cpu_summary(args: argparse.Namespace, backend: Any, out: TextIO) -> int:
    dist = _call(backend, "GET", "/api/v1/get_current_distribution", {"format": "json"})
    cpus = [dist["cpus"][k] for k in _cpu_filter(args, dist["cpus"])]
    if not cpus:
        raise CtlError(f"--cpus {args.cpus}: none of these CPUs is in /proc/interrupts (CPUs "
                       f"{', '.join(map(str, dist['cpus']))})", EXIT_NOT_FOUND)
    backend.wait(args.seconds)
    results = [_call(backend, "GET", "/api/v1/get_interrupt_by_cpu",
                     {"cpu": c, "second": args.seconds}) for c in cpus]
    rows = [["CPU", "INTERRUPTS", "PER SEC", "SECONDS", "TOP IRQS"]]
    for r in results:
        top = ", ".join(f"{i['irq']}:{i['count']}" for i in r["irqs"][:4])
        rate = "-" if r["per_second"] is None else f"{r['per_second']:.1f}"
        rows.append([r["cpu"], r["total"], rate, f"{r['seconds']:.0f}", top])
    _emit(args, results, table(rows, right=(0, 1, 2, 3)), out)
    return EXIT_OK


def _history_state(data: dict[str, Any]) -> list[str]:
    """What a window without recorded samples needs: said plainly."""
    hist = data.get("history")
    if data.get("source") != "history" or hist is None or data.get("samples"):
        return []
    every = f" (one every {hist['resolution_s']:g} s)" if hist.get("resolution_s") else ""
    if hist["samples"] == 0:
        return [f"history has no sample yet: the first is recorded at the daemon's first "
                f"pass{every}"]
    if hist["samples"] == 1:
        return [f"history has one sample, at {hist['last_sample']}; a window needs two: the "
                f"next is recorded at about {hist['next_sample'] or '-'}{every}"]
    return [f"no recorded sample in this window; history has {hist['samples']} samples, the "
            f"last at {hist['last_sample']}"]


def cmd_summary(args: argparse.Namespace, backend: Any, out: TextIO) -> int:
    data = _call(backend, "GET", "/api/v1/irqsummary", {"start": args.start, "stop": args.stop})
    empty = _history_state(data)
    if empty:
        text = "".join(f"{line}\n" for line in
                       [f"window asked: {data['start']} .. {data['stop']}", *empty])
        _emit(args, data, text, out)
        return EXIT_OK
    lines = [f"window asked: {data['start']} .. {data['stop']}",
             f"covered:      {data['covered_from']} .. {data['covered_to']}  ({data['source']}; "
             f"{data['reboots']} reboot(s), wraps {data['wraps']}, resets {data['resets']})"]
    if data["reboots"]:
        lines += [f"  boot {b['boot_id']} at {b['btime']}" for b in data["boots"]]
    lines += [f"note: {n}" for n in data["notes"]]
    lines.append("")
    cpu_rows = [["CPU", "INTERRUPTS", "IRQ JIFFIES", "SOFTIRQ JIFFIES"]] + [
        [c, n, data["irq_jiffies"].get(c, "-"), data["softirq_jiffies"].get(c, "-")]
        for c, n in data["per_cpu"].items()]
    irqs = sorted(data["irqs"], key=lambda i: -i["total"])[:args.top]
    irq_rows = [["IRQ", "TOTAL", "TOP CPUS", "NAME"]] + [
        [i["irq"], i["total"],
         ", ".join(f"{c}:{n}" for c, n in sorted(i["per_cpu"].items(), key=lambda kv: -kv[1])[:3]),
         i["name"]] for i in irqs]
    text = "\n".join(lines) + "\n" + table(cpu_rows, right=(0, 1, 2, 3)) + "\n" + table(
        irq_rows, right=(0, 1))
    _emit(args, data, text, out)
    return EXIT_OK


def cmd_irq(args: argparse.Namespace, backend: Any, out: TextIO) -> int:
    backend.need_balancer()
    data = _call(backend, "GET", f"/api/v1/irqsummary/{args.irq}")
    d = data.get("decision") or {}
    o = data.get("override")
    lines = [
        f"IRQ {data['irq']}: {data['name'] or '?'}  ({data['chip'] or '?'} {data['hwirq'] or ''})",
        f"  interrupts:          {data['total']}",
        f"  smp_affinity:        {data['smp_affinity']} (CPUs {data['smp_affinity_list']})",
        f"  effective affinity:  {data['effective_affinity_list']}",
        f"  node:                {data['node']}",
        f"  override:            {o['cpus'] + ' (set through the API)' if o else 'none'}",
    ]
    if d and o:
        lines += [f"  class / level:       {d['class']} / {d['level']}",
                  f"  balancer target:     - (pinned to {o['cpus']} through the API: the "
                  "balancer leaves it alone until 'pyirqbalancectl release "
                  f"{data['irq']}')"]
    elif d:
        lines += [f"  class / level:       {d['class']} / {d['level']}",
                  f"  balancer target:     {d['target_cpus'] or '-'}",
                  f"  why:                 {d['reason']}"]
    _emit(args, data, "\n".join(lines) + "\n", out)
    return EXIT_OK


def _banned_target(args: argparse.Namespace, backend: Any) -> str | None:
    """Why the CPUs asked for are ones the balancer keeps IRQs off (None: they are not)."""
    try:
        wanted = parse_cpulist(args.cpus) if args.cpus is not None else parse_mask(args.mask)
    except MaskError:
        return None                      # the API says what is wrong with it
    backend.need_balancer()
    resp = backend.request("GET", "/api/v1/topology")
    if not resp.ok:
        return None                      # no balancer to ask: nothing known to be banned
    cpus = resp.data["cpus"]
    try:
        banned = parse_cpulist(cpus["banned"]) if cpus["banned"] else 0
    except MaskError:
        return None
    if not wanted & banned:
        return None
    source = cpus.get("banned_source") or "banned CPUs"
    return (f"CPU {format_cpulist(wanted & banned)} is banned for interrupts ({source}): the "
            "balancer keeps IRQs off it so that the work isolated there is not interrupted; "
            f"add --force to pin IRQ {args.irq} there anyway")


def cmd_set(args: argparse.Namespace, backend: Any, out: TextIO) -> int:
    body = {"cpus": args.cpus} if args.cpus is not None else {"mask": args.mask}
    if not args.force:
        why = _banned_target(args, backend)
        if why is not None:
            raise CtlError(why, EXIT_USAGE)
    data = _call(backend, "PUT", f"/api/v1/irqsummary/{args.irq}", body=body)
    _emit(args, data, f"IRQ {data['irq']} pinned to CPUs {data['cpus']} (mask {data['mask']}); "
                      "the balancer leaves it alone until released\n", out)
    return EXIT_OK


def cmd_release(args: argparse.Namespace, backend: Any, out: TextIO) -> int:
    if args.all == (args.irq is not None):
        raise CtlError("release: give one IRQ number, or --all", EXIT_USAGE)
    if args.all:
        return _release_all(args, backend, out)
    data = _call(backend, "DELETE", f"/api/v1/irqsummary/{args.irq}")
    _emit(args, data, f"IRQ {args.irq} handed back to the balancer\n", out)
    return EXIT_OK


def _release_all(args: argparse.Namespace, backend: Any, out: TextIO) -> int:
    health = _call(backend, "GET", "/api/v1/health")
    released = []
    for irq in health["overrides"]:
        _call(backend, "DELETE", f"/api/v1/irqsummary/{irq}")
        released.append(int(irq))
    text = (f"released {len(released)} override(s): {', '.join(map(str, released))}\n"
            if released else "no overrides\n")
    _emit(args, {"released": released}, text, out)
    return EXIT_OK


def cmd_report(args: argparse.Namespace, backend: Any, out: TextIO) -> int:
    if args.file:
        try:
            with open(args.file, encoding="utf-8", errors="replace") as f:
                parsed = parse_interrupts(f.read())
        except (OSError, ParseError) as err:
            raise CtlError(f"{args.file}: {err}", EXIT_USAGE) from err
        counts, names = counts_from_interrupts(parsed)
        data = build_report(counts, names, threshold=args.threshold, cpus=parsed.cpus,
                            source=f"file {args.file}").to_json()
        _emit(args, data, format_report(data, args.flagged), out)
        return EXIT_OK
    backend.need_balancer()
    data = _call(backend, "GET", "/api/v1/report",
                 {"threshold": args.threshold, "start": args.start, "stop": args.stop,
                  "group": args.group})
    _emit(args, data, format_report(data, args.flagged) + _placement_text(data), out)
    return EXIT_OK


def _placement_text(data: dict) -> str:
    """--placement=balanced: each CPU's predicted interrupt time now and after, the floor."""
    if "placement" not in data:
        return ""
    from ..service.explain import format_placement_text  # deferred: balanced mode only

    return "\n" + format_placement_text(data["placement"])


def cmd_top(args: argparse.Namespace, backend: Any, out: TextIO) -> int:
    live = isinstance(backend, LocalBackend)
    prev = _call(backend, "GET", "/api/v1/get_current_distribution", {"format": "json"})
    prev_t = time.monotonic()
    frames = 0
    clear = "\x1b[H\x1b[2J" if out.isatty() else ""
    while args.iterations is None or frames < args.iterations:
        time.sleep(args.interval)
        if live:
            backend.ctx.live.refresh()
        cur = _call(backend, "GET", "/api/v1/get_current_distribution", {"format": "json"})
        now = time.monotonic()
        dt = max(now - prev_t, 1e-9)
        frame = _top_frame(prev, cur, dt, args.limit)
        if args.json:
            out.write(json.dumps(frame) + "\n")
        else:
            out.write(clear + _top_text(frame))
        out.flush()
        prev, prev_t = cur, now
        frames += 1
    return EXIT_OK


def _top_frame(prev: dict[str, Any], cur: dict[str, Any], dt: float, limit: int) -> dict[str, Any]:
    before = {r["label"]: dict(zip(prev["cpus"], r["counts"])) for r in prev["rows"]}
    cpu_rate = dict.fromkeys(cur["cpus"], 0.0)
    irq_rate = []
    for r in cur["rows"]:
        if r["irq"] is None:
            continue
        old = before.get(r["label"], {})
        total = 0
        for c, n in zip(cur["cpus"], r["counts"]):
            d = n - old.get(c, n)
            d = d if d >= 0 else n  # a reset; wraps are rare enough for a live view
            cpu_rate[c] += d / dt
            total += d
        irq_rate.append({"irq": r["irq"], "name": r["name"], "per_second": total / dt})
    irq_rate.sort(key=lambda i: (-i["per_second"], i["irq"]))
    return {"taken_at": cur["taken_at"], "seconds": dt,
            "cpus": {str(c): round(v, 1) for c, v in cpu_rate.items()},
            "irqs": [{**i, "per_second": round(i["per_second"], 1)} for i in irq_rate[:limit]]}


def _top_text(frame: dict[str, Any]) -> str:
    cpus = [["CPU", "IRQ/s"]] + [[c, f"{v:.1f}"] for c, v in frame["cpus"].items()]
    irqs = [["IRQ", "IRQ/s", "NAME"]] + [[i["irq"], f"{i['per_second']:.1f}", i["name"]]
                                          for i in frame["irqs"]]
    return (f"pyirqbalancectl top  {frame['taken_at']}  (over {frame['seconds']:.1f} s)\n\n"
            + table(cpus, right=(0, 1)) + "\n" + table(irqs, right=(0, 1)))


# --------------------------------------------------------------------------
# command line
# --------------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="pyirqbalancectl",
        description="Query and steer pyirqbalance through its REST API, or locally.",
        epilog="Exit status: 0 ok, 1 not found, 2 bad usage, 3 API/history unreachable, "
               "4 not authorised, 5 kernel refused.",
    )
    p.add_argument("--url", help="API address: http://host:port or unix:/path "
                                 "(default $PYIRQBALANCE_URL, then the YAML api: listener)")
    p.add_argument("--local", action="store_true",
                   help="do not use the API: read /proc and the history store directly")
    p.add_argument("--sysroot", default="/", help="local mode: machine tree to read (default /)")
    p.add_argument("--history", help="local mode: history store path")
    p.add_argument("--config",
                   help=f"YAML configuration (default {DEFAULT_CONFIG_PATH} if present)")
    p.add_argument("--token-file", help="bearer token for changes (default $PYIRQBALANCE_TOKEN, "
                                        "then api.token_file of the YAML)")
    p.add_argument("--json", action="store_true", help="JSON output for scripts")
    p.add_argument("--version", action="version", version=f"pyirqbalancectl {__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    sub.add_parser("status", help="daemon, history and override state")
    d = sub.add_parser("distribution", help="the /proc/interrupts view")
    d.add_argument("--irq", type=int, action="append", help="only this IRQ (repeatable)")
    d.add_argument("--name", help="only IRQs whose name contains this")
    d.add_argument("--cpus", help="only these CPU columns (cpulist)")
    d.add_argument("--nonzero", action="store_true", help="hide IRQs that never fired")
    d.add_argument("--all", action="store_true", help="include named rows (LOC, NMI, ...)")
    c = sub.add_parser("cpu-summary", help="interrupts per CPU over the last N seconds")
    c.add_argument("--seconds", type=float, default=10.0)
    c.add_argument("--cpus", help="only these CPUs (cpulist)")
    s = sub.add_parser("summary", help="interrupts per CPU and IRQ in a window (history)")
    s.add_argument("--start", help="ISO-8601, epoch seconds or -N[smhd] (write --start=-1h; "
                                    "default: boot)")
    s.add_argument("--stop", help="same forms (default: now)")
    s.add_argument("--top", type=int, default=20, help="IRQs listed (default 20)")
    i = sub.add_parser("irq", help="one IRQ: affinity, counts, the balancer's decision")
    i.add_argument("irq", type=int)
    st = sub.add_parser("set", help="pin an IRQ to CPUs (the balancer leaves it alone)")
    st.add_argument("irq", type=int)
    g = st.add_mutually_exclusive_group(required=True)
    g.add_argument("--cpus", help="CPU list, e.g. 0-3,8")
    g.add_argument("--mask", help="hex CPU mask, e.g. f or 00000001,00000000")
    st.add_argument("--force", action="store_true",
                    help="pin even onto CPUs the balancer keeps IRQs off (isolated, banned)")
    r = sub.add_parser("release", help="hand a pinned IRQ (or with --all every one) back to "
                                       "the balancer")
    r.add_argument("irq", type=int, nargs="?")
    r.add_argument("--all", action="store_true",
                   help="release every pinned IRQ (pyirqbalance --restore, by contrast, "
                        "writes back the affinities found before the first change)")
    rp = sub.add_parser("report", help="load report with the balancer's recommendations")
    rp.add_argument("--threshold", type=float, default=5.0,
                    help="Balanced when an IRQ's largest and smallest CPU shares differ by at "
                         "most this many percentage points (default 5)")
    rp.add_argument("--start", help="window start (history); default: since boot")
    rp.add_argument("--stop", help="window end")
    rp.add_argument("--group", choices=("auto", "cpu", "node", "package"), default="auto")
    rp.add_argument("--file", help="a saved /proc/interrupts (shares only)")
    rp.add_argument("--flagged", action="store_true", help="list flagged IRQs only")
    t = sub.add_parser("top", help="live per-CPU and per-IRQ rates")
    t.add_argument("--interval", type=float, default=2.0)
    t.add_argument("--iterations", type=int, help="frames to show, then exit (default: forever)")
    t.add_argument("--limit", type=int, default=20, help="IRQs listed")
    return p


_COMMANDS = {
    "status": cmd_status, "distribution": cmd_distribution, "cpu-summary": cmd_cpu_summary,
    "summary": cmd_summary, "irq": cmd_irq, "set": cmd_set, "release": cmd_release,
    "report": cmd_report, "top": cmd_top,
}


def main(argv: list[str] | None = None, out: TextIO | None = None) -> int:
    """Entry point of ``pyirqbalancectl``."""
    out = out or sys.stdout
    args = _parser().parse_args(argv)
    try:
        backend = None if args.command == "report" and args.file else make_backend(args)
        return _COMMANDS[args.command](args, backend, out)
    except CtlError as err:
        sys.stderr.write(f"pyirqbalancectl: {err}\n")
        return err.code
    except KeyboardInterrupt:
        return EXIT_OK
    except BrokenPipeError:
        return EXIT_OK
