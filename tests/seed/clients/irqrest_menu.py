#!/usr/bin/env python3
"""A menu client of the irqRestServer wire contract, driven on stdin (stdlib only).

Written from the contract the seed server's users rely on: GET /irqsummary (optionally
with start/stop as mmddHHMM), PUT /irqsummary/<irq> with the form field cpu (a hex mask:
1 = CPU0, 2 = CPU1), ``Accept: application/json``, only the keys ``message``,
``irq_data``, ``old affinity`` and ``new affinity`` read. The server's address is the first
argument (the original hard-coded http://localhost:8001).
"""

import json
import sys
import urllib.error
import urllib.parse
import urllib.request

SERVER = sys.argv[1] if len(sys.argv) > 1 else "http://localhost:8001"


def call(method, path, params=None, form=None):
    url = SERVER + path
    if params:
        url += "?" + urllib.parse.urlencode({k: v for k, v in params.items() if v is not None})
    data = urllib.parse.urlencode(form).encode() if form is not None else None
    # The original sends these two headers on its GETs (and form data on its PUT).
    headers = {"Accept": "application/json"}
    if data is None:
        headers["Content-Type"] = "application/json"
    req = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=60) as resp:
            return json.loads(resp.read())
    except urllib.error.HTTPError as err:
        return json.loads(err.read())


def show_interrupts(start, stop):
    answer = call("GET", "/irqsummary", {"start": start, "stop": stop})
    if "irq_data" in answer:
        print("{:5} {:>12} {:>12}".format("IRQ", "CPU0", "CPU1"))
        for irq, counts in sorted(answer["irq_data"].items()):
            print(f"{irq:5} {counts[0]:12} {counts[1]:12}")
    if "message" in answer:
        print(answer["message"])


def set_affinity(irq, cpu):
    answer = call("PUT", "/irqsummary/" + irq, form={"cpu": cpu})
    if "old affinity" in answer:
        print("Affinity for", irq, "changed from", answer["old affinity"], "to",
              answer["new affinity"])
    if "message" in answer:
        print(answer["message"])


def main():
    print("1 : interrupts since the last reboot\n2 : interrupts in a time window\n"
          "3 : set an IRQ's affinity")
    choice = input("enter: ").strip()
    if choice == "1":
        show_interrupts(None, None)
    elif choice == "2":
        start = input("start (mmddHHMM): ").strip()
        stop = input("stop (mmddHHMM): ").strip()
        show_interrupts(start, stop)
    elif choice == "3":
        irq = input("IRQ: ").strip()
        cpu = input("CPU mask (1 for cpu0, 2 for cpu1): ").strip()
        set_affinity(irq, cpu)
    else:
        print("not a valid option")


if __name__ == "__main__":
    main()
