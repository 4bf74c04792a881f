"""Prefix isolation helpers and the suite's own leak checks."""

from __future__ import annotations

import os

import pytest
from taktora.transport import BytesPayload, ChannelSpec, Node, isolation


@pytest.mark.req("REQ_0101")
def test_node_uses_the_prefix_from_the_environment(iox_prefix: str) -> None:
    assert os.environ[isolation.PREFIX_ENV] == iox_prefix
    with Node("env") as node:
        assert node.prefix == iox_prefix
        node.publisher(ChannelSpec("t/env", BytesPayload(8)))
        assert isolation.leaked_files(iox_prefix), "the node's segments carry the prefix"
    assert node.closed


@pytest.mark.req("REQ_0101")
def test_invalid_prefix_is_rejected() -> None:
    with pytest.raises(ValueError, match="prefix"):
        Node("bad", prefix="has space/")


@pytest.mark.req("REQ_0113")
def test_closing_a_node_releases_its_segments(iox_prefix: str) -> None:
    node = Node("closing")
    spec = ChannelSpec("t/close", BytesPayload(8))
    node.publisher(spec).send_copy(b"x")
    node.subscriber(spec)
    node.close()
    del node
    assert isolation.leaked_files(iox_prefix) == []


@pytest.mark.req("REQ_0113")
def test_purge_refuses_the_default_prefix() -> None:
    with pytest.raises(ValueError):
        isolation.purge_prefix(isolation.DEFAULT_PREFIX)


@pytest.mark.req("REQ_0101")
def test_a_private_prefix_is_exported_then_restored_and_purged(iox_prefix: str) -> None:
    with isolation.private_prefix("tkpriv") as prefix:
        assert prefix != iox_prefix and os.environ[isolation.PREFIX_ENV] == prefix
        with Node("priv") as node:
            assert node.prefix == prefix
    assert os.environ[isolation.PREFIX_ENV] == iox_prefix
    assert isolation.leftover_files(prefix) == []
