"""The balanced placement's text section: interrupt time in ms and as a share of the window."""

from __future__ import annotations

from pyirqbalance.service.explain import format_placement_text

SECTION = {
    "placement": "balanced", "estimated": False, "floor_us": 25000.0,
    "busiest_now_us": 30000.0, "busiest_after_us": 25000.0,
    "cpus": [{"cpu": 0, "now_us": 30000.0, "after_us": 25000.0},
             {"cpu": 1, "now_us": 20000.0, "after_us": 25000.0}],
    "moves": [{"irq": 45, "from": 0, "to": 1}], "located": [],
}


def test_a_pass_window_gives_ms_and_the_share_of_the_window():
    text = format_placement_text({**SECTION, "window": "10 s"})
    lines = text.splitlines()
    # 30 ms of interrupts in 10 s is 0.3% of one CPU's time
    assert lines[0] == ("balanced placement, interrupt time in 10 s: busiest CPU 30.0 ms (0.3%) "
                        "now, 25.0 ms (0.2%) after 1 move; floor 25.0 ms (0.2%)")
    assert lines[1].split() == ["CPU", "NOW", "AFTER"]
    assert lines[2].split() == ["0", "30.0", "ms", "(0.3%)", "25.0", "ms", "(0.2%)"]
    assert " us" not in text


def test_since_boot_gives_ms_only():
    text = format_placement_text({**SECTION, "window": "since boot"})
    assert text.splitlines()[0] == ("balanced placement, interrupt time since boot: busiest CPU "
                                    "30.0 ms now, 25.0 ms after 1 move; floor 25.0 ms")
