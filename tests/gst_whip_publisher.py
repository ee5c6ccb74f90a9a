"""A WHIP publisher built on GStreamer's webrtcbin, as hardware and software encoders are: H.264 + Opus.

Run by Debian's system python3 (python3-gi; the project's venv has no GStreamer bindings) from
``tests/test_whip_gstreamer.py``::

    /usr/bin/python3 tests/gst_whip_publisher.py URL TOKEN [--wav FILE]

It publishes a moving test picture (640x360, x264) and the WAV file mixed over live silence (Opus) to ``URL``,
reports each step as one JSON line on stdout (``answer`` with the status and Location, ``connection`` states,
``deleted``), and on a ``stop`` line on stdin (or stdin closing) DELETEs its session and exits. webrtcbin's DTLS
certificate is GStreamer's own: RSA 2048, what made aiortc's ECDSA-only cipher list fail.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import urllib.error
import urllib.parse
import urllib.request

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstSdp", "1.0")
gi.require_version("GstWebRTC", "1.0")
from gi.repository import GLib, Gst, GstSdp, GstWebRTC  # noqa: E402

VIDEO = (
    "videotestsrc is-live=true pattern=ball ! video/x-raw,width=640,height=360,framerate=25/1 ! videoconvert"
    " ! x264enc tune=zerolatency speed-preset=ultrafast key-int-max=25 bitrate=800"
    " ! video/x-h264,profile=constrained-baseline ! rtph264pay config-interval=-1 aggregate-mode=zero-latency pt=102"
    " ! application/x-rtp,media=video,encoding-name=H264,payload=102 ! webrtc."
)
AUDIO = (
    "audiotestsrc is-live=true wave=silence ! audio/x-raw,rate=48000,channels=1 ! audiomixer name=mix"
    " ! audioconvert ! opusenc ! rtpopuspay pt=111 ! application/x-rtp,media=audio,encoding-name=OPUS,payload=111"
    " ! webrtc."
)
SPEECH = "filesrc location={wav} ! wavparse ! audioconvert ! audioresample ! audio/x-raw,rate=48000,channels=1 ! mix."


def say(event: str, **fields: object) -> None:
    print(json.dumps({"event": event, **fields}), flush=True)


class Publisher:
    def __init__(self, url: str, token: str, wav: str | None) -> None:
        self.url = url
        self.token = token
        self.location: str | None = None
        description = f"webrtcbin name=webrtc bundle-policy=max-bundle {VIDEO} {AUDIO}"
        if wav:
            description += " " + SPEECH.format(wav=wav)
        self.pipeline = Gst.parse_launch(description)
        self.webrtc = self.pipeline.get_by_name("webrtc")
        self.webrtc.connect("on-negotiation-needed", self._on_negotiation_needed)
        self.webrtc.connect("notify::ice-gathering-state", self._on_gathering)
        self.webrtc.connect("notify::connection-state", self._on_connection)
        self.loop = GLib.MainLoop()
        bus = self.pipeline.get_bus()
        bus.add_signal_watch()
        bus.connect("message::error", self._on_error)
        self._offered = False

    def run(self) -> None:
        self.pipeline.set_state(Gst.State.PLAYING)
        threading.Thread(target=self._read_stdin, daemon=True).start()
        self.loop.run()
        self.pipeline.set_state(Gst.State.NULL)

    # ---- negotiation: one offer, sent once ICE gathering is complete (the server does no trickle ICE) ----------

    def _on_negotiation_needed(self, element: Gst.Element) -> None:
        promise = Gst.Promise.new_with_change_func(self._on_offer, element, None)
        element.emit("create-offer", None, promise)

    def _on_offer(self, promise: Gst.Promise, element: Gst.Element, _: object) -> None:
        reply = promise.get_reply()
        if reply is None or not reply.has_field("offer"):
            say("error", message=f"webrtcbin made no offer: {reply.to_string() if reply else 'no reply'}")
            self.loop.quit()
            return
        offer = reply.get_value("offer")
        element.emit("set-local-description", offer, Gst.Promise.new())

    def _on_gathering(self, element: Gst.Element, _: object) -> None:
        if element.get_property("ice-gathering-state") != GstWebRTC.WebRTCICEGatheringState.COMPLETE:
            return
        if self._offered:
            return
        self._offered = True
        offer = element.get_property("local-description").sdp.as_text()
        request = urllib.request.Request(
            self.url,
            data=offer.encode(),
            method="POST",
            headers={"Content-Type": "application/sdp", "Authorization": f"Bearer {self.token}"},
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                status, answer = response.status, response.read().decode()
                self.location = urllib.parse.urljoin(self.url, response.headers["Location"])
        except urllib.error.HTTPError as exc:
            say("answer", status=exc.code, body=exc.read().decode(errors="replace"))
            self.loop.quit()
            return
        except OSError as exc:
            say("error", message=f"POST {self.url}: {exc}")
            self.loop.quit()
            return
        say("answer", status=status, location=self.location)
        _, message = GstSdp.SDPMessage.new_from_text(answer)
        description = GstWebRTC.WebRTCSessionDescription.new(GstWebRTC.WebRTCSDPType.ANSWER, message)
        element.emit("set-remote-description", description, Gst.Promise.new())

    def _on_connection(self, element: Gst.Element, _: object) -> None:
        state = element.get_property("connection-state")
        if state != GstWebRTC.WebRTCPeerConnectionState.CONNECTED:
            say("connection", state=state.value_nick)
            return
        # The certificate webrtcbin presented in the DTLS handshake, so the test can check it is RSA.
        transport = element.emit("get-transceiver", 0).get_property("sender").get_property("transport")
        say("connection", state=state.value_nick, certificate=transport.get_property("certificate"))

    def _on_error(self, bus: Gst.Bus, message: Gst.Message) -> None:
        error, debug = message.parse_error()
        say("error", message=error.message, debug=debug)

    # ---- leaving ---------------------------------------------------------------------------------------------

    def _read_stdin(self) -> None:
        for line in sys.stdin:
            if line.strip() == "stop":
                break
        GLib.idle_add(self._stop)

    def _stop(self) -> bool:
        if self.location is not None:
            request = urllib.request.Request(
                self.location, method="DELETE", headers={"Authorization": f"Bearer {self.token}"}
            )
            try:
                with urllib.request.urlopen(request, timeout=30) as response:
                    say("deleted", status=response.status)
            except urllib.error.HTTPError as exc:
                say("deleted", status=exc.code)
        self.loop.quit()
        return False


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("url")
    parser.add_argument("token")
    parser.add_argument("--wav")
    args = parser.parse_args()
    Gst.init(None)
    Publisher(args.url, args.token, args.wav).run()


if __name__ == "__main__":
    main()
