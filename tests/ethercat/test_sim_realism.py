"""The software SubDevice's frame path as real ESCs behave: replies carry the locally
administered bit in their source MAC; EtherCAT frames of types other than 1 are forwarded
unchanged."""

from __future__ import annotations

import selectors
import socket
import struct
import time

import pytest
from polling import WAIT_S
from taktora.connectors.ethercat.sim import SimProcess, builtin_dio
from taktora.connectors.ethercat.sim.commands import BRD, ETHERTYPE
from taktora.connectors.ethercat.sim.line import Line
from taktora.connectors.ethercat.sim.server import PACKET_OUTGOING, Simulator

from .frames import ETH, frame, results


def typed(kind: int, body: bytes) -> bytearray:
    """An EtherCAT frame of type ``kind`` (not datagrams unless 1)."""
    return bytearray(ETH + struct.pack("<H", len(body) | (kind << 12)) + body)


@pytest.mark.req("REQ_0826")
def test_replies_set_the_locally_administered_bit_and_other_types_pass_unchanged():
    sim = Simulator(Line.of([builtin_dio(), builtin_dio()]))
    f = frame((BRD, 0, 0, bytes(2)))
    assert f[6] & 0x02 == 0
    assert sim.handle_frame(f) and results(f)[0][3] == 2
    assert f[6] & 0x02 and f[7:12] == ETH[7:12]  # only that bit of the source MAC changed
    for kind in (4, 5):  # network variables, mailbox gateway
        f = typed(kind, bytes(range(20)))
        original = bytes(f)
        assert sim.handle_frame(f)
        assert f[:6] == original[:6] and f[7:] == original[7:] and f[6] == original[6] | 0x02
    assert sim.line.forwarded == 2 and sim.line.malformed == 0


@pytest.mark.root
@pytest.mark.req("REQ_0826")
def test_a_type_5_frame_from_the_wire_comes_back_unchanged(pair):
    master, sim_end = pair
    sent = typed(5, b"mailbox gateway frame " + bytes(20))
    with SimProcess(sim_end) as sim, \
            socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETHERTYPE)) as sock:
        sock.bind((master, ETHERTYPE))
        sock.setblocking(False)
        sock.send(bytes(sent))
        got = b""
        deadline = time.monotonic() + WAIT_S
        with selectors.DefaultSelector() as sel:
            sel.register(sock, selectors.EVENT_READ)
            while not got and (left := deadline - time.monotonic()) > 0:
                if not sel.select(left):
                    continue
                data, addr = sock.recvfrom(2048)
                if addr[2] != PACKET_OUTGOING:
                    got = data
        assert got[:len(sent)] == bytes(sent[:6]) + bytes([sent[6] | 0x02]) + bytes(sent[7:])
        assert sim.command(op="query")["forwarded"] == 1
