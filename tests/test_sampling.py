"""lab.sampling: the warped distribution equals transformers', decoding is seeded, greedy, cached and checked."""

import pytest
import torch
from transformers import TemperatureLogitsWarper, TopKLogitsWarper, TopPLogitsWarper

from lab.cli import main as cli_main
from lab.models import build_model, get_shape
from lab.sampling import Decoder, Generation, Step, steps_table
from lab.warping import SamplingSettings, check_settings, next_token_distribution, token_label, token_text, warp
from lab.stories import generate_stories
from lab.tokenizer import train_tokenizer

PROMPT = "Once upon a time, there was a little"


@pytest.fixture(scope="module")
def tok():
    return train_tokenizer(generate_stories(40, 0), "bpe", 320)


@pytest.fixture(scope="module")
def model(tok):
    # Random weights: equality tests need no training. Context 64 makes the long-prompt case cheap.
    shape = get_shape("micro", context=64)
    return build_model(shape, len(tok), tok.eos_token_id, seed=0).eval()


def reference(logits, temperature, top_k, top_p):
    """What generate()'s warpers give, chained by hand in generate()'s order."""
    scores = logits.clone()
    if temperature != 1.0:
        scores = TemperatureLogitsWarper(temperature)(None, scores)
    if top_k:
        scores = TopKLogitsWarper(top_k)(None, scores)
    if top_p < 1.0:
        scores = TopPLogitsWarper(top_p)(None, scores)
    return scores.softmax(-1)


SETTINGS = [(t, k, p) for t in (0.3, 1.0, 1.7) for k in (0, 1, 5, 40) for p in (1.0, 0.9, 0.5, 0.05)]


@pytest.mark.parametrize("temperature,top_k,top_p", SETTINGS)
def test_distribution_equals_transformers_warpers(temperature, top_k, top_p):
    g = torch.Generator().manual_seed(hash((temperature, top_k, top_p)) % 2**31)
    logits = torch.randn(4, 100, generator=g) * 3
    got = next_token_distribution(logits, temperature, top_k, top_p)
    assert got.shape == logits.shape
    torch.testing.assert_close(got, reference(logits, temperature, top_k, top_p), rtol=0, atol=1e-7)
    assert torch.allclose(got.sum(-1), torch.ones(4))


@pytest.mark.parametrize("top_k,top_p", [(3, 1.0), (0, 0.5), (2, 0.7), (1, 1.0)])
def test_ties_are_handled_like_transformers(top_k, top_p):
    # Many equal logits: top-k keeps every token tied with the k-th, top-p's sort decides inside a tie.
    logits = torch.tensor([[2.0, 1.0, 2.0, 1.0, 1.0, 0.0, 2.0, 1.0]])
    got = next_token_distribution(logits, 1.0, top_k, top_p)
    torch.testing.assert_close(got, reference(logits, 1.0, top_k, top_p), rtol=0, atol=1e-7)
    if top_k == 3 and top_p == 1.0:
        assert (got > 0).sum() == 3  # exactly the three tied 2.0s
    if top_k == 2 and top_p == 1.0:
        assert (got > 0).sum() == 3


def test_each_cut_does_what_it_says():
    logits = torch.tensor([4.0, 3.0, 2.0, 1.0, 0.0])
    assert (next_token_distribution(logits, top_k=2) > 0).tolist() == [True, True, False, False, False]
    probs = logits.softmax(-1)
    kept = next_token_distribution(logits, top_p=0.8) > 0
    assert probs[kept].sum() >= 0.8 and probs[kept][:-1].sum() < 0.8  # the fewest tokens reaching p
    flat, sharp = next_token_distribution(logits, 5.0), next_token_distribution(logits, 0.2)
    assert flat.max() < probs.max() < sharp.max()


def test_temperature_zero_is_greedy_without_dividing_by_zero():
    logits = torch.tensor([[0.5, 3.0, 3.0, -1.0]])
    got = next_token_distribution(logits, temperature=0.0)
    assert got.tolist() == [[0.0, 1.0, 0.0, 0.0]]  # the first of tied maxima, like torch.argmax
    assert torch.isfinite(got).all()


def test_warp_reports_the_stages_for_the_chart():
    logits = torch.tensor([3.0, 2.0, 1.0, 0.0, -1.0, -2.0])
    d = warp(logits, SamplingSettings(temperature=2.0, top_k=4, top_p=0.6))
    torch.testing.assert_close(d.raw, logits.softmax(-1))
    torch.testing.assert_close(d.tempered, (logits / 2).softmax(-1))
    assert d.kept_by_top_k.tolist() == [True] * 4 + [False] * 2
    assert d.kept.sum() < d.kept_by_top_k.sum() and not (d.kept & ~d.kept_by_top_k).any()
    assert d.final[~d.kept].sum() == 0 and abs(float(d.final.sum()) - 1) < 1e-6


def test_same_seed_same_text_and_other_seed_differs(model, tok):
    s = SamplingSettings(temperature=1.0, max_new_tokens=25, seed=7)
    a = Generation(model, tok, PROMPT, s).run()
    b = Generation(model, tok, PROMPT, s).run()
    c = Generation(model, tok, PROMPT, SamplingSettings(temperature=1.0, max_new_tokens=25, seed=8)).run()
    assert a.token_ids == b.token_ids and a.text == b.text
    assert a.token_ids != c.token_ids
    assert [s.probability for s in a.steps] == [s.probability for s in b.steps]
    light = Generation(model, tok, PROMPT, s, keep_distributions=False).run()  # same text, less memory
    assert light.token_ids == a.token_ids and all(st.distribution is None for st in light.steps)
    assert light.table().tokens_kept.tolist() == [st.distribution.n_kept for st in a.steps] == [len(tok)] * len(a.steps)


def test_greedy_is_argmax_decoding_and_equals_generate(model, tok):
    gen = Generation(model, tok, PROMPT, SamplingSettings(strategy="greedy", max_new_tokens=20)).run()
    ids = list(gen.prompt_ids)
    with torch.no_grad():
        for step in gen.steps:  # argmax of a full forward pass, one token at a time
            assert step.token_id == int(model(torch.tensor([ids])).logits[0, -1].argmax())
            ids.append(step.token_id)
        out = model.generate(torch.tensor([gen.prompt_ids]), do_sample=False, max_new_tokens=20,
                             pad_token_id=tok.eos_token_id)
    assert out[0, len(gen.prompt_ids):].tolist() == [s.token_id for s in gen.steps]
    # temperature 0 with the sampling strategy is the same greedy decoding
    zero = Generation(model, tok, PROMPT, SamplingSettings(temperature=0.0, max_new_tokens=20, seed=3)).run()
    assert zero.token_ids == gen.token_ids and any("greedy" in n for n in zero.notes)


def test_seeded_sampling_equals_generate(model, tok):
    s = SamplingSettings(temperature=0.8, top_k=30, top_p=0.9, repetition_penalty=1.3, max_new_tokens=25, seed=11)
    gen = Generation(model, tok, PROMPT, s).run()
    torch.manual_seed(11)  # generate() draws from the global generator; ours from a private one seeded alike
    out = model.generate(torch.tensor([gen.prompt_ids]), do_sample=True, max_new_tokens=25, temperature=0.8,
                         top_k=30, top_p=0.9, repetition_penalty=1.3, pad_token_id=tok.eos_token_id)
    assert out[0, len(gen.prompt_ids):].tolist() == [s.token_id for s in gen.steps]


@pytest.mark.parametrize("settings", [
    SamplingSettings(strategy="greedy", max_new_tokens=30),
    SamplingSettings(temperature=1.2, top_p=0.95, repetition_penalty=1.2, max_new_tokens=30, seed=5),
])
def test_kv_cache_generation_equals_no_cache_generation(model, tok, settings):
    cached = Generation(model, tok, PROMPT, settings).run()
    plain = Generation(model, tok, PROMPT, settings, use_cache=False).run()
    assert cached.token_ids == plain.token_ids
    for a, b in zip(cached.steps, plain.steps):
        torch.testing.assert_close(a.distribution.raw, b.distribution.raw, rtol=1e-4, atol=1e-6)


def test_decoder_undo_returns_to_the_same_distribution(model, tok):
    d = Decoder(model, tok.encode(PROMPT))
    before = d.logits.clone()
    d.push(5)
    d.push(9)
    d.undo(2)
    torch.testing.assert_close(d.logits, before, rtol=1e-4, atol=1e-5)


def test_stops_at_end_of_text(model, tok):
    # A model that always prefers <|endoftext|>: generation yields it as the first step and stops.
    eos_model = build_model(get_shape("micro", context=64), len(tok), tok.eos_token_id, seed=0).eval()
    with torch.no_grad():
        eos_model.lm_head.weight.zero_()  # tied with the embedding: every logit is 0 ...
        eos_model.lm_head.weight[tok.eos_token_id] = 1.0  # ... except eos's (times a positive LayerNorm'd sum)
    eos_model.transformer.ln_f.bias.data.fill_(1.0)
    eos_model.transformer.ln_f.weight.data.zero_()
    gen = Generation(eos_model, tok, PROMPT, SamplingSettings(strategy="greedy", max_new_tokens=10)).run()
    assert len(gen.steps) == 1 and gen.steps[0].is_end and gen.text == ""
    assert token_label(tok, tok.eos_token_id) == "⏹ end"


@pytest.mark.parametrize("settings,words", [
    (SamplingSettings(temperature=-0.5), "temperature"),
    (SamplingSettings(top_p=0.0), "top-p"),
    (SamplingSettings(top_p=1.5), "top-p"),
    (SamplingSettings(top_k=-1), "top-k"),
    (SamplingSettings(max_new_tokens=0), "max new tokens"),
    (SamplingSettings(repetition_penalty=0.0), "repetition penalty"),
    (SamplingSettings(strategy="beam"), "strategy"),
])
def test_bad_settings_raise_clear_messages(settings, words):
    with pytest.raises(ValueError, match=words):
        check_settings(settings, 100)


def test_empty_prompt_is_refused(model, tok):
    with pytest.raises(ValueError, match="prompt is empty"):
        Generation(model, tok, "   ", SamplingSettings())


def test_clamps_are_reported(model, tok):
    long_prompt = " ".join(["Once upon a time"] * 40)
    gen = Generation(model, tok, long_prompt, SamplingSettings(top_k=10_000, max_new_tokens=10**6))
    notes = " ".join(gen.notes)
    assert gen.settings.top_k == 0 and "vocabulary" in notes
    # context 64: a huge request gets half of it, the prompt keeps the other half (its last tokens)
    assert gen.settings.max_new_tokens == 32 and "lowered from 1000000 to 32" in notes
    assert len(gen.prompt_ids) == 32 and "kept the last 32" in notes
    gen = Generation(model, tok, long_prompt, SamplingSettings(max_new_tokens=20)).run()
    assert len(gen.prompt_ids) == 44 and "kept the last 44 tokens" in gen.notes[0] and len(gen.notes) == 1
    assert gen.prompt_ids == tok.encode(long_prompt)[-44:]
    assert len(gen.steps) <= 20
    gen = Generation(model, tok, "Once upon a time", SamplingSettings(max_new_tokens=500))  # short prompt: kept whole
    assert gen.prompt_ids == tok.encode("Once upon a time") and gen.settings.max_new_tokens == 64 - len(gen.prompt_ids)


def test_cli_streams_a_continuation(model, tok, tmp_path, capsys):
    model.save_pretrained(tmp_path / "m")
    tok.save_pretrained(tmp_path / "m")
    args = [str(tmp_path / "m"), "--prompt", "Once upon", "--max-new-tokens", "12", "--seed", "3"]
    assert cli_main(["sample", *args]) == 0
    first = capsys.readouterr().out
    assert first.startswith("Once upon") and len(first) > len("Once upon\n")
    assert cli_main(["sample", *args]) == 0
    assert capsys.readouterr().out == first  # seeded: the same text again
    assert cli_main(["sample", *args[:3], "--greedy", "--temperature", "-1"]) == 2
    assert "temperature" in capsys.readouterr().err


def test_chart_draws_cutoff_lines_where_the_cuts_are(tok):
    from lab.sampling_view import distribution_chart

    logits = torch.linspace(5, -5, len(tok))
    s = SamplingSettings(temperature=1.5, top_k=12, top_p=0.5)
    d = warp(logits, s)
    fig = distribution_chart(d.table(tok, 25), s, chosen=0, n_kept=d.n_kept, kept_mass=d.kept_mass, vocab_size=len(tok))
    lines = sorted(shape.y0 + 0.5 for shape in fig.layout.shapes)
    assert lines == [d.n_kept, 12]  # top-p line after the kept tokens, top-k line after 12
    assert [a.text.split("<br>")[0] for a in fig.layout.annotations] == ["top-k = 12", "top-p = 0.5"]
    assert len(fig.data[0].x) == 25  # model's probabilities (outline), then after temperature (solid)
    greedy = distribution_chart(warp(logits, SamplingSettings(strategy="greedy")).table(tok, 10),
                                SamplingSettings(strategy="greedy"))
    assert [a.text.replace("<br>", " ") for a in greedy.layout.annotations] == ["greedy: only the top token"]


def test_coloured_text_escapes_html_and_shows_probabilities():
    from lab.sampling_view import coloured_text

    out = coloured_text("<b>Hi</b>", [(" <script>", 0.25, 0.5), ("!", 1.0, 0.9)])
    assert "<script>" not in out and "&lt;script&gt;" in out and "&lt;b&gt;Hi" in out
    assert "p = 0.250 (model: 0.500)" in out and out.count("<span title=") == 2


def test_works_with_a_gpt2_model_too(tok):
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    gpt2 = GPT2LMHeadModel(GPT2Config(vocab_size=len(tok), n_positions=32, n_embd=32, n_layer=2, n_head=2,
                                      eos_token_id=tok.eos_token_id, bos_token_id=tok.eos_token_id)).eval()
    gen = Generation(gpt2, tok, PROMPT, SamplingSettings(strategy="greedy", max_new_tokens=100)).run()
    assert len(gen.prompt_ids) + gen.settings.max_new_tokens == 32 and len(gen.steps) <= gen.settings.max_new_tokens
    out = gpt2.generate(torch.tensor([gen.prompt_ids]), do_sample=False, max_new_tokens=len(gen.steps),
                        pad_token_id=tok.eos_token_id)
    assert out[0, len(gen.prompt_ids):].tolist() == [s.token_id for s in gen.steps]


def test_a_character_split_across_byte_tokens_shows_whole_and_stray_bytes_show_as_markers():
    """Issue 16: a barely trained byte-level model wrote "�" where one character spans tokens."""
    from lab.sampling import BYTES_NOTE, display_texts
    from lab.sampling_view import coloured_text
    from lab.tokenizer import train_tokenizer

    tok = train_tokenizer(["a cat sat on the mat."] * 5, "bpe", 300)  # no "é" or "☕" learned: one token per byte
    ids = tok.encode("café ☕ ok", add_special_tokens=False)
    assert "�" in "".join(tok.decode([i]) for i in ids)  # what decoding token by token showed
    texts = display_texts(tok, ids)
    assert "".join(texts) == "café ☕ ok" and texts.count("") == 3  # é: 2 bytes, ☕: 3 bytes
    streaming = display_texts(tok, ids[:8], finished=False)  # "caf" é " " and the first 2 of ☕'s 3 bytes
    assert "".join(streaming) == "café " and streaming[-2:] == ["", ""]  # held back, not "�"
    assert "".join(display_texts(tok, ids[:8])) == "café ⟨e2⟩⟨98⟩"  # the text ended inside ☕: its bytes
    stray = tok.convert_tokens_to_ids("Ã")  # byte 0xc3 starts a 2-byte character; " o" cannot continue it
    texts = display_texts(tok, ids[:2] + [stray] + ids[-3:])
    assert "".join(texts) == "ca⟨c3⟩ ok" and "�" not in "".join(texts)
    backspace = tok.convert_tokens_to_ids("Ĉ")  # byte 0x08: a character that prints nothing (a box in a browser)
    assert display_texts(tok, [backspace] + ids[:2]) == ["⟨08⟩", "c", "a"]
    rows = [(t, 0.5, 0.5) for t in texts]
    html = coloured_text("", rows)
    assert "⟨c3⟩" in html and BYTES_NOTE.split(":")[0] in html  # one line says why
    assert BYTES_NOTE.split(":")[0] not in coloured_text("", [(t, 0.5, 0.5) for t in display_texts(tok, ids)])
    assert "p = 0.250 (model: 0.250), 2 tokens" in coloured_text("", [(t, 0.5, 0.5) for t in display_texts(tok, ids)])
    char = train_tokenizer(["a cat é"], "char")  # not byte-level: each token decodes alone, as before
    assert display_texts(char, char.encode("cat é")) == ["c", "a", "t", " ", "é"]


def test_the_cli_writes_a_split_character_whole(tmp_path, capsys):
    from argparse import Namespace

    from lab.commands import sample as sample_verb
    from lab.models import ModelShape, build_model
    from lab.tokenizer import train_tokenizer

    tok = train_tokenizer(["a cat sat on the mat."] * 5, "bpe", 300)
    build_model(ModelShape(n_layer=1, d_model=16, n_head=2, d_mlp=32, context=64, window=8), len(tok), seed=0).save_pretrained(tmp_path)
    tok.save_pretrained(tmp_path)
    args = Namespace(model=str(tmp_path), prompt="café", greedy=True, temperature=1.0, top_k=0, top_p=1.0,
                     repetition_penalty=1.0, max_new_tokens=20, seed=0, device="cpu")
    assert sample_verb.run(args) == 0
    out = capsys.readouterr()
    assert out.out.startswith("café") and "�" not in out.out
    assert ("⟨" in out.out) == ("⟨" in out.err)  # markers come with the note saying why


def test_chart_labels_of_a_piece_of_a_character_show_its_bytes():
    """The next-token chart labels a token that is part of a character as the Sample text marks it, not "�"."""
    from lab.tokenizer import train_tokenizer

    tok = train_tokenizer(["a cat sat on the mat."] * 5, "bpe", 300)
    ids = tok.encode("☕", add_special_tokens=False)  # three tokens, one byte each
    assert [token_label(tok, i) for i in ids] == ["⟨e2⟩", "⟨98⟩", "⟨95⟩"]
    assert token_label(tok, tok.encode("a", add_special_tokens=False)[0]) == "a"
    steps = [Step(k, i, token_text(tok, i), 1.0, 1.0, None) for k, i in enumerate(ids)]
    assert steps_table(steps).token.tolist() == ["⟨e2⟩", "⟨98⟩", "⟨95⟩"]  # the CSV download's column too


def test_the_txt_download_writes_a_cut_character_as_its_bytes_not_a_replacement_character():
    """The Sample page's TXT joined `Generation.text`, whose decode wrote "�" for a character the text ended inside."""
    from lab.sampling_view import texts_txt, token_rows

    tok = train_tokenizer(["a cat sat on the mat."] * 5, "bpe", 300)
    ids = tok.encode("ca☕", add_special_tokens=False)[:-1]  # ends inside ☕ (3 bytes, 3 tokens)
    steps = [Step(k, i, token_text(tok, i), 1.0, 1.0, None) for k, i in enumerate(ids)]
    steps.append(Step(len(ids), tok.eos_token_id, "", 1.0, 1.0, None, is_end=True))
    result = {"prompt": "Hi ", "settings": SamplingSettings(strategy="greedy"), "seed": 0,
              "rows": token_rows(steps, tok), "text": tok.decode(ids)}
    assert "�" in result["text"]  # what the TXT held
    assert texts_txt([result]) == "# greedy, seed 0\nHi ca⟨e2⟩⟨98⟩"  # as the page shows it; ⏹ is not text


@pytest.mark.parametrize("penalty", [1.0, 1.3])
def test_a_greedy_step_reads_its_kept_count_and_mass_from_the_chosen_token(model, tok, penalty):
    """Greedy keeps one token: take_rows reads its count and mass from it instead of summing over the
    vocabulary; they equal the distribution's own (with a repetition penalty the tempered mass differs from raw)."""
    gen = Generation(model, tok, "Once upon a time", SamplingSettings(strategy="greedy", max_new_tokens=6,
                                                                       repetition_penalty=penalty)).run()
    for step in gen.steps:
        assert step.tokens_kept == step.distribution.n_kept == 1
        assert step.kept_mass == pytest.approx(step.distribution.kept_mass, rel=1e-6)



def test_top_k_and_top_p_cut_from_one_topk_bit_for_bit_as_transformers():
    # lab.warping.cut_top_k skips the warpers' passes over the vocabulary; its rows must be theirs, bit for bit, on
    # smooth logits (its own path) and on coarse ones full of ties (it hands those back to the warpers).
    from lab.warping import cut_top_k, warp_rows

    g = torch.Generator().manual_seed(5)
    own = handed_back = 0
    for trial in range(300):
        logits = torch.randn(3, 500, generator=g) * 4
        if trial % 3 == 0:
            logits = (logits * 2).round() / 2  # many equal values
        k = int(torch.randint(1, 60, (1,), generator=g))
        p = (1.0, float(torch.rand(1, generator=g)) * 0.98 + 0.01)[trial % 4 != 0]
        t = (0.5, 1.0, 1.3)[trial % 3]
        scores = TemperatureLogitsWarper(t)(None, logits.clone()) if t != 1.0 else logits.clone()
        want = TopKLogitsWarper(k)(None, scores)
        want_by_k = want > -float("inf")
        if p < 1.0:
            want = TopPLogitsWarper(p)(None, want)
        got = warp_rows(logits, SamplingSettings(temperature=t, top_k=k, top_p=p))
        assert torch.equal(got.scores, want) and torch.equal(got.final, want.softmax(-1)), (trial, k, p)
        assert torch.equal(got.kept_by_top_k, want_by_k) and torch.equal(got.kept, want > -float("inf"))
        if cut_top_k(scores, k, p) is None:
            handed_back += 1
        else:
            own += 1
            assert got.candidates.shape == (3, k) and bool(got.kept.gather(1, got.candidates).any(-1).all())
    assert own > 150 and handed_back > 10  # both paths ran


def test_top_k_cut_hands_ties_at_either_cut_back_to_the_warpers():
    from lab.warping import cut_top_k

    # Two equal values straddle top-p's cut (the second 1.0 would be removed): only the sort knows which goes.
    logits = torch.tensor([[3.0, 1.0, 0.0, 1.0, -5.0]]).log_softmax(-1)
    probs = logits.softmax(-1)[0]
    assert cut_top_k(logits, 4, float(probs[0] + probs[1]) - 1e-3) is None
    assert cut_top_k(logits, 4, 0.5) is not None  # no tie at the cut
    assert cut_top_k(torch.tensor([[2.0, 1.0, 1.0, 0.0]]), 2) is None  # top-k keeps 3 (a tie with the 2nd)
    assert cut_top_k(torch.tensor([[2.0, 1.0, 1.0, 0.0]]), 3) is not None


def test_first_by_equals_a_stable_descending_sort_ties_included():
    from lab.warping import first_by

    g = torch.Generator().manual_seed(0)
    for key in (torch.randn(4, 3000, generator=g, dtype=torch.float64),
                torch.randint(0, 5, (4, 3000), generator=g).double(), torch.zeros(2, 50, dtype=torch.float64)):
        for n in (1, 25, 3000):
            want = torch.argsort(key, dim=-1, descending=True, stable=True)[:, :n]
            assert torch.equal(first_by(key, n), want)
