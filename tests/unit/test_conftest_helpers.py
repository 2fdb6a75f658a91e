"""The shared test helpers in tests/conftest.py do what the other tests rely on.

Expected values come from the machine description a_desktop4.json (4 CPUs;
IRQ 128 = enp3s0-TxRx-0, network class, total 100000, rate 3000; IRQ 0 =
timer, no_balancing) and from mkfake's documented cost model (network IRQs:
8000 ns of softirq time per interrupt, USER_HZ 100).
"""

from __future__ import annotations

import os

from pyirqbalance.kernel.sysroot import SysRoot
from tests.conftest import Dir, Symlink, changed_affinities, snapshot_smp_affinity


def interrupt_row(root: SysRoot, irq: int, ncpus: int) -> list[int]:
    for line in root.read_text(root.proc("interrupts")).splitlines()[1:]:
        label, _, rest = line.partition(":")
        if label.strip() == str(irq):
            return [int(x) for x in rest.split()[:ncpus]]
    raise AssertionError(f"IRQ {irq} not in /proc/interrupts")


def softirq_jiffies(root: SysRoot, cpu: int) -> int:
    for line in root.read_text(root.proc("stat")).splitlines():
        fields = line.split()
        if fields[0] == f"cpu{cpu}":
            return int(fields[7])
    raise AssertionError(f"cpu{cpu} not in /proc/stat")


def test_fixtures_dir_holds_the_copied_captures(fixtures_dir):
    assert (fixtures_dir / "SOURCES.md").is_file()
    assert (fixtures_dir / "sys" / "this-vm" / "sys" / "devices" / "system" / "cpu").is_dir()


def test_make_tree_writes_files_links_and_dirs(make_tree, tmp_path):
    root = make_tree(
        {
            "proc/interrupts": "           CPU0\n",
            "sys/devices/system/cpu/online": b"0\n",
            "sys/bus/pci/devices/0000:00:01.0": Symlink("../../../devices/pci0000:00/0000:00:01.0"),
            "sys/devices/pci0000:00/0000:00:01.0/msi_irqs": Dir(),
        }
    )
    assert isinstance(root, SysRoot)
    assert root.read_text(root.proc("interrupts")) == "           CPU0\n"
    assert root.read_first_line(root.sys("devices", "system", "cpu", "online")) == "0\n"
    link = root.sys("bus", "pci", "devices", "0000:00:01.0")
    assert root.readlink(link) == "../../../devices/pci0000:00/0000:00:01.0"
    assert root.listdir(os.path.join(link, "msi_irqs")) == []  # followed through the link
    assert root.base.startswith(str(tmp_path))

    again = make_tree({"proc/stat": "cpu  1 2 3\n"})
    assert again.base == root.base
    assert root.exists(root.proc("interrupts")) and root.exists(root.proc("stat"))


def test_fake_machine_builds_a_full_tree(fake_machine):
    root, m = fake_machine("a_desktop4")
    assert m.online == [0, 1, 2, 3]
    assert root.read_text(root.sys("devices", "system", "cpu", "online")) == "0-3\n"
    assert interrupt_row(root, 128, 4) != []
    other, m2 = fake_machine({"topology": {"cores_per_package": 2}})
    assert other.base != root.base
    assert m2.online == [0, 1]
    assert root.read_text(other.sys("devices", "system", "cpu", "online")) == "0-1\n"


def test_counter_simulator_fires_rates_on_the_effective_cpu(fake_machine, counter_simulator):
    root, m = fake_machine("a_desktop4")
    sim = counter_simulator(root, m)
    eff = int(root.read_text(root.proc("irq", "128", "effective_affinity_list")))
    before = interrupt_row(root, 128, 4)
    assert sum(before) == 100000
    soft_before = softirq_jiffies(root, eff)

    sim.advance()
    after = interrupt_row(root, 128, 4)
    assert after[eff] - before[eff] == 3000
    assert sum(after) == 103000
    # 3000 interrupts x 8000 ns of softirq = 24 ms = 2.4 jiffies
    assert softirq_jiffies(root, eff) - soft_before >= 2


def test_counter_simulator_applies_balancer_writes_like_the_kernel(fake_machine, counter_simulator):
    root, m = fake_machine("a_desktop4")
    sim = counter_simulator(root, m)
    eff = int(root.read_text(root.proc("irq", "128", "effective_affinity_list")))
    target = (eff + 1) % 4
    timer_before = root.read_text(root.proc("irq", "0", "smp_affinity"))
    assert root.write(root.proc("irq", "128", "smp_affinity"), f"{1 << target:08x}") == 0
    assert root.write(root.proc("irq", "0", "smp_affinity"), "00000002") == 0

    accepted, rejected = sim.apply_writes()
    assert accepted == {128: [target]}
    assert rejected == {0: "EIO"}  # the timer is IRQF_NOBALANCING
    # the kernel shows its own format back (4 CPUs: one hex digit)
    assert root.read_text(root.proc("irq", "128", "smp_affinity")) == f"{1 << target:x}\n"
    assert root.read_text(root.proc("irq", "0", "smp_affinity")) == timer_before

    before = interrupt_row(root, 128, 4)
    sim.advance()
    after = interrupt_row(root, 128, 4)
    assert after[target] - before[target] == 3000
    assert after[eff] == before[eff]


def test_counter_simulator_rerenders_by_rename_so_readers_see_whole_files(
        fake_machine, counter_simulator):
    """A reader holding smp_affinity open across a re-render still reads the whole old
    text: the kernel's file is replaced, never truncated and rewritten under it (a reader
    once saw '2\\n000001', half of the simulator's text over half of a daemon's write)."""
    root, m = fake_machine("a_desktop4")
    sim = counter_simulator(root, m)
    path = root.proc("irq", "128", "smp_affinity")
    eff = int(root.read_text(root.proc("irq", "128", "effective_affinity_list")))
    target = (eff + 1) % 4
    assert root.write(path, f"{1 << target:08x}") == 0
    with open(path) as reader:
        assert sim.apply_writes() == ({128: [target]}, {})
        assert reader.read() == f"{1 << target:08x}"          # the text it opened, whole
    assert root.read_text(path) == f"{1 << target:x}\n"
    assert not [p for p in os.listdir(root.base) if p.startswith(".render-")]


def test_counter_simulator_takes_a_write_into_the_file_a_rerender_replaced(
        fake_machine, counter_simulator):
    """A writer that opened smp_affinity just before the re-render's rename writes into the
    replaced file: the next pass takes that write, as the kernel would have."""
    root, m = fake_machine("a_desktop4")
    sim = counter_simulator(root, m)
    path = root.proc("irq", "128", "smp_affinity")
    eff = int(root.read_text(root.proc("irq", "128", "effective_affinity_list")))
    first, second = (eff + 1) % 4, (eff + 2) % 4
    assert root.write(path, f"{1 << first:08x}") == 0
    render = sim._render_irq_dir
    late: list[int] = []

    def writer_opens_then_render(irq: int, *args) -> str | None:
        late.append(os.open(path, os.O_WRONLY | os.O_TRUNC))  # after the read, before the rename
        return render(irq)

    sim._render_irq_dir = writer_opens_then_render
    try:
        assert sim.apply_writes() == ({128: [first]}, {})
    finally:
        sim._render_irq_dir = render
    os.write(late[0], f"{1 << second:08x}".encode())    # written after the rename
    os.close(late[0])
    assert sim.apply_writes() == ({128: [second]}, {})
    assert root.read_text(path) == f"{1 << second:x}\n"
    assert sim.apply_writes() == ({}, {})               # taken once


def test_counter_simulator_takes_a_write_made_during_the_rerender_at_once(
        fake_machine, counter_simulator):
    """A write that lands in the file a re-render is about to replace is taken in the same
    pass: the file never shows the mask before it once the writer's write() returned."""
    root, m = fake_machine("a_desktop4")
    sim = counter_simulator(root, m)
    path = root.proc("irq", "128", "smp_affinity")
    eff = int(root.read_text(root.proc("irq", "128", "effective_affinity_list")))
    first, second = (eff + 1) % 4, (eff + 2) % 4
    assert root.write(path, f"{1 << first:08x}") == 0
    render = sim._render_irq_dir
    writes = [f"{1 << second:08x}"]

    def write_then_render(irq: int, *args) -> str | None:
        if writes:   # after the simulator read the first write, before its rename
            assert root.write(path, writes.pop()) == 0
        return render(irq, *args)

    sim._render_irq_dir = write_then_render
    try:
        assert sim.apply_writes() == ({128: [second]}, {})
    finally:
        sim._render_irq_dir = render
    assert root.read_text(path) == f"{1 << second:x}\n"
    assert sim.apply_writes() == ({}, {})               # taken once


def test_smp_affinity_snapshot_detects_changes_only(make_tree):
    root = make_tree(
        {
            "proc/irq/default_smp_affinity": "f\n",
            "proc/irq/1/smp_affinity": "f\n",
            "proc/irq/2/smp_affinity": "3\n",
            "proc/irq/9/node": "0\n",  # no smp_affinity file
        }
    )
    before = snapshot_smp_affinity(root)
    assert before == {"1": b"f\n", "2": b"3\n", "9": None}
    root.write(root.proc("irq", "2", "smp_affinity"), "1\n")
    make_tree({"proc/irq/30/smp_affinity": "1\n"})  # an IRQ that appeared meanwhile
    after = snapshot_smp_affinity(root)
    assert changed_affinities(before, after) == ["2"]
    assert changed_affinities(before, before) == []
