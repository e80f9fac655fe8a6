from __future__ import annotations

import pytest

from tinyevo.errors import TinyEvoError, UnknownNameError
from tinyevo.registry import Registry


def test_register_create_and_names() -> None:
    reg: Registry[object] = Registry("widget")

    @reg.register("b")
    def make_b(*, size: int = 1) -> dict[str, int]:
        """Makes a b."""
        return {"b": size}

    reg.register("a", help="an a")(lambda: "a")
    assert reg.names() == ["a", "b"]
    assert reg.create("b", size=3) == {"b": 3}
    assert reg.describe("b") == "Makes a b."
    assert reg.describe("a") == "an a"
    assert "a" in reg and "zzz" not in reg


def test_unknown_name_is_named_error_listing_known() -> None:
    reg: Registry[object] = Registry("widget")
    reg.register("alpha")(lambda: 1)
    with pytest.raises(UnknownNameError) as info:
        reg.create("beta")
    assert isinstance(info.value, TinyEvoError)
    assert "unknown widget 'beta'" in str(info.value) and "alpha" in str(info.value)


def test_double_registration_rejected() -> None:
    reg: Registry[object] = Registry("widget")
    reg.register("x")(lambda: 1)
    with pytest.raises(ValueError, match="twice"):
        reg.register("x")(lambda: 2)
