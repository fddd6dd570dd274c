"""Repository names and tags."""

from __future__ import annotations

import pytest

from portmesh.oci.errors import OCIError
from portmesh.oci.names import MAX_NAME_LENGTH, check_name, check_tag, is_tag


@pytest.mark.parametrize(
    "name",
    [
        "a",
        "library/ubuntu",
        "my-org/team.x/app_1/sub__dir/image--name",
        "0/1/2/3/4",
        "/".join(["a" * 63] * 4),  # exactly 255 characters
    ],
)
def test_valid_names(name: str) -> None:
    assert check_name(name) == name


@pytest.mark.parametrize(
    "name",
    [
        "",
        "..",
        "a/../b",
        "a/./b",
        "../etc",
        "Library/ubuntu",
        "library/Ubuntu",
        "/leading",
        "trailing/",
        "double//slash",
        "-dash",
        "dash-",
        "a..b",
        "a___b",
        "with space",
        "a\0b",
        "library/ubuntu\n",  # "$" would match before a trailing newline
        "a" * (MAX_NAME_LENGTH + 1),
        "/".join(["a" * 63] * 4) + "b",  # 256 characters of valid components
    ],
)
def test_invalid_names(name: str) -> None:
    with pytest.raises(OCIError) as info:
        check_name(name)
    assert info.value.code == "NAME_INVALID"
    assert info.value.status == 400


@pytest.mark.parametrize("tag", ["latest", "v1.0.0", "_private", "A-b_c.d", "9", "t" * 128])
def test_valid_tags(tag: str) -> None:
    assert is_tag(tag)
    assert check_tag(tag) == tag


@pytest.mark.parametrize(
    "tag",
    ["", "latest\n", ".hidden", "-dash", "a/b", "a:b", "t" * 129, "sha256:abc", "spa ce", "ü"],
)
def test_invalid_tags(tag: str) -> None:
    assert not is_tag(tag)
    with pytest.raises(OCIError) as info:
        check_tag(tag)
    assert info.value.code == "TAG_INVALID"
