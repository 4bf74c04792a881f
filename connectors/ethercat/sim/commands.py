"""EtherCAT datagram commands (ETG.1000.4) and the EtherType that carries them.

The codes and their classes: which commands read, which write, and how a SubDevice decides it
is addressed (auto-increment position, configured station address, broadcast, logical address
through its FMMUs). Pure constants.
"""

from __future__ import annotations

ETHERTYPE = 0x88A4
(NOP, APRD, APWR, APRW, FPRD, FPWR, FPRW, BRD, BWR, BRW, LRD, LWR, LRW, ARMW, FRMW) = range(15)
READS = frozenset({APRD, APRW, FPRD, FPRW, BRD, BRW, LRD, LRW})
WRITES = frozenset({APWR, APRW, FPWR, FPRW, BWR, BRW, LWR, LRW})
AUTO = frozenset({APRD, APWR, APRW, ARMW})
CONFIGURED = frozenset({FPRD, FPWR, FPRW, FRMW})
BROADCAST = frozenset({BRD, BWR, BRW})
LOGICAL = frozenset({LRD, LWR, LRW})
