"""Tiny GPT-Neo and GPT-2 models with random weights, and every TransformerLens hook computed by hand from their
weights: the oracle of tests/test_hooks.py, test_ablation.py and test_patching.py."""

import pytest
import torch
import torch.nn.functional as F
from transformers import GPT2Config, GPT2LMHeadModel

from lab.models import ModelShape, build_model
from lab.stories import generate_stories
from lab.tokenizer import train_tokenizer

TEXT = "One day, Lucy asked Tom: do you want a banana? Tom said yes and they went to the park."


def peaked(model):
    """Larger query/key weights, so attention is peaked and a wrong mask or scale shows."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith(("q_proj.weight", "k_proj.weight", "c_attn.weight")):
                p.normal_(0, 0.5)
    return model.eval()


def tiny_neo(vocab: int):
    """Two layers, the second local with window 3."""
    shape = ModelShape(n_layer=2, d_model=32, n_head=4, d_mlp=64, context=128, attention="alternating", window=3)
    return peaked(build_model(shape, vocab, seed=0))


def tiny_gpt2(vocab: int):
    """Two layers; scores scaled by 1/sqrt(d_head) and, in the second layer, by 1/2 more."""
    torch.manual_seed(1)
    config = GPT2Config(vocab_size=vocab, n_positions=128, n_embd=32, n_layer=2, n_head=4, n_inner=64,
                        scale_attn_by_inverse_layer_idx=True, attn_implementation="eager")
    return peaked(GPT2LMHeadModel(config))


@pytest.fixture(scope="module")
def tok():
    return train_tokenizer(generate_stories(40, 0) + [TEXT], "bpe", 400)


@pytest.fixture(scope="module")
def neo(tok):
    return tiny_neo(len(tok))


@pytest.fixture(scope="module")
def gpt2(tok):
    return tiny_gpt2(len(tok))


@pytest.fixture(params=["neo", "gpt2"])
def model(request):
    return request.getfixturevalue(request.param)


def hand_cache(model, ids, edits=None):
    """Every hook name computed by hand from the weights: GPT-Neo does not scale scores, GPT-2 scales by
    1/sqrt(d_head) (and 1/(layer+1) here); GPT-Neo's local layers see the last ``window_size`` keys.
    ``edits``: {name: fn(tensor) -> tensor} applied where that activation is made."""
    edits = edits or {}
    cfg, tr = model.config, model.transformer
    d, heads = cfg.hidden_size, cfg.num_attention_heads
    d_head = d // heads
    neo = cfg.model_type == "gpt_neo"
    s = ids.shape[1]
    out = {}

    def put(name, x):
        x = edits[name](x.clone()) if name in edits else x
        out[name] = x
        return x

    def ln(x, module, name):
        centred = x - x.mean(-1, keepdim=True)
        scale = put(f"{name}.hook_scale", (centred.pow(2).mean(-1, keepdim=True) + module.eps).sqrt())
        return put(f"{name}.hook_normalized", centred / scale) * module.weight + module.bias

    linear = (lambda x, m: x @ m.weight.T + (0 if m.bias is None else m.bias)) if neo else (lambda x, m: x @ m.weight + m.bias)
    x = put("hook_embed", tr.wte.weight[ids]) + put("hook_pos_embed", tr.wpe.weight[torch.arange(s)].expand(ids.shape[0], s, d))
    query, key = torch.arange(s)[:, None], torch.arange(s)[None, :]
    for layer, block in enumerate(tr.h):
        b = f"blocks.{layer}"
        x = put(f"{b}.hook_resid_pre", x)
        h = ln(x, block.ln_1, f"{b}.ln1")
        if neo:
            att = block.attn.attention
            q, k, v = h @ att.q_proj.weight.T, h @ att.k_proj.weight.T, h @ att.v_proj.weight.T
            out_proj, scale = att.out_proj, 1.0
        else:
            att = block.attn
            q, k, v = (h @ att.c_attn.weight + att.c_attn.bias).split(d, -1)
            out_proj, scale = att.c_proj, 1 / (d_head ** 0.5 * (layer + 1))
        q, k, v = (put(f"{b}.attn.hook_{n}", t.view(*t.shape[:2], heads, d_head)) for n, t in zip("qkv", (q, k, v)))
        allowed = key <= query
        if neo and cfg.attention_layers[layer] == "local":
            allowed &= query - key < cfg.window_size
        scores = torch.stack([q[:, :, i] @ k[:, :, i].transpose(1, 2) for i in range(heads)], 1) * scale
        scores = put(f"{b}.attn.hook_attn_scores", scores.masked_fill(~allowed, float("-inf")))
        pattern = put(f"{b}.attn.hook_pattern", scores.softmax(-1))
        z = put(f"{b}.attn.hook_z", torch.stack([pattern[:, i] @ v[:, :, i] for i in range(heads)], 2))
        attn_out = put(f"{b}.hook_attn_out", linear(z.reshape(*z.shape[:2], d), out_proj))
        x = put(f"{b}.hook_resid_mid", x + attn_out)
        pre = put(f"{b}.mlp.hook_pre", linear(ln(x, block.ln_2, f"{b}.ln2"), block.mlp.c_fc))
        post = put(f"{b}.mlp.hook_post", F.gelu(pre, approximate="tanh"))
        x = put(f"{b}.hook_resid_post", x + put(f"{b}.hook_mlp_out", linear(post, block.mlp.c_proj)))
    return ln(x, tr.ln_f, "ln_final") @ model.lm_head.weight.T, out
