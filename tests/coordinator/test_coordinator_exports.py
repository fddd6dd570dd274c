"""Every coordinator module lists its public names in ``__all__``, and they exist."""

from __future__ import annotations

import importlib
import pkgutil

import pytest

import coordinator

MODULES = sorted(
    info.name
    for info in pkgutil.walk_packages(coordinator.__path__, "coordinator.")
    if ".migrations" not in info.name and not info.ispkg
)


@pytest.mark.parametrize("name", MODULES)
def test_all_names_exist(name: str) -> None:
    module = importlib.import_module(name)
    exported = getattr(module, "__all__", None)
    assert exported, f"{name} has no __all__"
    for attr in exported:
        assert hasattr(module, attr), f"{name}.__all__ lists missing {attr}"
