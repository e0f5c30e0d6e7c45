"""lab.stacked: many GPT-Neo models of one shape in one pass give each model's own logits and texts."""

import threading

import pytest
import torch
from transformers import GPT2Config, GPT2LMHeadModel, GPTNeoConfig, GPTNeoForCausalLM

from lab import batching, stacked
from lab.batching import SharedDecoder, StackedBatch, decode_together
from lab.models import load_model
from lab.sampling import Generation

# The same prompts, demo model, decoding settings and lone-text reference as the single-model batching tests.
from test_batching import DEMO, PROMPTS, alone, demo, settings  # noqa: E402,F401 - demo is a fixture


def neo(vocab: int, seed: int, local: bool = False) -> GPTNeoForCausalLM:
    """A small random GPT-Neo; ``local``: every other layer has a sliding window of 4 tokens."""
    config = GPTNeoConfig(vocab_size=vocab, max_position_embeddings=64, hidden_size=32, num_layers=2, num_heads=2,
                          intermediate_size=64, window_size=4, bos_token_id=0, eos_token_id=0,
                          attention_types=[[["global", "local"] if local else ["global"] * 2, 1]])
    torch.manual_seed(seed)
    return GPTNeoForCausalLM(config).eval()


def own_logits(model, ids: list[int]) -> torch.Tensor:
    with torch.inference_mode():
        return model(input_ids=torch.tensor([ids])).logits[0, -1]


@pytest.mark.parametrize("local", [False, True])
def test_one_pass_gives_each_models_own_logits_with_padding_and_windows(demo, local):
    _, tok = demo
    models = [neo(len(tok), seed, local) for seed in range(3)]
    rows = [(models[0], PROMPTS[0]), (models[1], PROMPTS[1]), (models[2], PROMPTS[3]), (models[1], PROMPTS[2])]
    texts = [tok.encode(p) for _, p in rows]  # lengths 14, 5, 12, 2: left-padded to 14, windows of 4 bite
    bank = stacked.RowWeights(models[0])
    bank.add([m for m, _ in rows])
    width = max(map(len, texts))
    ids = torch.tensor([[0] * (width - len(t)) + t for t in texts])
    mask = torch.tensor([[0] * (width - len(t)) + [1] * len(t) for t in texts])
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    cache = stacked.KVCache(2)
    logits = stacked.forward(bank.weights(), ids, positions, mask, cache)
    for row, ((model, _), t) in enumerate(zip(rows, texts)):
        assert torch.allclose(logits[row], own_logits(model, t), atol=1e-5), f"prompt of row {row}"
    for step in range(6):  # then one token at a time, with the cache
        new = [(7 * row + 3 * step) % len(tok) for row in range(len(rows))]
        texts = [t + [n] for t, n in zip(texts, new)]
        mask = torch.cat([mask, torch.ones(len(rows), 1, dtype=torch.long)], dim=1)
        positions = positions[:, -1:] + 1
        logits = stacked.forward(bank.weights(), torch.tensor(new)[:, None], positions, mask, cache)
        for row, ((model, _), t) in enumerate(zip(rows, texts)):
            assert torch.allclose(logits[row], own_logits(model, t), atol=1e-5), f"row {row}, step {step}"


def test_texts_of_many_models_in_one_batch_write_what_each_writes_alone(demo):
    model, tok = demo
    copies = [load_model(DEMO, "cpu")[0] for _ in range(3)]
    for n, m in enumerate(copies):  # three students' runs: same shape, other weights
        with torch.no_grad():
            for p in m.parameters():
                p.add_(torch.randn(p.shape, generator=torch.Generator().manual_seed(n)) * 0.02)
    owners = [copies[i % 3] if i % 4 else model for i in range(8)]
    gens = [Generation(owners[i], tok, PROMPTS[i % 4], settings(i)) for i in range(8)]
    passes = list(decode_together(gens))
    for i, gen in enumerate(gens):
        assert [st.token_id for st in gen.steps] == alone(owners[i], tok, PROMPTS[i % 4], settings(i)), f"text {i}"
    assert len(passes) == max(len(g.steps) for g in gens)  # one pass per step for all four models


def test_rows_joining_and_leaving_keep_their_own_weights(demo):
    _, tok = demo
    models = [neo(len(tok), seed, local=True) for seed in range(4)]
    batch = StackedBatch(models[0])
    first = [Generation(models[i], tok, PROMPTS[i], settings(i, max_new_tokens=(3, 20, 6)[i])) for i in range(3)]
    later = [Generation(models[3 - i], tok, PROMPTS[i], settings(3 + i, max_new_tokens=12)) for i in range(2)]
    batch.step(first)
    batch.step()
    batch.step(later)  # two more models' texts join at step 3, with other prompt lengths
    while batch.gens:
        for row, gen in enumerate(batch.gens):  # each slot holds the weights of its row's model
            assert batch.bank.models[row] is gen.model
            if batch.bank.buffers is not None:
                assert torch.equal(batch.bank.buffers[4][row], stacked._flat(gen.model)[4])  # q, k, v
        batch.step()
    for gen in first + later:
        assert [st.token_id for st in gen.steps] == alone(gen.model, tok, gen.prompt, gen.settings)
    assert [len(g.steps) for g in first] == [3, 20, 6]


def test_shared_decoder_stacks_students_models_and_keeps_other_kinds_apart(demo):
    model, tok = demo
    gpt2 = GPT2LMHeadModel(GPT2Config(vocab_size=len(tok), n_positions=64, n_embd=32, n_layer=2, n_head=2,
                                      eos_token_id=tok.eos_token_id, bos_token_id=tok.eos_token_id)).eval()
    students = [load_model(DEMO, "cpu") for _ in range(6)] + [(gpt2, tok)]
    decoder, got, errors = SharedDecoder(idle_s=0.5), {}, []

    def student(i: int) -> None:
        try:
            m, t = students[i]
            got[i] = [st.token_id for st in decoder.submit(Generation(m, t, PROMPTS[i % 4], settings(i)))]
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=student, args=(i,)) for i in range(len(students))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors
    assert got == {i: alone(*students[i], PROMPTS[i % 4], settings(i)) for i in range(len(students))}
    assert stacked.stack_key(gpt2) is None and type(batching.new_batch(gpt2)) is batching.Batch
    assert stacked.stack_key(students[0][0]) == stacked.stack_key(students[1][0]) != stacked.stack_key(neo(len(tok), 0))


def test_each_row_names_tokens_with_its_own_tokenizer(demo):
    from lab.tokenizer import train_tokenizer

    model, tok = demo
    chars = train_tokenizer(PROMPTS * 3, kind="char")  # another student's tokenizer: other ids for other text
    other = load_model(DEMO, "cpu")[0]
    s = settings(1, max_new_tokens=6)
    gens = [Generation(model, tok, PROMPTS[0], s, keep_top=5), Generation(other, chars, PROMPTS[0], s, keep_top=5)]
    list(decode_together(gens))
    for gen in gens:
        want = Generation(gen.model, gen.tokenizer, PROMPTS[0], s, keep_top=5).run()
        assert [st.top["token"] for st in gen.steps] == [st.top["token"] for st in want.steps]


def test_a_weight_changed_in_place_is_used_at_the_next_stacking(demo):
    _, tok = demo
    a, b = neo(len(tok), 0), neo(len(tok), 1)
    before = stacked._flat(a)[4].clone()  # q, k and v of the first block
    with torch.no_grad():
        a.transformer.h[0].attn.attention.q_proj.weight.mul_(2)
    assert not torch.equal(stacked._flat(a)[4], before)
    bank = stacked.RowWeights(a)
    bank.add([a, b])
    assert torch.equal(bank.buffers[4][0], stacked._flat(a)[4])
