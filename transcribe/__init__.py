"""Live Thai captions from a sitting's audio.

`model.load_model` gives the process's one `SharedModel`; each live feed gets a
`engine.CaptionEngine`, which emits `caption.Caption` partials and finals. The pieces an engine
is made of are pure logic and separately testable: `vad` (speech gating), `policy` (when text
becomes final), `guards` (hallucination filters), `text` (hygiene and Thai word units) and
`buffer` (bounded audio).
"""
