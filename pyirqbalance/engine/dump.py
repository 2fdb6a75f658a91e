"""irqbalance's ``--debug`` tree dump (cputree.c ``dump_tree``), byte for byte.

People who read irqbalance's debug output, and scripts that grep it, see the
same lines from pyirqbalance: per package, its cache domains, their CPUs and
the IRQs attached at each level, with loads and interrupt deltas.
"""

from __future__ import annotations

from ..kernel.cpumask import format_mask
from .classify import IrqInfo
from .topology import NO_NODE, Topology, TopoObj

__all__ = ["INDENT", "JOURNAL_INDENT", "dump_tree"]

INDENT = "    "
#: irqbalance indents with dots in journal mode.
JOURNAL_INDENT = "...."


def _nodes(objs: list[TopoObj]) -> str:
    return "".join(f"{n.number} " for n in objs)


def _irq_line(info: IrqInfo, spaces: int, indent: str) -> str:
    return (
        f"{indent[0] * spaces}Interrupt {info.irq} node_num is "
        f"{info.node.number if info.node is not None else NO_NODE} "
        f"({info.irq_class.label}/{info.load}:{info.diff}) \n"
    )


def dump_tree(topo: Topology, indent: str = INDENT) -> str:
    """The dump as irqbalance prints it after building the tree and after each pass."""
    out: list[str] = []
    for pkg in topo.packages:
        out.append(
            f"Package {pkg.number}:  numa_node {_nodes(pkg.numa_nodes)}"
            f"cpu mask is {format_mask(pkg.mask)} (load {pkg.load})\n"
        )
        for cache in pkg.children:
            out.append(
                f"{indent}{indent}Cache domain {cache.number}:  numa_node is "
                f"{_nodes(cache.numa_nodes)}cpu mask is {format_mask(cache.mask)}  "
                f"(load {cache.load}) \n"
            )
            for cpu in cache.children:
                out.append(
                    f"{indent * 4}CPU number {cpu.number}  numa_node is "
                    f"{_nodes(cpu.parent.numa_nodes if cpu.parent else [])}(load {cpu.load})\n"
                )
                out.extend(_irq_line(i, 18, indent) for i in cpu.interrupts)
            out.extend(_irq_line(i, 10, indent) for i in cache.interrupts)
        out.extend(_irq_line(i, 2, indent) for i in pkg.interrupts)
    return "".join(out)
