"""lab.batching: texts decoded together, joining and leaving at any step, write what each writes alone."""

import threading
from pathlib import Path

import pytest
import torch

from lab import batching
from lab.batching import Batch, SharedDecoder, decode_together
from lab.models import load_model
from lab.sampling import Generation
from lab.warping import SamplingSettings

DEMO = Path(__file__).resolve().parents[1] / "assets" / "demo-model"
PROMPTS = ["Once upon a time, there was a little girl named Lily. She", "Tom had a dog.", "The sun",
           "One day, a big bear went to the park and saw a"]


@pytest.fixture(scope="module")
def demo():
    return load_model(DEMO, "cpu")


def settings(i: int, **over) -> SamplingSettings:
    """A different decoding for each i: greedy, temperatures, top-k, top-p, repetition penalty, lengths."""
    base = dict(strategy="greedy" if i % 5 == 4 else "sample", temperature=(1.0, 0.7, 1.4, 1.0)[i % 4],
                top_k=(0, 12)[i % 2], top_p=(1.0, 0.9, 1.0, 0.6)[i % 4],
                repetition_penalty=(1.0, 1.3)[i // 3 % 2], max_new_tokens=12 + 5 * (i % 6), seed=100 + i)
    return SamplingSettings(**{**base, **over})


def alone(model, tok, prompt, s) -> list[int]:
    return [st.token_id for st in Generation(model, tok, prompt, s).run().steps]


def written(gen: Generation) -> list[int]:
    return [st.token_id for st in gen.steps]


def test_texts_decoded_together_match_each_alone(demo):
    model, tok = demo
    gens = [Generation(model, tok, PROMPTS[i % 4], settings(i)) for i in range(10)]
    passes = list(decode_together(gens))
    for i, gen in enumerate(gens):
        assert written(gen) == alone(model, tok, PROMPTS[i % 4], settings(i)), f"text {i}"
    # One pass per step for all ten (the longest text sets the count), not one per text per step.
    assert len(passes) == max(len(g.steps) for g in gens)
    assert sorted(len(g.steps) for g in gens) == sorted(sum(1 for e in passes for g, _ in e if g is gen) for gen in gens)


def test_texts_joining_midway_and_leaving_early_match_alone(demo):
    model, tok = demo
    batch = Batch(model)
    first = [Generation(model, tok, PROMPTS[i], settings(i, max_new_tokens=(4, 30)[i])) for i in range(2)]
    later = [Generation(model, tok, PROMPTS[2 + i], settings(2 + i, max_new_tokens=25)) for i in range(2)]
    batch.step(first)
    batch.step()
    batch.step()
    batch.step(later)  # joins at step 4 with prompts of other lengths: padded into the shared cache
    widths = []
    while batch.gens:
        assert len(batch.gens) <= 4 and batch.mask.shape[1] == batch.cache.get_seq_length()
        widths.append(batch.mask.shape[1])
        batch.step()
    for i, gen in enumerate(first):
        assert written(gen) == alone(model, tok, PROMPTS[i], settings(i, max_new_tokens=(4, 30)[i]))
    for i, gen in enumerate(later):
        assert written(gen) == alone(model, tok, PROMPTS[2 + i], settings(2 + i, max_new_tokens=25))
    assert len(first[0].steps) == 4 and batch.mask.shape == (0, 0)  # the short one left; the batch emptied
    # Columns only padding once the long-prompt text left are dropped: the cache never outgrows the longest text.
    assert max(widths) <= max(len(g.prompt_ids) + len(g.steps) for g in first + later)


def test_steps_keep_their_top_tokens_as_the_distribution_would_list_them(demo):
    model, tok = demo
    full = Generation(model, tok, PROMPTS[0], settings(1, max_new_tokens=8)).run()
    gens = [Generation(model, tok, PROMPTS[i], settings(1, max_new_tokens=8, seed=101 + i), keep_distributions=False,
                       keep_top=25) for i in range(3)]
    list(decode_together(gens))
    for got, want in zip(gens[0].steps, full.steps):
        listed = want.distribution.top(tok, 25, chosen=want.token_id)
        for column in ("rank", "token_id", "token", "kept_by_top_k", "kept"):
            assert got.top[column] == listed[column]
        for column in ("raw", "tempered", "final"):  # batched with other prompts: equal up to float rounding
            assert got.top[column] == pytest.approx(listed[column], rel=1e-4, abs=1e-9)
        assert got.tokens_kept == want.distribution.n_kept
        assert got.kept_mass == pytest.approx(want.distribution.kept_mass)
    assert all(st.distribution is not None for st in gens[1].steps)  # a reader drops them (SharedDecoder does)


def test_a_gpt2_model_batches_too(demo):
    from transformers import GPT2Config, GPT2LMHeadModel

    _, tok = demo
    torch.manual_seed(0)
    gpt2 = GPT2LMHeadModel(GPT2Config(vocab_size=len(tok), n_positions=64, n_embd=32, n_layer=2, n_head=2,
                                      eos_token_id=tok.eos_token_id, bos_token_id=tok.eos_token_id)).eval()
    gens = [Generation(gpt2, tok, PROMPTS[i], settings(i, max_new_tokens=15)) for i in range(4)]
    list(decode_together(gens))
    assert [written(g) for g in gens] == [alone(gpt2, tok, PROMPTS[i], settings(i, max_new_tokens=15)) for i in range(4)]


def test_room_for_keeps_rows_inside_the_context_and_local_attention_unpadded(demo):
    from transformers import GPTNeoConfig, GPTNeoForCausalLM

    model, tok = demo  # context 128
    batch = Batch(model)
    short_long = Generation(model, tok, "The sun", SamplingSettings(max_new_tokens=120))
    long_short = Generation(model, tok, " ".join(["The dog ran."] * 25), SamplingSettings(max_new_tokens=10))
    assert batch.room_for([short_long]) and batch.room_for([long_short])
    assert not batch.room_for([short_long, long_short])  # padded to the long prompt, 120 more would overflow
    with pytest.raises(ValueError, match="cannot share"):
        next(decode_together([short_long, long_short]))
    config = GPTNeoConfig(vocab_size=len(tok), max_position_embeddings=64, hidden_size=32, num_layers=2,
                          num_heads=2, attention_types=[[["global", "local"], 1]], window_size=8,
                          bos_token_id=tok.eos_token_id, eos_token_id=tok.eos_token_id)
    local = GPTNeoForCausalLM(config).eval()
    a, b, c = (Generation(local, tok, p, SamplingSettings(max_new_tokens=5)) for p in ("The cat", "The dog", "The big sun"))
    local_batch = Batch(local)
    assert len(a.prompt_ids) == len(b.prompt_ids) != len(c.prompt_ids)
    assert local_batch.room_for([a, b]) and not local_batch.room_for([a, c])  # equal prompt lengths only
    local_batch.step([a, b])
    assert not local_batch.room_for([Generation(local, tok, "The cat", SamplingSettings(max_new_tokens=5))])
    assert not Batch(model).room_for([a])  # another model's text


def test_shared_decoder_serves_threads_and_frees_a_row_whose_reader_left(demo):
    model, tok = demo
    decoder = SharedDecoder(idle_s=0.5)
    got, errors = {}, []

    def student(i: int) -> None:
        try:
            gen = Generation(model, tok, PROMPTS[i % 4], settings(i), keep_distributions=False)
            steps = list(decoder.submit(gen))
            assert all(st.distribution is None for st in steps)  # dropped once read, as asked
            got[i] = [st.token_id for st in steps]
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    leaver = Generation(model, tok, PROMPTS[0], settings(0, max_new_tokens=60))
    reader = decoder.submit(leaver)
    first = [next(reader) for _ in range(3)]
    threads = [threading.Thread(target=student, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    reader.close()  # the page was left: its row goes at the next step
    for t in threads:
        t.join(60)
    assert not errors
    assert got == {i: alone(model, tok, PROMPTS[i % 4], settings(i)) for i in range(8)}
    assert first[0].distribution is not None and leaver.stopped and len(leaver.steps) < 60
    for _ in range(40):  # idle: the thread ends by itself
        if decoder._thread is None:
            break
        threading.Event().wait(0.1)
    assert decoder._thread is None


def test_a_decoding_error_reaches_its_reader_and_the_decoder_serves_on(demo, monkeypatch):
    model, tok = demo
    decoder = SharedDecoder(idle_s=0.5)
    monkeypatch.setattr(Batch, "_join", lambda *a: (_ for _ in ()).throw(RuntimeError("out of memory")))
    with pytest.raises(RuntimeError, match="out of memory"):
        list(decoder.submit(Generation(model, tok, PROMPTS[1], settings(1))))
    monkeypatch.undo()
    assert [st.token_id for st in decoder.submit(Generation(model, tok, PROMPTS[1], settings(1)))] == \
        alone(model, tok, PROMPTS[1], settings(1))


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")  # the crash is re-raised, logged
def test_a_dead_decoding_thread_fails_its_readers_instead_of_hanging_them(demo, monkeypatch):
    model, tok = demo
    decoder = SharedDecoder(idle_s=0.5)
    monkeypatch.setattr(Batch, "step", lambda *a: (_ for _ in ()).throw(SystemExit()))  # not an Exception
    with pytest.raises(RuntimeError, match="decoding thread stopped"):
        list(decoder.submit(Generation(model, tok, PROMPTS[1], settings(1))))
    monkeypatch.undo()
    assert [st.token_id for st in decoder.submit(Generation(model, tok, PROMPTS[1], settings(1)))] == \
        alone(model, tok, PROMPTS[1], settings(1))  # the next request starts a fresh thread


def test_module_submit_uses_one_shared_decoder(demo):
    model, tok = demo
    gen = Generation(model, tok, PROMPTS[3], settings(3))
    assert [st.token_id for st in batching.submit(gen)] == alone(model, tok, PROMPTS[3], settings(3))
    assert batching.SHARED._thread is not None


@pytest.mark.parametrize("kind", ["gpt_neo", "gpt2"])
def test_an_ablation_in_one_session_never_reaches_another_sessions_text(demo, kind):
    from transformers import GPT2Config, GPT2LMHeadModel

    from lab.ablation import Unit, ablation_hook
    from lab.hooks import run_with_hooks

    model, tok = demo
    if kind == "gpt2":
        torch.manual_seed(0)
        model = GPT2LMHeadModel(GPT2Config(vocab_size=len(tok), n_positions=64, n_embd=32, n_layer=2, n_head=2,
                                           eos_token_id=tok.eos_token_id, bos_token_id=tok.eos_token_id)).eval()
    want = alone(model, tok, PROMPTS[2], settings(2))
    got, inside, release = [], threading.Event(), threading.Event()
    name, zero_head = ablation_hook(model, Unit("head", 0, 0))

    def ablate_slowly(z, hook):  # another student's ablation, in the middle of its pass over the shared model
        inside.set()
        release.wait(10)
        return zero_head(z, hook)

    ablating = threading.Thread(target=lambda: run_with_hooks(model, PROMPTS[0], [(name, ablate_slowly)], tokenizer=tok))
    ablating.start()
    inside.wait(10)
    other = threading.Thread(target=lambda: got.append(list(SharedDecoder().submit(
        Generation(model, tok, PROMPTS[2], settings(2))))))
    other.start()
    other.join(0.5)
    if kind == "gpt2":  # a model's own pass waits for the ablating pass to end rather than run through its hooks
        assert other.is_alive() and not got
    # GPT-Neo texts are decoded from the weights alone (lab.stacked), so hooks never run on them
    release.set()
    ablating.join(30)
    other.join(30)
    assert [st.token_id for st in got[0]] == want


def test_closing_the_decoder_stops_its_thread_mid_text(demo):
    # At exit (atexit), a daemon thread left inside a forward pass while the interpreter shuts down can abort it.
    model, tok = demo
    decoder = SharedDecoder(idle_s=30)
    gen = Generation(model, tok, PROMPTS[0], settings(0, max_new_tokens=200))
    reader = decoder.submit(gen)
    next(reader)
    thread = decoder._thread
    decoder.close(timeout=20)
    assert not thread.is_alive() and len(gen.steps) < 20  # stopped after the step it was in, not at the end
    assert len(list(reader)) == len(gen.steps) - 1  # its reader ends instead of waiting forever
