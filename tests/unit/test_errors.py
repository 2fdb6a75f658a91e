"""One base for every error the package raises on purpose."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import pyirqbalance
from pyirqbalance.errors import DataError, MaskError, ParseError, PyirqbalanceError


def _package_exceptions():
    for mod in pkgutil.walk_packages(pyirqbalance.__path__, "pyirqbalance."):
        if mod.name.endswith("__main__"):
            continue
        module = importlib.import_module(mod.name)
        for _, obj in inspect.getmembers(module, inspect.isclass):
            if issubclass(obj, BaseException) and obj.__module__.startswith("pyirqbalance."):
                yield obj


def test_every_exception_class_of_the_package_has_the_one_base():
    found = set(_package_exceptions())
    assert len(found) >= 13
    assert {c.__qualname__ for c in found if not issubclass(c, PyirqbalanceError)} == set()


def test_the_two_proc_parsers_raise_one_parse_error():
    from pyirqbalance.kernel import procinterrupts, procstat

    assert procinterrupts.ParseError is procstat.ParseError is ParseError
    assert issubclass(ParseError, ValueError) and issubclass(MaskError, ValueError)


def test_a_data_error_names_file_and_line():
    err = DataError("expected 'LABEL: counts'", path="/proc/interrupts", lineno=3, line="junk\n")
    assert str(err) == "/proc/interrupts line 3: expected 'LABEL: counts': 'junk'"
    assert (err.path, err.lineno, err.line) == ("/proc/interrupts", 3, "junk\n")
    assert str(DataError("empty file", path="/proc/stat")) == "/proc/stat: empty file"
    assert str(MaskError("empty cpu mask")) == "empty cpu mask"
