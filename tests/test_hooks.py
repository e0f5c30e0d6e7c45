"""lab.hooks: every TransformerLens hook name against a computation by hand from the weights, on a tiny GPT-Neo
(global + local layers) and a tiny GPT-2 (scaled scores), both with random weights built here."""

import threading

import pytest
import torch
import torch.nn.functional as F
from hooked_models import TEXT, gpt2, hand_cache, model, neo, tok  # noqa: F401 (fixtures)

from lab import hooks
from lab.models import model_lock


@torch.no_grad()
def test_every_hook_name_equals_the_hand_computation(model, tok):
    texts = [TEXT, "Tom and Lucy went to the park."]
    logits, cache = hooks.run_with_cache(model, texts, tok)
    ids = hooks.to_tokens(model, texts, tok)
    expected_logits, expected = hand_cache(model, ids)
    assert list(cache) == hooks.hook_names(model)
    assert set(cache) == set(expected)
    for name, value in expected.items():
        torch.testing.assert_close(cache[name], value, atol=2e-5, rtol=1e-4, msg=name)
    torch.testing.assert_close(logits, expected_logits, atol=2e-5, rtol=1e-4)
    # transformers' own forward gives the same logits, and the shapes are TransformerLens's
    torch.testing.assert_close(logits, model(ids).logits, atol=2e-5, rtol=1e-4)
    batch, s = ids.shape
    heads, d = model.config.num_attention_heads, model.config.hidden_size
    assert cache["blocks.1.attn.hook_pattern"].shape == (batch, heads, s, s)
    assert cache["blocks.0.attn.hook_z"].shape == (batch, s, heads, d // heads)
    assert cache["ln_final.hook_scale"].shape == (batch, s, 1)
    assert cache["hook_pos_embed"].shape == (batch, s, d)
    assert cache["blocks.0.attn.hook_attn_scores"][0, 0, 0, 1] == float("-inf")
    assert cache["pattern", 1] is cache["blocks.1.attn.hook_pattern"]
    assert cache.stack("post").shape == (2, batch, s, 4 * d // 2)


@torch.no_grad()
def test_the_local_layer_and_the_scale_bite(neo, gpt2, tok):
    pattern = hooks.run_with_cache(neo, TEXT, tok)[1]["blocks.1.attn.hook_pattern"][0]
    assert pattern.tril(-3).abs().max() == 0 and pattern.max() > 0.9  # GPT-Neo layer 1 is local, window 3
    # GPT-2's second layer divides scores by sqrt(d_head) * 2: q.k / scores is that constant
    _, cache = hooks.run_with_cache(gpt2, TEXT, tok)
    q, k, scores = cache["q", 1][0, :, 0], cache["k", 1][0, :, 0], cache["attn_scores", 1][0, 0]
    assert torch.allclose(q[3] @ k[2] / scores[3, 2], torch.tensor(8 ** 0.5 * 2), rtol=1e-4)


@torch.no_grad()
def test_text_ids_padding_and_bos(neo, tok):
    ids = hooks.to_tokens(neo, TEXT, tok)
    assert torch.equal(ids, torch.tensor([tok(TEXT)["input_ids"]]))
    for same in (ids[0], ids[0].tolist(), ids):
        assert torch.equal(hooks.to_tokens(neo, same), ids)
    with_bos = hooks.to_tokens(neo, TEXT, tok, prepend_bos=True)
    assert with_bos[0, 0] == tok.bos_token_id and torch.equal(with_bos[:, 1:], ids)
    short = "Tom said yes."
    padded = hooks.to_tokens(neo, [TEXT, short], tok)
    n = len(tok(short)["input_ids"])
    assert (padded[1, n:] == tok.pad_token_id).all()
    # a padded row's real tokens see what they see alone
    alone = hooks.run_with_hooks(neo, short, tokenizer=tok)
    torch.testing.assert_close(hooks.run_with_hooks(neo, padded)[1:, :n], alone, atol=1e-5, rtol=1e-4)
    for bad in ("", "   ", [], torch.zeros(2, 2, 2, dtype=torch.long), torch.tensor([[10**6]]), torch.ones(300, dtype=torch.long)):
        with pytest.raises(ValueError):
            hooks.to_tokens(neo, bad, tok)
    with pytest.raises(ValueError, match="tokenizer"):
        hooks.to_tokens(neo, TEXT)


@torch.no_grad()
def test_names_filter(neo, tok):
    assert list(hooks.run_with_cache(neo, TEXT, tok, names_filter="hook_embed")[1]) == ["hook_embed"]
    wanted = ["blocks.0.attn.hook_z", "ln_final.hook_scale"]
    assert list(hooks.run_with_cache(neo, TEXT, tok, names_filter=wanted)[1]) == wanted
    _, cache = hooks.run_with_cache(neo, TEXT, tok, names_filter=lambda n: n.endswith("hook_pattern"))
    assert list(cache) == ["blocks.0.attn.hook_pattern", "blocks.1.attn.hook_pattern"]
    with pytest.raises(KeyError):
        hooks.run_with_cache(neo, TEXT, tok, names_filter="blocks.0.attn.pattern")
    assert hooks.act_name("scale", 1, "ln2") == "blocks.1.ln2.hook_scale"
    assert hooks.act_name("scale") == "ln_final.hook_scale" and hooks.act_name("embed") == "hook_embed"


@torch.no_grad()
def test_hook_edits_change_everything_downstream(model, tok):
    """Editing the pattern, z or a LayerNorm scale reaches the logits exactly as the same edit by hand does."""
    ids = hooks.to_tokens(model, TEXT, tok)
    s = ids.shape[1]
    edits = {
        "blocks.0.attn.hook_pattern": lambda p: torch.eye(s).expand_as(p).clone(),  # every token attends to itself
        "blocks.1.attn.hook_z": lambda z: z.index_fill(2, torch.tensor([2]), 0.0),  # head 2 zeroed
        "blocks.1.ln2.hook_scale": lambda x: torch.ones_like(x) * 3.0,
    }
    logits = hooks.run_with_hooks(model, ids, fwd_hooks=[(n, lambda x, hook, f=f: f(x)) for n, f in edits.items()])
    expected, _ = hand_cache(model, ids, edits)
    torch.testing.assert_close(logits, expected, atol=2e-5, rtol=1e-4)
    assert not torch.allclose(logits, hooks.run_with_hooks(model, ids), atol=1e-3)
    loss = hooks.run_with_hooks(model, ids, return_type="loss")
    assert torch.isclose(loss, F.cross_entropy(model(ids).logits[0, :-1], ids[0, 1:]), atol=1e-5)
    # a name filter as the hook's name, and the Hook object's name and layer
    seen = []
    hooks.run_with_hooks(model, ids, fwd_hooks=[(lambda n: n.endswith("hook_resid_post"), lambda x, hook: seen.append((hook.name, hook.layer())))])
    assert seen == [("blocks.0.hook_resid_post", 0), ("blocks.1.hook_resid_post", 1)]
    with pytest.raises(ValueError, match="must return None or a tensor"):
        hooks.run_with_hooks(model, ids, fwd_hooks=[("hook_embed", lambda x, hook: x[:, :1])])


def test_run_with_hooks_leaves_nothing_behind_after_an_exception(neo, tok):
    before = hooks.run_with_hooks(neo, TEXT, tokenizer=tok)

    def broken(x, hook):
        x.mul_(0)  # it even edits in place before failing
        raise RuntimeError("a bug in the user's hook")

    with pytest.raises(RuntimeError, match="a bug"):
        hooks.run_with_hooks(neo, TEXT, fwd_hooks=[("blocks.0.hook_resid_mid", broken)], tokenizer=tok)
    assert all(not (m._forward_hooks or m._forward_pre_hooks) for m in neo.modules())
    torch.testing.assert_close(hooks.run_with_hooks(neo, TEXT, tokenizer=tok), before, atol=0, rtol=0)
    got = []
    other = threading.Thread(target=lambda: got.append(model_lock(neo).acquire(timeout=5) and model_lock(neo).release()))
    other.start(), other.join()
    assert got == [None]  # the lock was released: another session's pass can run


def test_a_pass_holds_the_model_lock(neo, tok):
    """While one session's hooked pass runs, another session's pass waits for it (it never sees the hooks)."""
    inside, release, order = threading.Event(), threading.Event(), []

    def slow(x, hook):
        inside.set()
        release.wait(5)
        order.append("hooked pass")

    first = threading.Thread(target=lambda: hooks.run_with_hooks(neo, TEXT, [("hook_embed", slow)], tokenizer=tok))
    first.start()
    inside.wait(5)
    second = threading.Thread(target=lambda: (hooks.run_with_hooks(neo, TEXT, tokenizer=tok), order.append("other pass")))
    second.start()
    second.join(0.3)
    assert second.is_alive()
    release.set()
    first.join(), second.join()
    assert order == ["hooked pass", "other pass"]


def test_other_architectures_get_a_clear_error(tok):
    from transformers import LlamaConfig, LlamaForCausalLM

    llama = LlamaForCausalLM(LlamaConfig(vocab_size=len(tok), hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                                         num_attention_heads=2, num_key_value_heads=2))
    with pytest.raises(ValueError, match="GPT-Neo and GPT-2"):
        hooks.run_with_cache(llama, [[1, 2, 3]])
