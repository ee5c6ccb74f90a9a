"""Commit policy, buffer trimming, text hygiene and hallucination guards: pure logic, no model."""

from __future__ import annotations

import random

import numpy as np

from transcribe.buffer import AudioBuffer, committed_cut, forced_cut
from transcribe.caption import Caption
from transcribe.guards import collapse_loops, rejection_reason
from transcribe.policy import CommitPolicy, agreed_count
from transcribe.text import TimedPiece, Unit, clean, join_text, segment_units, unit_key

THAI_SENTENCES = [
    "วันนี้มีการประชุมสภาผู้แทนราษฎรเพื่อพิจารณาร่างพระราชบัญญัติงบประมาณรายจ่ายประจำปี",
    "ขอเชิญท่านสมาชิกอภิปรายตามลำดับครับ ท่านประธานที่เคารพ กระผมขออภิปรายในประเด็นนี้",
    "คณะกรรมาธิการได้พิจารณาแล้วเห็นควรให้แก้ไขเพิ่มเติมมาตรา ๑๔๔ ของรัฐธรรมนูญ",
]
CHAR_S = 0.08


def words(text: str, step: float = 0.3) -> tuple[Unit, ...]:
    """Space-separated words of `text`, back to back, each `step` seconds long."""
    return tuple(Unit(w, i * step, (i + 1) * step, space_before=i > 0) for i, w in enumerate(text.split()))


def fragments(text: str, offset: int, rng: random.Random) -> list[TimedPiece]:
    """`text` cut into random 1-4 character pieces (like whisper's Thai fragments), timed by
    character position (`offset` = index of text[0] in the whole utterance)."""
    pieces: list[TimedPiece] = []
    i = 0
    while i < len(text):
        n = rng.randint(1, 4)
        start, end = (offset + i) * CHAR_S, (offset + min(i + n, len(text))) * CHAR_S
        pieces.append(TimedPiece(text[i : i + n], start, end))
        i += n
    return pieces


def key_positions(text: str) -> list[int]:
    """Index in `text` of each character that counts for agreement (see unit_key)."""
    return [i for i, ch in enumerate(text) if unit_key(ch)]


def finals_text(captions: list[Caption]) -> str:
    """All final captions joined as a reader would see them."""
    out = ""
    for c in captions:
        if c.kind == "final":
            out = join_text(out, c.text)
    return out


def test_thai_words_agree_although_whisper_fragments_differ() -> None:
    """Two passes with the same Thai text cut into different whisper fragments commit its words."""
    text = "ท่านประธานที่เคารพกระผมขออภิปราย"
    older = segment_units(fragments(text, 0, random.Random(1)))
    newer = segment_units(fragments(text + "ใน", 0, random.Random(2)))
    assert agreed_count(older, newer) >= len(older) - 1
    assert "".join(u.text for u in newer[: agreed_count(older, newer)]).startswith("ท่านประธาน")


def test_word_cut_by_the_end_of_the_audio_is_not_committed() -> None:
    """A word that the older pass had only begun ("Amer") is not confirmed by its completion."""
    older = words("and so my fellow Amer")
    newer = words("and so my fellow Americans ask")
    assert agreed_count(older, newer) == 4


def test_commit_never_cuts_inside_a_thai_word() -> None:
    """Agreed characters are not committed up to a fragment ("ห" of "หน่า"), only up to whole words."""
    older = segment_units([TimedPiece("รู้ดูห", 0.0, 1.0)])
    newer = segment_units([TimedPiece("รู้ดูหน่าเพื่อ", 0.0, 2.0)])
    assert "".join(u.text for u in newer[: agreed_count(older, newer)]) == "รู้ดู"


def test_punctuation_jitter_does_not_block_agreement() -> None:
    """A comma one pass adds and the next drops does not stop the words from agreeing."""
    older = (*words("my fellow Americans"), Unit(",", 0.9, 0.9))
    newer = words("my fellow Americans ask not")
    assert agreed_count(older, newer) == 3


def test_local_agreement_commits_only_what_two_passes_share() -> None:
    """The first pass commits nothing; the second commits the shared start and shows the rest."""
    policy = CommitPolicy(segment_prefix="s")
    first = policy.observe(words("ask not what"))
    assert [c.kind for c in first] == ["partial"]
    second = policy.observe(words("ask not what your country"))
    assert [(c.kind, c.text) for c in second] == [("final", "ask not what"), ("partial", "your country")]


def test_old_words_are_committed_even_when_passes_keep_disagreeing() -> None:
    """Words older than the settle time are made final from the newest pass, up to a safe cut."""
    policy = CommitPolicy()
    policy.observe(words("ask knot what"))
    captions = policy.observe(words("ask not what your"), settle_before=0.65)
    assert [(c.kind, c.text) for c in captions] == [("final", "ask not"), ("partial", "what your")]


def test_a_pass_that_may_not_agree_commits_nothing_but_is_agreed_with_later() -> None:
    """`agree=False` (a pass over too short a window) shows the words as a partial only; the next
    pass that may agree commits what it shares with it, and settling old words still applies."""
    policy = CommitPolicy()
    policy.observe(words("ask not what"), agree=False)
    held = policy.observe(words("ask not what your"), agree=False)
    assert [(c.kind, c.text) for c in held] == [("partial", "ask not what your")]
    agreed = policy.observe(words("ask not what your country"))
    assert [(c.kind, c.text) for c in agreed] == [("final", "ask not what your"), ("partial", "country")]

    policy = CommitPolicy()
    policy.observe(words("ask knot what"), agree=False)
    settled = policy.observe(words("ask not what your"), agree=False, settle_before=0.65)
    assert [(c.kind, c.text) for c in settled] == [("final", "ask not"), ("partial", "what your")]


def test_end_of_utterance_commits_the_whole_hypothesis_and_opens_a_new_segment() -> None:
    """End of utterance makes everything final at once, and later captions get a new segment id."""
    policy = CommitPolicy(segment_prefix="s")
    policy.observe(words("ask not"))
    captions = policy.observe(words("ask not what your country"), end_of_utterance=True)
    assert [(c.kind, c.text, c.segment_id) for c in captions] == [("final", "ask not what your country", "s0")]
    later = policy.observe(tuple(Unit(u.text, u.start + 5, u.end + 5) for u in words("next words")))
    assert later[0].segment_id == "s1"


def test_end_of_utterance_without_text_clears_the_partial() -> None:
    """A partial on screen is explicitly cleared when its utterance ends with nothing to commit."""
    policy = CommitPolicy(segment_prefix="s")
    policy.observe(words("hmm"))
    captions = policy.end_utterance()
    assert [(c.kind, c.text) for c in captions] == [("partial", "")]


def test_rehearing_committed_words_does_not_duplicate_them() -> None:
    """A pass that starts again with the last committed words (re-heard audio) does not repeat them."""
    policy = CommitPolicy()
    policy.observe(words("ask not what"))
    policy.observe(words("ask not what your"))  # commits "ask not what"
    rehearing = words("ask not what your country can")[2:]  # starts with committed "what"
    captions = policy.observe(rehearing)
    captions += policy.observe(words("ask not what your country can do")[2:], end_of_utterance=True)
    assert finals_text(captions) == "your country can do"


def test_finals_are_append_only_and_exact_over_random_thai_hypotheses() -> None:
    """Randomised passes: finals only ever extend a prefix of the speech, in time order, and end exact."""
    for seed in range(40):
        rng = random.Random(seed)
        truth = rng.choice(THAI_SENTENCES)
        keys = key_positions(truth)
        truth_key = unit_key(truth)
        policy = CommitPolicy(segment_prefix="s")
        emitted: list[Caption] = []
        heard = 0  # characters of `truth` covered by the audio so far
        for step in range(60):
            heard = min(len(truth), heard + rng.randint(0, 6))
            committed_key = unit_key(finals_text(emitted))
            assert truth_key.startswith(committed_key)
            # Prefix forcing: the decoder continues after the committed text...
            start = keys[len(committed_key)] if len(committed_key) < len(keys) else len(truth)
            # ...unless it was not given it and re-hears its last words.
            commits = policy.utterance_commits()
            rehearing = bool(commits) and rng.random() < 0.3
            if rehearing:
                rehear = sum(len(u.key) for u in commits[-rng.randint(1, min(2, len(commits))) :])
                start = keys[len(committed_key) - rehear]
            text = truth[start:heard]
            if rng.random() < 0.5 and heard < len(truth):
                # A cut-off word misheard, differently on every pass (consecutive passes never
                # share the first letter, so they cannot agree on any of it).
                text = text[: max(0, len(text) - rng.randint(0, 3))] + chr(ord("a") + step % 26) + str(step)
            units = segment_units(fragments(text, start, rng))
            emitted += policy.observe(units, follows_commit=bool(commits) and not rehearing)
        committed_key = unit_key(finals_text(emitted))
        start = keys[len(committed_key)] if len(committed_key) < len(keys) else len(truth)
        emitted += policy.observe(segment_units(fragments(truth[start:], start, rng)), end_of_utterance=True)

        finals = [c for c in emitted if c.kind == "final"]
        assert unit_key(finals_text(emitted)) == truth_key, seed
        for before, after in zip(finals, finals[1:], strict=False):
            assert after.start >= before.end
        assert all(c.start <= c.end for c in emitted)
        assert all(c.text == clean(c.text) and c.text for c in finals)


def test_decoder_context_stops_at_a_long_pause() -> None:
    """Decoder context is committed text before the window, back to the last long pause only."""
    policy = CommitPolicy()
    policy.observe(words("first speaker"), end_of_utterance=True)
    later = tuple(Unit(u.text, u.start + 5.0, u.end + 5.0, True) for u in words("second one here"))
    policy.observe(later, end_of_utterance=True)
    assert policy.context_before(6.0, 100, 1.5) == "second one here"
    assert policy.context_before(5.3, 100, 1.5) == "second"
    assert policy.context_before(5.3, 100, 10.0) == "first speaker second"
    assert policy.context_before(6.0, 8, 1.5) == "here"


def test_partials_change_only_when_the_text_changes() -> None:
    """The same uncommitted text twice in a row is not sent twice."""
    policy = CommitPolicy()
    assert policy.observe(words("ask")) != []
    assert policy.observe(words("ask")) == [Caption("final", "ask", 0.0, 0.3, policy.segment_id)]
    assert policy.observe(()) == []


def test_buffer_and_policy_state_stay_bounded_over_a_long_sitting() -> None:
    """25 minutes of non-stop speech keep buffer and policy bounded and commit each word once, in order."""
    rng = random.Random(7)
    step, trim_after, keep, max_buffer = 0.5, 8.0, 1.0, 15.0
    truth = [Unit(f"w{i}", i * 0.35, (i + 1) * 0.35, space_before=True) for i in range(5000)]
    policy = CommitPolicy()
    buffer = AudioBuffer(0.0)
    finals: list[Caption] = []
    longest = 0.0
    for _ in range(3000):
        buffer.append(np.zeros(int(step * 16_000), dtype=np.float32))
        committed = len(" ".join(c.text for c in finals).split())
        heard = [u for u in truth[committed:] if u.end <= buffer.end]
        if rng.random() < 0.3 and heard:
            heard[-1] = Unit("garbage", heard[-1].start, heard[-1].end, True)
        forced = buffer.end - max(buffer.start, policy.last_final_end) >= max_buffer
        before = policy.last_final_end
        commit_until = buffer.end - 1.0 if forced else None
        finals += [c for c in policy.observe(heard, commit_until=commit_until) if c.kind == "final"]
        if forced:
            assert commit_until is not None
            buffer.trim_before(
                forced_cut(
                    policy.utterance_commits(),
                    buffer_start=buffer.start,
                    last_final_end=policy.last_final_end,
                    committed_before=before,
                    pending=policy.pending,
                    window_end=buffer.end,
                    commit_until=commit_until,
                    keep_committed_s=keep,
                )
            )
        elif buffer.duration > trim_after:
            cut = committed_cut(
                policy.utterance_commits(),
                buffer_start=buffer.start,
                last_final_end=policy.last_final_end,
                keep_committed_s=keep,
            )
            if cut is not None:
                buffer.trim_before(cut)
        longest = max(longest, buffer.duration)
        assert len(policy.utterance_commits()) <= 96
        assert len(policy.pending) <= max_buffer / 0.35 + 2
        assert len(policy.recent_text(120)) <= 120
    committed_words = " ".join(c.text for c in finals).split()
    assert committed_words == [u.text for u in truth[: len(committed_words)]]
    assert len(committed_words) > 3000
    assert longest < 16.0


def test_buffer_window_and_trim_use_media_time() -> None:
    """Buffered audio is addressed by media time and trimming moves its start forward only."""
    buffer = AudioBuffer(10.0)
    buffer.append(np.arange(32_000, dtype=np.float32))
    assert buffer.end == 12.0
    assert buffer.window(11.0, 11.5)[0] == 16_000
    buffer.trim_before(11.0)
    assert (buffer.start, buffer.duration) == (11.0, 1.0)
    buffer.trim_before(5.0)
    assert buffer.start == 11.0


def test_clean_normalises_thai_text() -> None:
    """Caption hygiene: NFC, no zero-width characters, single spaces, no punctuation loops."""
    assert clean(" เรา\u200bจะ   ไป\ufeff  ") == "เราจะ ไป"
    assert clean("Ask not.......") == "Ask not."
    assert clean("e\u0301") == "\u00e9"


def test_join_text_spaces_only_where_a_reader_expects_them() -> None:
    """Thai pieces join directly; other text gets a space; punctuation attaches to the left."""
    assert join_text("ท่านประธาน", "ที่เคารพ") == "ท่านประธานที่เคารพ"
    assert join_text("ask not", "what") == "ask not what"
    assert join_text("Americans", ", ask") == "Americans, ask"


def test_decoder_loops_are_cut_to_one_copy() -> None:
    """Repetition loops keep their first copy, whether they span words or sit inside one word."""
    for looped, expected in [
        ("ขอบคุณครับ ขอบคุณครับ ขอบคุณครับ ขอบคุณครับ", "ขอบคุณครับ"),
        ("เราจะออกน้อกน้อกน้อกน้อกน้อก", "เราจะออกน้อก"),
        ("ขอบคุณครับ ขอบคุณครับ", "ขอบคุณครับ ขอบคุณครับ"),
        ("งบประมาณ 1000000 บาท", "งบประมาณ 1000000 บาท"),
    ]:
        units = collapse_loops(segment_units([TimedPiece(looped, 0.0, 1.0)]))
        assert clean("".join((" " if u.space_before else "") + u.text for u in units)) == expected


def test_a_pass_that_repeats_its_forced_prefix_is_cut() -> None:
    """When the decoder says the committed prefix again after new words, the repeat is dropped."""
    prefix = words("and so my")
    echoed = tuple(
        Unit(u.text, u.start + 1, u.end + 1, True) for u in words("fellow Americans and so my fellow Americans")
    )
    kept = collapse_loops(echoed, context=prefix)
    assert [u.text for u in kept] == ["fellow", "Americans"]


def test_known_silence_hallucinations_are_rejected() -> None:
    """Subtitle credits are always rejected; a doubtful lone "thank you" is; real speech is not."""
    sure = {"avg_logprob": -0.2, "no_speech_prob": 0.05, "compression_ratio": 1.2}
    doubtful = {"avg_logprob": -0.9, "no_speech_prob": 0.5, "compression_ratio": 1.2}
    assert rejection_reason("ขอบคุณที่รับชม", **sure) == "known_hallucination"
    assert rejection_reason("Thanks for watching!", **sure) == "known_hallucination"
    assert rejection_reason("ขอบคุณครับ", **doubtful) == "known_hallucination"
    assert rejection_reason("ขอบคุณครับ", **sure) is None
    assert rejection_reason("ท่านประธานที่เคารพ", **sure) is None
    assert rejection_reason("...", **sure) == "no_words"
    assert rejection_reason("อะไร", avg_logprob=-1.5, no_speech_prob=0.1, compression_ratio=1.0) == "low_logprob"
    assert rejection_reason("x", avg_logprob=-1.1, no_speech_prob=0.9, compression_ratio=1.0) == "no_speech"


def test_a_lone_punctuation_commit_is_no_caption_line() -> None:
    """Words final, then the utterance ends on just the "," after them: no final line of only punctuation; the
    comma counts as committed (no later pass shows it again) and the next utterance's words become final as usual."""
    policy = CommitPolicy()
    said = words("ครับ")
    policy.observe(said, audio_end=5.0)
    assert [c.text for c in policy.observe(said, audio_end=5.0) if c.kind == "final"] == ["ครับ"]
    comma = (Unit(",", 0.3, 0.4),)
    captions = policy.observe(comma, follows_commit=True, end_of_utterance=True)
    assert [c.text for c in captions if c.kind == "final"] == []
    assert policy.last_final_end == 0.4
    after = tuple(Unit(u.text, u.start + 1.0, u.end + 1.0, u.space_before) for u in words("ท่าน ประธาน"))
    captions = policy.observe(after, end_of_utterance=True)
    assert [c.text for c in captions if c.kind == "final"] == ["ท่าน ประธาน"]
