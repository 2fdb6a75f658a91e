"""Booting the installed Debian kernel under QEMU to run one guest script as root.

The guest (TCG: no KVM needed) gets ``cpus`` vCPUs in ``nodes`` NUMA nodes (one socket a
node), an NVMe drive (its I/O queue IRQs are kernel-managed), a virtio-net and an e1000e
NIC joined by QEMU's internal hub (no host network, no user-mode networking), and sees
every host path read-only at the same place (the checkout, its venv, /usr/sbin/irqbalance)
over virtio-9p. /run, /var/lib, /var/log and /var/tmp are the guest's own tmpfs. One more
9p share, writable, is mounted at :data:`GUEST_SHARE`: the host puts the script to run
there (``run.sh``) and the guest leaves its results and the script's exit status (``rc``).

The initramfs holds busybox, the modules the 9p root needs (with their dependencies, as
``modinfo`` lists them) and ``init.sh`` of this directory; the NICs' and NVMe drivers are
loaded in the guest from the host's ``/lib/modules`` by the guest script.

Needs ``qemu-system-x86`` (``qemu-system-x86_64``), ``linux-image-amd64`` (``/boot/vmlinuz-*``
and its ``/lib/modules``), ``busybox-static`` and ``kmod`` (``modinfo``).
"""

from __future__ import annotations

import glob
import lzma
import os
import re
import shutil
import stat
import subprocess
import time
from pathlib import Path
from typing import NamedTuple

__all__ = ["GUEST_SHARE", "GuestRun", "Shape", "Tools", "boot", "build_initramfs", "find_tools"]

HERE = Path(__file__).parent
#: Where the guest mounts the writable share (a tmpfs /run of its own underneath).
GUEST_SHARE = "/run/rk"
#: The modules the 9p root needs; their dependencies are added from ``modinfo``.
ROOT_MODULES = ("virtio_pci", "9pnet_virtio", "9p")
#: Memory of each NUMA node (MiB) and the least a guest gets.
NODE_MEM_MB = 384
MIN_MEM_MB = 768


class Shape(NamedTuple):
    """A guest machine: vCPUs spread evenly over NUMA nodes (one socket each)."""

    cpus: int
    nodes: int

    def __str__(self) -> str:
        return f"{self.cpus}cpu-{self.nodes}node"


class Tools(NamedTuple):
    """What a boot needs from the host."""

    qemu: str
    kernel: str
    release: str
    busybox: str
    modinfo: str


class GuestRun(NamedTuple):
    """One finished boot: the guest script's status, the serial console, the share."""

    rc: int | None
    console: str
    share: Path
    seconds: float


def _version_key(text: str) -> list[object]:
    return [int(p) if p.isdigit() else p for p in re.split(r"(\d+)", text)]


def find_tools() -> Tools | str:
    """The host's QEMU, newest installed kernel and static busybox, or why they are missing."""
    missing = []
    qemu = shutil.which("qemu-system-x86_64")
    if qemu is None:
        missing.append("qemu-system-x86_64 (apt-get install qemu-system-x86)")
    kernels = _kernels()
    release = kernels[-1].removeprefix("/boot/vmlinuz-") if kernels else ""
    if not kernels:
        missing.append("/boot/vmlinuz-* (apt-get install linux-image-amd64)")
    elif not os.access(kernels[-1], os.R_OK):
        missing.append(f"read access to {kernels[-1]}")
    elif not os.path.isdir(f"/lib/modules/{release}"):
        missing.append(f"/lib/modules/{release}")
    busybox = next((p for p in ("/bin/busybox", "/usr/bin/busybox") if os.path.exists(p)), None)
    if busybox is None or not _is_static(busybox):
        missing.append("a static busybox (apt-get install busybox-static)")
    modinfo = shutil.which("modinfo") or next(
        (p for p in ("/sbin/modinfo", "/usr/sbin/modinfo") if os.path.exists(p)), None)
    if modinfo is None:
        missing.append("modinfo (apt-get install kmod)")
    if missing:
        return "missing " + ", ".join(missing)
    assert qemu and busybox and modinfo
    return Tools(qemu, kernels[-1], release, busybox, modinfo)


def _kernels() -> list[str]:
    """/boot/vmlinuz-* to choose from, best last: the one Debian's ``linux-image-amd64``
    depends on if installed (a cloud VM may also boot ``-cloud-amd64``, without e1000e),
    else the newest generic one."""
    found = sorted(glob.glob("/boot/vmlinuz-*"), key=_version_key)
    try:
        depends = subprocess.run(["dpkg-query", "-W", "-f", "${Depends}", "linux-image-amd64"],
                                 capture_output=True, text=True, check=False).stdout
    except OSError:
        depends = ""
    m = re.match(r"linux-image-(\S+)", depends)
    if m and f"/boot/vmlinuz-{m.group(1)}" in found:
        return [f"/boot/vmlinuz-{m.group(1)}"]
    return [k for k in found if "-cloud-" not in k] or found


def _is_static(path: str) -> bool:
    """An ELF file without a PT_INTERP program header (runs without the host's libc)."""
    with open(path, "rb") as f:
        head = f.read(64)
        if head[:4] != b"\x7fELF" or head[4] != 2:  # 64-bit ELF only
            return False
        phoff = int.from_bytes(head[32:40], "little")
        phentsize = int.from_bytes(head[54:56], "little")
        phnum = int.from_bytes(head[56:58], "little")
        f.seek(phoff)
        table = f.read(phentsize * phnum)
    return all(int.from_bytes(table[i:i + 4], "little") != 3  # PT_INTERP
               for i in range(0, len(table), phentsize))


# --------------------------------------------------------------------------
# the initramfs
# --------------------------------------------------------------------------


def _modinfo(tools: Tools, module: str, field: str) -> str:
    out = subprocess.run([tools.modinfo, "-k", tools.release, "-F", field, module],
                         capture_output=True, text=True, check=True)
    return out.stdout.strip()


def module_files(tools: Tools, names: tuple[str, ...] = ROOT_MODULES) -> list[tuple[str, str]]:
    """(name, file) of ``names`` and what they depend on, dependencies first; built-in
    modules (no file) are left out."""
    order: list[tuple[str, str]] = []
    seen: set[str] = set()

    def visit(name: str) -> None:
        key = name.replace("-", "_")
        if key in seen:
            return
        seen.add(key)
        for dep in filter(None, _modinfo(tools, name, "depends").split(",")):
            visit(dep)
        filename = _modinfo(tools, name, "filename")
        if filename.startswith("/"):
            order.append((key, filename))

    for name in names:
        visit(name)
    return order


def _module_bytes(path: str) -> bytes:
    if path.endswith(".xz"):
        with lzma.open(path) as f:
            return f.read()
    if path.endswith(".zst"):
        return subprocess.run(["zstd", "-qdc", path], capture_output=True, check=True).stdout
    if path.endswith(".gz"):
        import gzip  # only for kernels that compress modules with gzip

        with gzip.open(path) as f:
            return f.read()
    return Path(path).read_bytes()


def _newc(entries: list[tuple[str, int, bytes, int]]) -> bytes:
    """A cpio archive in the kernel's ``newc`` format: (name, mode, data, rdev) entries."""
    out = bytearray()
    for ino, (name, mode, data, rdev) in enumerate([*entries, ("TRAILER!!!", 0, b"", 0)], 1):
        raw = name.encode() + b"\0"
        fields = (ino, mode, 0, 0, 1, 0, len(data), 0, 0, rdev >> 8, rdev & 0xFF, len(raw), 0)
        out += b"070701" + b"".join(b"%08X" % v for v in fields) + raw
        out += b"\0" * (-len(out) % 4) + data
        out += b"\0" * (-len(out) % 4)
    return bytes(out)


def build_initramfs(tools: Tools, out: Path) -> Path:
    """Write the initramfs for ``tools.release`` to ``out`` (an uncompressed newc cpio)."""
    modules = module_files(tools)
    d, f = stat.S_IFDIR | 0o755, stat.S_IFREG
    entries: list[tuple[str, int, bytes, int]] = [
        (name, d, b"", 0) for name in ("bin", "dev", "proc", "sys", "host", "newroot", "modules")
    ]
    entries.append(("dev/console", stat.S_IFCHR | 0o600, b"", (5 << 8) | 1))
    entries.append(("bin/busybox", f | 0o755, Path(tools.busybox).read_bytes(), 0))
    entries.append(("init", f | 0o755, (HERE / "init.sh").read_bytes(), 0))
    entries += [(f"modules/{name}.ko", f | 0o644, _module_bytes(path), 0)
                for name, path in modules]
    entries.append(("modules/order", f | 0o644,
                    "".join(f"{name}\n" for name, _ in modules).encode(), 0))
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_bytes(_newc(entries))
    os.replace(tmp, out)
    return out


# --------------------------------------------------------------------------
# booting
# --------------------------------------------------------------------------


def qemu_argv(tools: Tools, shape: Shape, initramfs: Path, share: Path, disk: Path) -> list[str]:
    """The QEMU command line for ``shape`` (TCG, serial console on stdout, no host network)."""
    per = shape.cpus // shape.nodes
    mem = max(MIN_MEM_MB, NODE_MEM_MB * shape.nodes)
    argv = [tools.qemu, "-accel", "tcg,thread=multi", "-cpu", "max", "-m", f"{mem}M",
            "-smp", f"{shape.cpus},sockets={shape.nodes},cores={per},threads=1"]
    for n in range(shape.nodes):
        argv += ["-object", f"memory-backend-ram,id=m{n},size={mem // shape.nodes}M",
                 "-numa", f"node,nodeid={n},cpus={n * per}-{n * per + per - 1},memdev=m{n}"]
    return argv + [
        "-kernel", tools.kernel, "-initrd", str(initramfs),
        "-append", "console=ttyS0 quiet panic=-1",
        "-virtfs", "local,path=/,mount_tag=hostroot,security_model=none,readonly=on,"
                   "multidevs=remap",
        "-virtfs", f"local,path={share},mount_tag=rkshare,security_model=none",
        "-drive", f"file={disk},if=none,id=d0,format=raw", "-device", "nvme,drive=d0,serial=rk0",
        # both NICs on QEMU's internal hub 0: they only reach each other
        "-netdev", "hubport,id=n0,hubid=0", "-device", "virtio-net-pci,netdev=n0,romfile=",
        "-netdev", "hubport,id=n1,hubid=0", "-device", "e1000e,netdev=n1,romfile=",
        "-nographic", "-no-reboot", "-nodefaults", "-serial", "stdio",
    ]


def boot(tools: Tools, shape: Shape, initramfs: Path, workdir: Path, script: str,
         timeout: float = 600) -> GuestRun:
    """Boot ``shape``, run ``script`` (POSIX sh) as root in the guest, power off.

    ``workdir/share`` is the guest's :data:`GUEST_SHARE`; the console goes to
    ``workdir/console.txt``. The guest script's exit status is ``rc`` (None: the guest
    never got to write it — crash, timeout or a failed mount, see the console).
    """
    share = workdir / "share"
    share.mkdir(parents=True)
    (share / "run.sh").write_text(script)
    disk = workdir / "nvme0.img"
    with open(disk, "wb") as f:
        f.truncate(64 << 20)
    console = workdir / "console.txt"
    started = time.monotonic()
    with open(console, "wb") as out:
        try:
            subprocess.run(qemu_argv(tools, shape, initramfs, share, disk),
                           stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                           timeout=timeout, check=False)
        except subprocess.TimeoutExpired:
            out.write(f"\n[host] the guest did not power off within {timeout:g} s\n".encode())
    seconds = time.monotonic() - started
    text = console.read_bytes().decode(errors="replace").replace("\r", "")
    try:
        rc: int | None = int((share / "rc").read_text())
    except (FileNotFoundError, ValueError):
        rc = None
    disk.unlink()
    return GuestRun(rc, text, share, seconds)
