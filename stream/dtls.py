"""DTLS for WHIP and WHEP peers: aiortc's, with cipher suites for RSA *and* ECDSA certificates.

aiortc's DTLS context (``RTCCertificate._create_ssl_context``) offers only ECDHE-ECDSA suites. A suite names the
*server's* certificate type, and aiortc answers an offer's ``a=setup:actpass`` as the DTLS client, so the
publisher is the DTLS server: one built on GStreamer's ``webrtcbin`` (many hardware and software encoders, 1.22
and earlier) presents an RSA certificate, finds no suite it can use and fails with "no shared cipher" after ICE
has completed. Browsers and OBS present ECDSA certificates and never noticed.

``peer_connection()`` makes an ``RTCPeerConnection`` whose certificate's context offers the ECDHE-RSA
counterparts too (ECDSA first, so nothing changes for peers that worked before). Our own certificate stays
ECDSA, which is what the client side of a handshake signs with whatever the suite. aiortc has no public way to
choose a peer connection's certificate, so its one certificate is swapped for a ``DualSuiteCertificate`` with the
same key: the adaptation lives here, not in a patched aiortc, and ``peer_connection`` fails loudly if an aiortc
upgrade moves what it replaces.
"""

from __future__ import annotations

from aiortc import RTCConfiguration, RTCPeerConnection
from aiortc.rtcdtlstransport import RTCCertificate, SRTPProtectionProfile
from OpenSSL import SSL

# aiortc's four ECDHE-ECDSA suites, each followed by its ECDHE-RSA twin: forward secret, AEAD first.
CIPHERS = ":".join(
    f"ECDHE-{auth}-{cipher}"
    for cipher in ("AES128-GCM-SHA256", "CHACHA20-POLY1305", "AES128-SHA", "AES256-SHA")
    for auth in ("ECDSA", "RSA")
)

# Where aiortc 1.x keeps a peer connection's certificates (a name-mangled private attribute).
_CERTIFICATES = "_RTCPeerConnection__certificates"


class DualSuiteCertificate(RTCCertificate):
    """An ``RTCCertificate`` whose DTLS context accepts a peer with an RSA or an ECDSA certificate."""

    def _create_ssl_context(self, srtp_profiles: list[SRTPProtectionProfile]) -> SSL.Context:
        context = super()._create_ssl_context(srtp_profiles)
        context.set_cipher_list(CIPHERS.encode())
        return context


def peer_connection(configuration: RTCConfiguration) -> RTCPeerConnection:
    """A new ``RTCPeerConnection`` whose DTLS works with RSA and ECDSA peers alike.

    Must be called before any description is set: DTLS transports take the certificate when they are created.
    """
    pc = RTCPeerConnection(configuration)
    certificates = getattr(pc, _CERTIFICATES, None)
    if not (isinstance(certificates, list) and len(certificates) == 1 and type(certificates[0]) is RTCCertificate):
        raise RuntimeError("aiortc no longer keeps one RTCCertificate where stream/dtls.py expects it; update it")
    own = certificates[0]
    certificates[0] = DualSuiteCertificate(key=own._key, cert=own._cert)
    return pc
