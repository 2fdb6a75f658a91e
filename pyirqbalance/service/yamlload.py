"""``yaml.safe_load`` with limits a configuration file never needs to exceed.

PyYAML's composer recurses once per nesting level, so ``[`` repeated 100 000
times ends in RecursionError; its aliases share nodes, so a few lines of
``&a [*b, *b, ...]`` stand for billions of values that every later step
(validation, an error message's ``repr``) would walk; and a mapping that
names a key twice silently keeps the last value. :func:`safe_load_limited`
therefore reads in three steps, each bounded:

1. the event stream (PyYAML's parser is a state machine, not recursive),
   refusing nesting deeper than ``max_depth`` before anything is composed;
2. composition, then the size of the node graph with every alias expanded,
   counted in linear time over the shared nodes, refusing more than
   ``max_nodes`` values (and recursive aliases);
3. construction, refusing duplicate keys in a mapping.

Every refusal is a :class:`YamlLimitError` whose message is one line.
"""

from __future__ import annotations

from typing import Any

import yaml
from yaml.constructor import ConstructorError
from yaml.nodes import MappingNode, Node, SequenceNode

from ..errors import DataError

__all__ = ["YamlLimitError", "safe_load_limited"]


class YamlLimitError(DataError):
    """The text is not YAML, or is beyond a limit; the message is one line."""


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader refusing a key given twice in one mapping."""

    def construct_mapping(self, node: Node, deep: bool = False) -> dict[Any, Any]:
        if isinstance(node, MappingNode):
            seen: set[Any] = set()
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    continue
                key = self.construct_object(key_node, deep=True)
                try:
                    duplicate = key in seen
                    seen.add(key)
                except TypeError:
                    continue  # an unhashable key: construction reports it
                if duplicate:
                    raise ConstructorError(
                        None, None, f"duplicate key {str(key)[:64]!r}", key_node.start_mark)
        return super().construct_mapping(node, deep=deep)  # type: ignore[arg-type]


def _where(err: yaml.YAMLError) -> str:
    mark: Any = getattr(err, "problem_mark", None)
    where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
    problem = getattr(err, "problem", None) or str(err).splitlines()[0]
    return f"YAML error{where}: {str(problem)[:120]}"


def _check_depth(text: str, max_depth: int) -> None:
    depth = 0
    for event in yaml.parse(text, Loader=yaml.SafeLoader):
        if isinstance(event, yaml.CollectionStartEvent):
            depth += 1
            if depth > max_depth:
                mark: Any = event.start_mark
                raise YamlLimitError(
                    f"YAML nested more than {max_depth} levels deep "
                    f"(line {mark.line + 1}, column {mark.column + 1})")
        elif isinstance(event, yaml.CollectionEndEvent):
            depth -= 1


def _expanded_size(root: Node, max_nodes: int) -> int:
    """How many values ``root`` stands for with aliases expanded (shared nodes counted
    once per use); stops counting past ``max_nodes``. Raises on a recursive alias."""
    sizes: dict[int, int] = {}
    active: set[int] = set()
    stack: list[tuple[Node, bool]] = [(root, False)]
    while stack:
        node, done = stack.pop()
        key = id(node)
        children = _children(node)
        if done:
            active.discard(key)
            sizes[key] = min(1 + sum(sizes[id(c)] for c in children), max_nodes + 1)
            continue
        if key in sizes:
            continue
        if key in active:
            raise YamlLimitError("YAML alias refers to itself (recursive anchor)")
        active.add(key)
        stack.append((node, True))
        for child in children:
            if id(child) in active:
                raise YamlLimitError("YAML alias refers to itself (recursive anchor)")
            if id(child) not in sizes:
                stack.append((child, False))
    return sizes[id(root)]


def _children(node: Node) -> list[Node]:
    if isinstance(node, SequenceNode):
        return list(node.value)
    if isinstance(node, MappingNode):
        return [n for pair in node.value for n in pair]
    return []


def safe_load_limited(text: str, *, max_depth: int, max_nodes: int) -> Any:
    """``yaml.safe_load(text)`` within the limits; None for an empty document."""
    try:
        _check_depth(text, max_depth)
        loader = _StrictLoader(text)
        try:
            node = loader.get_single_node()
            if node is None:
                return None
            size = _expanded_size(node, max_nodes)
            if size > max_nodes:
                raise YamlLimitError(
                    f"YAML stands for more than {max_nodes} values once its aliases are "
                    "expanded (alias bomb?)")
            return loader.construct_document(node)
        finally:
            loader.dispose()
    except yaml.YAMLError as err:
        raise YamlLimitError(_where(err)) from None
    except RecursionError:
        raise YamlLimitError(f"YAML nested more than {max_depth} levels deep") from None
    except (ValueError, TypeError, OverflowError) as err:
        # A value its tag's constructor refuses: an invalid date, an integer of more
        # digits than Python converts, "!!int abc".
        text = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise YamlLimitError(f"YAML value that cannot be read: {text[:120]}") from None
