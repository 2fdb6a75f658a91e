#!/usr/bin/env python3
"""An argparse client of irqbalancing's irq_server wire contract (stdlib only).

``--view distribution`` prints GET /get_current_distribution as sent (raw
/proc/interrupts by default); ``--view cpu-summary`` prints each key of
GET /get_interrupt_by_cpu?second=S; ``--irq N [--cpu MASK]`` sends
PUT /set_affinity/N?cpu=MASK and looks only at the status code.
"""

import argparse
import json
import urllib.error
import urllib.request


def fetch(method, url):
    req = urllib.request.Request(url, method=method)
    try:
        with urllib.request.urlopen(req, timeout=120) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode()


def main():
    p = argparse.ArgumentParser(description="IRQ information service client")
    p.add_argument("-u", "--url", default="http://localhost")
    p.add_argument("-p", "--port", type=int, default=5000)
    p.add_argument("--view", choices=["distribution", "cpu-summary"])
    p.add_argument("--second", type=int, default=5)
    p.add_argument("--irq")
    p.add_argument("--cpu", default=1)
    args = p.parse_args()
    base = f"{args.url}:{args.port}"
    if args.view == "distribution":
        print(fetch("GET", base + "/get_current_distribution")[1], end="")
    elif args.view == "cpu-summary":
        status, body = fetch("GET", f"{base}/get_interrupt_by_cpu?second={args.second}")
        content = json.loads(body)
        print(f"Interrupt handled by CPU in last {args.second} seconds")
        for key in content:
            print(f"{key}: {content[key]}")
    if args.irq:
        status, _ = fetch("PUT", f"{base}/set_affinity/{args.irq}?cpu={args.cpu}")
        if status >= 300:
            print(f"Unable to set affinity for IRQ {args.irq}. Received status code: {status}")
        else:
            print(f"Successfully set affinity for IRQ {args.irq}")


if __name__ == "__main__":
    main()
