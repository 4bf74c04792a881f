"""TLS to mosquitto with a self-signed CA generated in the test (openssl): a client certificate
signed by the CA connects; a broker certificate the client's CA did not sign, and a missing
client certificate, are refused with a clear error."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from mqtt_harness import MOSQUITTO, Broker, frames, mchan
from taktora.actors.models.health import HealthState
from taktora.connectors import Direction
from taktora.connectors.mqtt import MqttConnector, MqttError, MqttSettings
from taktora.connectors.testing import RecordingContext

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None or MOSQUITTO is None,
                                reason="needs openssl and mosquitto (apt-get install openssl "
                                       "mosquitto)")


def _ssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=30)


def make_ca(d: Path, name: str) -> None:
    _ssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", f"/CN={name}",
         "-keyout", f"{name}.key", "-out", f"{name}.crt", cwd=d)


def make_cert(d: Path, ca: str, name: str) -> None:
    """A key and a certificate for ``name`` (SAN 127.0.0.1 and localhost) signed by ``ca``."""
    (d / f"{name}.ext").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    _ssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={name}", "-keyout", f"{name}.key",
         "-out", f"{name}.csr", cwd=d)
    _ssl("x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.crt", "-CAkey", f"{ca}.key",
         "-CAcreateserial", "-days", "2", "-extfile", f"{name}.ext", "-out", f"{name}.crt", cwd=d)


@pytest.mark.req("REQ_0911")
def test_tls_with_a_client_certificate_and_refusals(tmp_path: Path) -> None:
    pki = tmp_path / "pki"
    pki.mkdir()
    make_ca(pki, "ca")
    make_ca(pki, "other-ca")
    make_cert(pki, "ca", "server")
    make_cert(pki, "ca", "client")
    (tmp_path / "broker").mkdir()
    broker = Broker(tmp_path / "broker", extra=(
        f"cafile {pki}/ca.crt\ncertfile {pki}/server.crt\nkeyfile {pki}/server.key\n"
        "require_certificate true\n")).start()
    chan = [mchan("state", Direction.INBOUND, "t/state", qos=1),
            mchan("cmd", Direction.OUTBOUND, "t/state", qos=1)]
    good = MqttSettings(port=broker.port, tls_ca=str(pki / "ca.crt"),
                        tls_cert=str(pki / "client.crt"), tls_key=str(pki / "client.key"))
    try:
        conn = MqttConnector(good, name="tls")
        ctx = RecordingContext(chan)
        conn.open(ctx)
        try:
            assert ctx.reports[-1][0] is HealthState.UP
            conn.send(chan[1], b"over tls")
            assert frames(ctx, 1) == [("state", b"over tls")]
        finally:
            conn.close()
        wrong_ca = MqttSettings(port=broker.port, tls_ca=str(pki / "other-ca.crt"),
                                tls_cert=str(pki / "client.crt"), tls_key=str(pki / "client.key"))
        with pytest.raises(MqttError, match=r"TLS handshake .* certificate verify failed"):
            MqttConnector(wrong_ca, name="bad-ca").open(RecordingContext(chan))
        no_cert = MqttSettings(port=broker.port, tls_ca=str(pki / "ca.crt"))
        with pytest.raises(MqttError, match="client certificate"):
            MqttConnector(no_cert, name="no-cert").open(RecordingContext(chan))
    finally:
        broker.kill()
