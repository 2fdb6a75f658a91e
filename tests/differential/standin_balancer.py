"""A deliberately naive stand-in balancer that checks the harness, not a reference.

    python3 standin_balancer.py ROOT [--daemon]

Gives the k-th IRQ of ROOT/proc/interrupts (numeric rows, in file order) the
online CPU number (k + pass) modulo the online count, writing every third IRQ
through smp_affinity_list and the others through smp_affinity. With
--daemon it does one such pass per second, re-reading /proc/interrupts and
/proc/stat each time in irqbalance's order (both once at start-up), and
exits 0 on SIGTERM after the pass in progress.
"""

import signal
import sys
import time


def cpulist(text):
    out = []
    for part in text.strip().split(","):
        lo, _, hi = part.partition("-")
        out.extend(range(int(lo), int(hi or lo) + 1))
    return out


def read(path):
    with open(path) as f:
        return f.read()


def numbered_irqs(root):
    rows = read(f"{root}/proc/interrupts").splitlines()[1:]
    return [irq for irq in (row.split(":", 1)[0].strip() for row in rows) if irq.isdigit()]


def balance(root, irqs, online, nbits, shift):
    for k, irq in enumerate(irqs):
        cpu = online[(k + shift) % len(online)]
        if k % 3 == 0:
            name, text = "smp_affinity_list", str(cpu)
        else:
            mask = 1 << cpu
            groups = [f"{(mask >> (32 * g)) & 0xFFFFFFFF:08x}" for g in range((nbits + 31) // 32)]
            name, text = "smp_affinity", ",".join(reversed(groups))
        with open(f"{root}/proc/irq/{irq}/{name}", "w") as f:
            f.write(text)


def main():
    root, daemon = sys.argv[1], "--daemon" in sys.argv[2:]
    online = cpulist(read(f"{root}/sys/devices/system/cpu/online"))
    nbits = max(cpulist(read(f"{root}/sys/devices/system/cpu/possible"))) + 1
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    # irqbalance's read sequence: interrupts + stat at start-up, then each
    # pass interrupts, stat, writes
    numbered_irqs(root)
    read(f"{root}/proc/stat")
    shift = 0
    while True:
        time.sleep(1 if daemon else 0)
        irqs = numbered_irqs(root)
        read(f"{root}/proc/stat")
        balance(root, irqs, online, nbits, shift)
        shift += 1
        if not daemon or stop:
            return 0


if __name__ == "__main__":
    sys.exit(main())
