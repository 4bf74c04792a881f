"""``python -m taktora.connectors.ethercat.sim``: the software SubDevice process."""

from taktora.connectors.ethercat.sim.server import main

raise SystemExit(main())
