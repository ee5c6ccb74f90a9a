"""DTLS for WHIP/WHEP peers: the server's handshake succeeds against RSA and ECDSA certificates alike."""

from __future__ import annotations

import datetime

import pytest
from aiortc import RTCConfiguration
from aiortc.rtcdtlstransport import SRTP_PROFILES, RTCCertificate
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID
from OpenSSL import SSL

from stream.dtls import DualSuiteCertificate, peer_connection

pytestmark = pytest.mark.fast


def self_signed(key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) -> x509.Certificate:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "peer")])
    now = datetime.datetime.now(datetime.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=30))
        .sign(key, hashes.SHA256())
    )


def rsa_certificate() -> RTCCertificate:
    """An aiortc certificate with an RSA key, as GStreamer's webrtcbin presents, with suites that can serve it."""
    key = rsa.generate_private_key(65537, 2048)
    return DualSuiteCertificate(key=key, cert=self_signed(key))  # type: ignore[arg-type]


def peer_context(key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) -> SSL.Context:
    """A DTLS-SRTP endpoint as GStreamer's webrtcbin makes one: its own certificate, OpenSSL's default suites."""
    context = SSL.Context(SSL.DTLS_METHOD)
    context.set_verify(SSL.VERIFY_PEER, lambda *args: True)
    context.use_certificate(self_signed(key))  # type: ignore[arg-type]
    context.use_privatekey(key)  # type: ignore[arg-type]
    context.set_tlsext_use_srtp(b"SRTP_AES128_CM_SHA1_80")
    return context


def handshake(client: SSL.Connection, server: SSL.Connection) -> None:
    """Run a DTLS handshake over memory BIOs; raises ``SSL.Error`` if it fails."""
    client.set_connect_state()
    server.set_accept_state()
    done = {id(client): False, id(server): False}
    for _ in range(20):
        for this, other in ((client, server), (server, client)):
            if not done[id(this)]:
                try:
                    this.do_handshake()
                    done[id(this)] = True
                except SSL.WantReadError:
                    pass
            try:
                other.bio_write(this.bio_read(65536))
            except SSL.WantReadError:
                pass
        if all(done.values()):
            return
    raise AssertionError("the handshake did not finish")


def ours(certificate_class: type[RTCCertificate] = DualSuiteCertificate) -> SSL.Connection:
    return SSL.Connection(certificate_class.generateCertificate()._create_ssl_context(SRTP_PROFILES))


@pytest.mark.parametrize("key", [rsa.generate_private_key(65537, 2048), ec.generate_private_key(ec.SECP256R1())])
def test_our_dtls_client_completes_a_handshake_with_an_rsa_or_ecdsa_server(key):
    """As DTLS client (how aiortc answers actpass) we agree on a suite with RSA and ECDSA servers alike."""
    client, server = ours(), SSL.Connection(peer_context(key))
    handshake(client, server)
    auth = "RSA" if isinstance(key, rsa.RSAPrivateKey) else "ECDSA"
    assert client.get_cipher_name().startswith(f"ECDHE-{auth}-") or client.get_protocol_version_name() == "DTLSv1.3"
    assert client.get_selected_srtp_profile() == b"SRTP_AES128_CM_SHA1_80"


@pytest.mark.parametrize("key", [rsa.generate_private_key(65537, 2048), ec.generate_private_key(ec.SECP256R1())])
def test_our_dtls_server_accepts_rsa_and_ecdsa_clients(key):
    """As DTLS server, our ECDSA certificate's suites serve clients presenting either kind of certificate."""
    handshake(SSL.Connection(peer_context(key)), ours())


def test_aiortcs_own_context_fails_against_an_rsa_server():
    """The failure this adaptation fixes: aiortc's ECDSA-only suite list finds nothing an RSA server can use."""
    with pytest.raises(SSL.Error, match="(?i)handshake failure|no shared cipher"):
        handshake(ours(RTCCertificate), SSL.Connection(peer_context(rsa.generate_private_key(65537, 2048))))


async def test_peer_connections_are_made_with_the_dual_suite_certificate():
    """``peer_connection`` swaps aiortc's certificate for one with both suite families, keeping its fingerprint."""
    pc = peer_connection(RTCConfiguration(iceServers=[]))
    try:
        (certificate,) = pc._RTCPeerConnection__certificates  # type: ignore[attr-defined]
        assert isinstance(certificate, DualSuiteCertificate)
        pc.addTransceiver("audio", direction="recvonly")
        await pc.setLocalDescription(await pc.createOffer())
        fingerprint = certificate.getFingerprints()[-1].value
        assert fingerprint in pc.localDescription.sdp
    finally:
        await pc.close()
