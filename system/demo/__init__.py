"""``make demo`` (``python -m taktora.system.demo``): taktora end to end - zero-copy pub/sub,
supervised UDP gateways, then a control application.

Section 1 (:mod:`taktora.system.demo.latency`; ``--latency`` runs only this): two processes
exchange 64 B to 4 MiB payloads through taktora's zero-copy iceoryx2 publish/subscribe, and a
table shows what it cost. This process publishes ~200 messages per payload size (64 B, 4 KiB, 64 KiB,
1 MiB, 4 MiB), paced about 1 ms apart, writing each payload straight into loaned shared memory
(``Publisher.loan``). A subscriber process started with multiprocessing spawn sleeps in
``Subscriber.wait``, reads each payload in place (a read-only zero-copy view), checks every
byte against the expected pattern and measures the one-way latency from the sample's
``TransportHeader`` timestamp (CLOCK_MONOTONIC, system-wide) to the moment it holds the sample.
Lost samples come from the subscriber's sequence-gap counters (``SubscriberStats.lost``). A
last row sends 1 MiB through ``multiprocessing.Pipe`` for comparison: its latency grows with
the size, the shared-memory one does not.

Columns: payload size, messages received, p50/p99 one-way latency in microseconds, MB/s moved
by the paced stream (payload bytes / wall time of the run; pacing caps it, it is not a
maximum), samples lost. Everything runs under a fresh iceoryx2 prefix that is removed at the
end. ``--quick`` sends fewer messages.

Section 2 (gateways, :mod:`taktora.system.demo.gateways`): an actor system started from
``examples/demo.toml`` supervises two UDP gateways facing each other on loopback; an app
publishes and receives through iceoryx2 while the demo cuts the link, corrupts frames, crashes
a gateway (and, with ``--mode multiprocess``, kills one with ``kill -9``). Live health
transitions, the restarts and the message counts (sent, received, every loss by cause) are
shown, and the loss equation per channel.

Section 3 (control, :mod:`taktora.system.demo.control`; ``--control`` runs only this): one
system file (``examples/demo_control.toml``) with a CAN sensor decoded by a DBC, a 1 kHz control
item in a dedicated process, a UDP actuator link (and, as root, an EtherCAT gateway against the
software SubDevice on a veth pair), Zenoh telemetry (and, when mosquitto is installed, MQTT
telemetry through a broker it starts on a free loopback port) and 10 Hz application items; it
cuts a link, crashes a gateway, kills one with ``kill -9`` and runs a CPU hog thread, showing
the health transitions, the restarts, the loop's period error and the loss equation per
channel.

Exits 1 if a payload was wrong, a message of section 1 is missing, a gateway did not recover,
or a loss equation does not hold.
"""
