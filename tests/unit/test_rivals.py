"""The running-irqbalance check reads /proc/<pid>/ through the SysRoot: fake processes.

Expected names follow proc(5): ``comm`` is newline-terminated, ``cmdline`` is argv as
NUL-terminated strings (empty for kernel threads), ``exe`` is a symlink whose target
gains " (deleted)" once the executable is replaced.
"""

from __future__ import annotations

import pytest

from pyirqbalance.kernel.procpid import (
    ProcessNames,
    list_pids,
    parse_argv0,
    parse_comm,
    parse_exe,
    read_process_names,
)
from pyirqbalance.kernel.sysroot import SysRoot
from pyirqbalance.service.rivals import find_irqbalance, is_irqbalance
from tests.conftest import Dir, Symlink


def process(pid: int, comm: str | None = None, cmdline: bytes | None = None,
            exe: str | None = None) -> dict:
    """The files of one fake /proc/<pid>/ (a missing one is unreadable, as without ptrace)."""
    files: dict = {f"proc/{pid}": Dir()}
    if comm is not None:
        files[f"proc/{pid}/comm"] = comm
    if cmdline is not None:
        files[f"proc/{pid}/cmdline"] = cmdline
    if exe is not None:
        files[f"proc/{pid}/exe"] = Symlink(exe)
    return files


def test_parsers():
    assert parse_comm("irqbalance\n") == "irqbalance"
    assert parse_comm("a b\n\n") == "a b\n"  # only the kernel's newline goes
    assert parse_argv0(b"/usr/sbin/irqbalance\0--foreground\0") == "/usr/sbin/irqbalance"
    assert parse_argv0(b"") == ""
    assert parse_exe("/usr/sbin/irqbalance (deleted)") == "/usr/sbin/irqbalance"
    assert parse_exe("/usr/bin/python3.11") == "/usr/bin/python3.11"


def test_names_of_a_process_and_of_one_that_cannot_be_read(make_tree):
    root = make_tree({
        **process(10, "irqbalance\n", b"/usr/sbin/irqbalance\0--foreground\0",
                  "/usr/sbin/irqbalance"),
        **process(11),
    })
    assert read_process_names(root, 10) == ProcessNames(
        10, "irqbalance", "/usr/sbin/irqbalance", "/usr/sbin/irqbalance")
    assert read_process_names(root, 11) == ProcessNames(11, "", "", "")
    assert read_process_names(root, 12) == ProcessNames(12, "", "", "")  # exited meanwhile


def test_only_numeric_entries_are_processes(make_tree):
    root = make_tree({**process(7, "init\n"), "proc/self": Symlink("7"), "proc/irq": Dir(),
                      "proc/stat": "cpu  1 2 3\n", **process(300, "sshd\n")})
    assert sorted(list_pids(root)) == [7, 300]


@pytest.mark.parametrize("names, found", [
    # by the kernel's name only (argv[0] rewritten, exe unreadable)
    ({"comm": "irqbalance\n", "cmdline": b"balancer\0"}, True),
    # by argv[0]'s base name
    ({"comm": "other\n", "cmdline": b"/usr/sbin/irqbalance\0--oneshot\0"}, True),
    ({"cmdline": b"irqbalance\0"}, True),
    # by the executable, replaced by an upgrade since it started
    ({"comm": "x\n", "exe": "/usr/sbin/irqbalance (deleted)"}, True),
    # similar names are other programs
    ({"comm": "irqbalance-ui\n", "cmdline": b"/usr/sbin/irqbalance-ui\0",
      "exe": "/usr/sbin/irqbalance-ui"}, False),
    ({"comm": "pyirqbalance\n", "cmdline": b"/usr/bin/python3\0-m\0pyirqbalance\0",
      "exe": "/usr/bin/python3.11"}, False),
    ({"comm": "vim\n", "cmdline": b"vim\0irqbalance\0"}, False),  # an argument, not the program
    ({}, False),  # a kernel thread or a zombie: nothing to read
])
def test_what_counts_as_irqbalance(make_tree, names, found):
    root = make_tree(process(42, **names))
    assert is_irqbalance(read_process_names(root, 42)) is found
    assert find_irqbalance(root) == (42 if found else None)


def test_find_skips_our_own_pid_and_reports_the_other(make_tree):
    root = make_tree({**process(1, "systemd\n", b"/sbin/init\0"),
                      **process(500, "irqbalance\n"), **process(900, "irqbalance\n")})
    assert find_irqbalance(root, self_pid=500) == 900
    assert find_irqbalance(root, self_pid=900) == 500


def test_no_proc_directory_finds_nothing(make_tree):
    assert find_irqbalance(make_tree({"sys/devices": Dir()})) is None


class _Recording(SysRoot):
    """A SysRoot that notes every path read through it."""

    def __init__(self, base) -> None:
        super().__init__(base)
        self.paths: list[str] = []

    def read_bytes(self, path: str, size_hint: int = 0) -> bytes:  # type: ignore[override]
        self.paths.append(path)
        return SysRoot.read_bytes(path, size_hint)

    def try_read_text(self, path: str, size_hint: int = 0) -> str | None:  # type: ignore[override]
        self.paths.append(path)
        return SysRoot.try_read_text(path, size_hint)

    def readlink(self, path: str) -> str | None:  # type: ignore[override]
        self.paths.append(path)
        return SysRoot.readlink(path)


def test_the_check_reads_only_process_files(make_tree):
    """A harness counting /proc/stat opens as balancing passes sees none from the check."""
    make_tree({"proc/stat": "cpu  1 2 3\n", **process(1, "init\n"), **process(77, "sshd\n")})
    root = _Recording(make_tree({}).base)
    assert find_irqbalance(root) is None
    assert root.paths and all(
        p.startswith((root.proc("1", ""), root.proc("77", ""))) for p in root.paths)
