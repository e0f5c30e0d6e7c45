"""lab.inspect, lab.heads, lab.neurons against computations done by hand from the weights."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from transformers import GPT2Config, GPT2LMHeadModel

from lab import ablation, heads, hooks, inspect as lens, logit_lens, neurons
from lab.bertviz_offline import offline_html
from lab.models import ModelShape, build_model
from lab.runs import checkpoint_name, trained_length
from lab.stories import generate_stories
from inspect_fixtures import TEXT, neo, tok  # noqa: F401 (fixtures)


def hand_forward(model, ids, ablate=None):
    """GPT-Neo by hand: (patterns [L, H, S, S], neurons per layer, logits). GPT-Neo does NOT scale the
    scores by 1/sqrt(d_head); local layers see only the last ``window`` keys. ``ablate`` = (layer, head)."""
    cfg, tr = model.config, model.transformer
    heads_n, d_head = cfg.num_heads, cfg.hidden_size // cfg.num_heads
    s = ids.shape[0]
    x = tr.wte.weight[ids] + tr.wpe.weight[torch.arange(s)]
    query, key = torch.arange(s)[:, None], torch.arange(s)[None, :]
    patterns, posts = [], []
    for layer, block in enumerate(tr.h):
        att = block.attn.attention
        h = F.layer_norm(x, (cfg.hidden_size,), block.ln_1.weight, block.ln_1.bias, cfg.layer_norm_epsilon)
        split = lambda t: t.view(s, heads_n, d_head).transpose(0, 1)
        q, k, v = split(h @ att.q_proj.weight.T), split(h @ att.k_proj.weight.T), split(h @ att.v_proj.weight.T)
        allowed = key <= query
        if cfg.attention_layers[layer] == "local":
            allowed &= query - key < cfg.window_size
        scores = (q @ k.transpose(1, 2)).masked_fill(~allowed, float("-inf"))
        pattern = scores.softmax(-1)
        patterns.append(pattern)
        z = pattern @ v  # [H, S, d_head]
        if ablate and ablate[0] == layer:
            z[ablate[1]] = 0
        x = x + z.transpose(0, 1).reshape(s, -1) @ att.out_proj.weight.T + att.out_proj.bias
        h = F.layer_norm(x, (cfg.hidden_size,), block.ln_2.weight, block.ln_2.bias, cfg.layer_norm_epsilon)
        post = F.gelu(h @ block.mlp.c_fc.weight.T + block.mlp.c_fc.bias, approximate="tanh")
        posts.append(post)
        x = x + post @ block.mlp.c_proj.weight.T + block.mlp.c_proj.bias
    x = F.layer_norm(x, (cfg.hidden_size,), tr.ln_f.weight, tr.ln_f.bias, cfg.layer_norm_epsilon)
    return torch.stack(patterns), posts, x @ model.lm_head.weight.T


@torch.no_grad()
def test_attention_patterns_equal_hand_computation_with_causal_and_local_masks(neo, tok):
    pattern = lens.attention_patterns(neo, tok, TEXT)
    ids = lens.encode(tok, TEXT).ids[0]
    expected, _, _ = hand_forward(neo, ids)
    assert pattern.shape == (2, 4, len(ids), len(ids))
    torch.testing.assert_close(pattern, expected, atol=1e-5, rtol=1e-4)
    assert torch.allclose(pattern.sum(-1), torch.ones(2, 4, len(ids)), atol=1e-5)
    assert pattern.triu(1).abs().max() == 0  # causal
    assert pattern[1].tril(-3).abs().max() == 0  # layer 1 is local: window 3
    assert pattern[0].tril(-3).abs().max() > 0.01  # layer 0 is global and uses it
    assert pattern.max() > 0.9  # peaked, so a missing mask or scale would show


@torch.no_grad()
def test_mlp_activations_equal_a_hook_on_c_proj_input_texts_in_order(neo, tok):
    texts = ["Tom ran to the park.", TEXT, "Lucy ate a banana."]
    acts = lens.mlp_activations(neo, tok, texts, layer=1)
    seen = []
    handle = neo.transformer.h[1].mlp.c_proj.register_forward_hook(lambda m, args, out: seen.append(args[0][0]))
    for t in texts:
        neo(**tok(t, return_tensors="pt"))
    handle.remove()
    np.testing.assert_allclose(acts.values, torch.cat(seen).numpy(), atol=1e-6)
    tokens, values = acts  # unpacks as (tokens, values)
    assert values.shape == (sum(len(tok(t)["input_ids"]) for t in texts), 64)
    assert list(tokens["text"].unique()) == [0, 1, 2]
    assert "".join(tokens[tokens["text"] == 1]["token"]) == TEXT
    with pytest.raises(ValueError, match="Layer 5"):
        lens.mlp_activations(neo, tok, texts, layer=5)


def test_the_neuron_scan_runs_fused_and_leaves_the_model_on_eager_attention(neo, tok):
    from transformers.activations import NewGELUActivation

    from lab.attention import attention_kind

    kinds = []
    handle = neo.transformer.h[0].attn.attention.register_forward_pre_hook(lambda m, a: kinds.append(attention_kind(neo)))
    try:
        lens.mlp_activations(neo, tok, [TEXT], layer=1)
    finally:
        handle.remove()
    assert kinds == ["sdpa"]  # the scan needs no attention weights
    assert attention_kind(neo) == "eager" and type(neo.transformer.h[1].mlp.act) is NewGELUActivation
    assert lens.patterns_for_ids(neo, tok(TEXT, return_tensors="pt")["input_ids"]).shape[0] == 2  # weights again


def test_top_rows_equal_a_stable_sort_ties_included():
    rng = np.random.default_rng(0)
    values = rng.standard_normal((200, 9)).astype(np.float32)
    values[:, 0] = 0.0  # a dead neuron: every row ties
    values[::3, 1] = 2.0  # many rows tie at the top
    values[5:9, 2] = values[:, 2].max() + 1  # four rows tie above the rest
    for k in (1, 3, 5, 300):
        np.testing.assert_array_equal(neurons.top_rows(values, k), np.argsort(-values, axis=0, kind="stable")[:k])


@torch.no_grad()
def test_the_neuron_scan_stops_at_its_layer(neo, tok):
    """Later layers and the unembedding (the bulk of the work over a large vocabulary) do not run."""
    ran = []
    handles = [neo.transformer.h[1].register_forward_hook(lambda *a: ran.append("block 1")),
               neo.lm_head.register_forward_hook(lambda *a: ran.append("lm_head"))]
    try:
        lens.mlp_activations(neo, tok, [TEXT, "Tom ran."], layer=0)
        assert ran == []
        neo(**tok(TEXT, return_tensors="pt"))  # the model itself is left whole
        assert ran == ["block 1", "lm_head"]
    finally:
        for h in handles:
            h.remove()


def tiny_gpt2(vocab: int) -> GPT2LMHeadModel:
    torch.manual_seed(0)
    return GPT2LMHeadModel(GPT2Config(vocab_size=vocab, n_positions=128, n_embd=32, n_layer=2, n_head=4,
                                      bos_token_id=0, eos_token_id=0)).eval()


@torch.no_grad()
def test_sdpa_gpt2_gives_real_weights_and_keeps_its_implementation(tok):
    model = tiny_gpt2(len(tok))
    assert model.config._attn_implementation == "sdpa"  # transformers' default: returns no weights
    assert not model(**tok(TEXT, return_tensors="pt"), output_attentions=True).attentions  # why we switch
    pattern = lens.attention_patterns(model, tok, TEXT)
    assert model.config._attn_implementation == "sdpa"  # restored
    eager = tiny_gpt2(len(tok))
    eager.set_attn_implementation("eager")
    expected = torch.cat(eager(**tok(TEXT, return_tensors="pt"), output_attentions=True).attentions)
    torch.testing.assert_close(pattern, expected)
    assert pattern.triu(1).abs().max() == 0


@torch.no_grad()
def test_gpt_neo_on_the_lab_sdpa_path_gives_the_same_weights_and_stays_sdpa(neo, tok):
    attention = pytest.importorskip("lab.attention")
    expected = lens.attention_patterns(neo, tok, TEXT)
    attention.use_attention(neo, "sdpa")
    try:
        torch.testing.assert_close(lens.attention_patterns(neo, tok, TEXT), expected)
        assert attention.attention_kind(neo) == "sdpa"
    finally:
        attention.use_attention(neo, "eager")


@torch.no_grad()
def test_a_model_that_returns_no_weights_raises_instead_of_an_empty_result(tok, monkeypatch):
    model = tiny_gpt2(len(tok))
    monkeypatch.setattr(model, "set_attn_implementation", lambda impl: None)  # a switch that does nothing
    with pytest.raises(RuntimeError, match="no attention weights"):
        lens.attention_patterns(model, tok, TEXT)


@torch.no_grad()
def test_gpt2_neurons_ablation_and_logit_lens_work(tok):
    model = tiny_gpt2(len(tok))
    acts = lens.mlp_activations(model, tok, [TEXT], 0)
    assert acts.values.shape[1] == 128  # GPT-2's default 4 * n_embd
    result = ablation.ablation(model, tok, TEXT, ablation.Unit("neuron", 1, 5))
    assert np.isfinite(result.loss_after) and result.kl >= 0
    assert len(logit_lens.logit_lens_table(model, tok, TEXT)) == 2 * len(acts.tokens)


@torch.no_grad()
def test_neuron_ablation_removes_exactly_that_neurons_output_column(neo, tok):
    ids = lens.encode(tok, TEXT).ids
    _, cache = hooks.run_with_cache(neo, ids, names_filter=["blocks.1.mlp.hook_post", "blocks.1.hook_resid_post"])
    # by hand: zeroing neuron 7 of layer 1 removes its output column's contribution from the residual stream
    c_proj = neo.transformer.h[1].mlp.c_proj.weight
    resid = cache["blocks.1.hook_resid_post"] - cache["blocks.1.mlp.hook_post"][..., 7:8] * c_proj[:, 7]
    expected = neo.lm_head(neo.transformer.ln_f(resid))
    logits = hooks.run_with_hooks(neo, ids, [ablation.ablation_hook(neo, ablation.Unit("neuron", 1, 7))])
    torch.testing.assert_close(logits, expected, atol=1e-4, rtol=1e-4)


@torch.no_grad()
def test_logit_lens_last_layer_is_the_model_output_earlier_layers_go_through_final_norm(neo, tok):
    table = logit_lens.logit_lens_table(neo, tok, TEXT)
    enc = lens.encode(tok, TEXT)
    ids = enc.ids[0]
    out = neo(enc.ids, output_hidden_states=True)
    final = out.logits[0].log_softmax(-1)
    early = neo.lm_head(neo.transformer.ln_f(out.hidden_states[1][0])).log_softmax(-1)
    for layer, logp in ((1, final), (0, early)):
        rows = table[table["layer"] == layer].iloc[:-1]
        np.testing.assert_allclose(rows["log p(next)"], logp[torch.arange(len(ids) - 1), ids[1:]].numpy(), atol=1e-4)
    last = table[table["layer"] == 1]
    assert list(last["top prediction"]) == [tok.decode([int(t)]) for t in final.argmax(-1)]


def test_head_stats_find_a_previous_token_head(tok):
    """Layer 1 is local with window 2 and no query/key weights: every query splits 50/50 between itself and
    the previous token, a purely positional pattern."""
    model = build_model(ModelShape(n_layer=2, d_model=32, n_head=4, d_mlp=64, context=128, window=2), len(tok), seed=1).eval()
    with torch.no_grad():
        model.transformer.h[1].attn.attention.q_proj.weight.zero_()
    table = heads.head_stats(model, tok, generate_stories(6, 3))
    layer1 = table[table["layer"] == 1]
    assert len(table) == 8 and set(table["kind"]) <= set(heads.KINDS)
    np.testing.assert_allclose(layer1["prev_share"], 0.5, atol=1e-5)
    np.testing.assert_allclose(layer1["mean_distance"], 0.5, atol=1e-5)
    assert (layer1["r2_position"] > 0.99).all() and (layer1["r2_token"] < 0.5).all()
    assert (layer1["kind"] == "positional").all()


def test_head_kinds_follow_the_documented_rule():
    row = {"first_share": 0.1, "relative_entropy": 0.5, "r2_position": 0.8, "r2_token": 0.9}
    assert heads.classify(row) == "positional"  # position explains most: positional, whatever the key fit
    assert heads.classify({**row, "r2_position": 0.2}) == "semantic"
    assert heads.classify({**row, "r2_position": 0.3}) == "mixed"
    assert heads.classify({**row, "first_share": 0.7}) == "first-token"
    # Close to uniform: diffuse, decided before positional vs semantic.
    assert heads.classify({**row, "relative_entropy": 0.9, "r2_position": 0.0}) == "diffuse"
    assert heads.classify({**row, "relative_entropy": heads.DIFFUSE_ENTROPY}) == "diffuse"


def test_uniform_attention_makes_every_head_diffuse(tok):
    """With query and key weights zeroed every score is 0, so each query attends uniformly to all the tokens it
    can see (the window is wider than the texts): relative entropy 1, every head diffuse."""
    model = build_model(ModelShape(n_layer=2, d_model=32, n_head=4, d_mlp=64, context=128, window=128),
                        len(tok), seed=1).eval()
    with torch.no_grad():
        for block in model.transformer.h:
            block.attn.attention.q_proj.weight.zero_()
            block.attn.attention.k_proj.weight.zero_()
    table = heads.head_stats(model, tok, generate_stories(6, 3))
    np.testing.assert_allclose(table["relative_entropy"], 1.0, atol=1e-4)
    assert (table["kind"] == "diffuse").all()


def test_group_fit_prefers_the_factor_that_decides_the_weights():
    rng = np.random.default_rng(0)
    by_offset, by_token = heads._GroupFit(1, 50), heads._GroupFit(1, 20)
    token_value = rng.random(20)
    for fold in (0, 1, 0, 1):
        offsets, tokens = rng.integers(0, 50, 500), rng.integers(0, 20, 500)
        w = token_value[tokens][None]  # depends on the key token only
        by_offset.add(fold, offsets, w)
        by_token.add(fold, tokens, w)
    assert by_token.held_out_r2()[0] > 0.99 and by_offset.held_out_r2()[0] < 0.2


def synthetic_activations(tok):
    texts = ["Lucy saw Tom. She ran to the park.", "Tom ate a banana and he was happy."]
    acts = lens.Activations(*_tokens(tok, texts), texts=texts, layer=0)
    return acts


def _tokens(tok, texts):
    import pandas as pd

    rows = []
    for n, t in enumerate(texts):
        enc = lens.encode(tok, t)
        rows += [(n, p, w, a, b) for p, (w, (a, b)) in enumerate(zip(enc.tokens, enc.offsets))]
    frame = pd.DataFrame(rows, columns=["text", "position", "token", "start", "end"])
    return frame, np.zeros((len(frame), 3), dtype=np.float32)


def test_word_classes_selectivity_and_top_tokens(tok):
    acts = synthetic_activations(tok)
    classes = neurons.token_classes(acts)
    by_token = dict(zip(acts.tokens["token"].str.strip(), classes))
    assert by_token.get("Tom") == "name" or by_token.get("T") == "name"
    names = classes == "name"
    acts.values[names, 1] = 3.0  # neuron 1: a names neuron
    acts.values[:, 2] = np.arange(len(classes))  # neuron 2: fires more and more along the texts
    selectivity = neurons.word_class_selectivity(acts)
    assert selectivity[1].idxmax() == "name" and selectivity.loc["name", 1] > 1
    top = neurons.top_activating(acts, 1, k=3)
    assert set(classes[[acts.tokens.index[(acts.tokens["text"] == r.text) & (acts.tokens["position"] == r.position)][0] for r in top.itertuples()]]) == {"name"}
    assert (np.diff(neurons.top_activating(acts, 2, k=5)["activation"]) <= 0).all()
    table = neurons.neuron_table(acts)
    assert list(table["neuron"][:1]) == [2]  # the most active neuron first
    assert "n1" in neurons.activations_csv(acts).splitlines()[0]


def test_neuron_across_checkpoints(tok, tmp_path):
    for step in (10, 20):
        model = build_model("micro", len(tok), seed=step)
        model.save_pretrained(tmp_path / checkpoint_name(step))
        tok.save_pretrained(tmp_path / checkpoint_name(step))
    from lab.runs import list_checkpoints

    table = neurons.neuron_across_checkpoints(list_checkpoints(tmp_path), [TEXT, "Tom ran."], layer=1, neuron=3)
    assert list(table["step"]) == [10, 20]
    assert table["max"].iloc[0] != table["max"].iloc[1]  # different weights, different neuron


def test_bertviz_page_is_self_contained(neo, tok):
    pattern = lens.attention_patterns(neo, tok, TEXT)
    tokens = lens.encode(tok, TEXT).tokens
    for view in ("head", "model"):
        html = offline_html(view, pattern, tokens)
        bertviz_part = html.split("return window.jQuery; });")[1]  # after the inlined libraries
        assert "cdnjs" not in html and "<script src" not in html and "require.config(" not in bertviz_part
        assert "window.d3" in html and "requirejs(['jquery', 'd3']" in html.replace('"', "'")


def test_cli_inspect_writes_the_tables(neo, tok, tmp_path, capsys):
    from lab.cli import main

    neo.save_pretrained(tmp_path / "model")
    tok.save_pretrained(tmp_path / "model")
    assert main(["inspect", str(tmp_path / "model"), "--stories", "4", "--out", str(tmp_path / "out")]) == 0
    heads_csv = (tmp_path / "out" / "heads.csv").read_text().splitlines()
    assert len(heads_csv) == 1 + 8 and "r2_position" in heads_csv[0]
    assert (tmp_path / "out" / "selectivity.csv").exists() and (tmp_path / "out" / "neurons.csv").exists()
    assert "L1H3" in capsys.readouterr().out  # the table is printed


def test_cli_inspect_on_a_corpus_file_or_saved_data_set(neo, tok, tmp_path, capsys):
    import json

    from lab.cli import main
    from lab.corpus import save_dataset

    neo.save_pretrained(tmp_path / "model")
    tok.save_pretrained(tmp_path / "model")
    stories = generate_stories(6, 9)
    (tmp_path / "stories.jsonl").write_text("\n".join(json.dumps({"text": s}) for s in stories))
    args = ["inspect", str(tmp_path / "model"), "--stories", "5", "--out", str(tmp_path / "out")]
    assert main(args + ["--corpus", str(tmp_path / "stories.jsonl")]) == 0
    out = capsys.readouterr().out
    assert "jsonl, 'text' column; 5 stories, 1 more left out by the limit" in out
    assert "100% of the words of the 5 stories classed" in out and "relative_entropy" in out
    save_dataset(tmp_path / "saved", stories[:3])
    assert main(args + ["--corpus", str(tmp_path / "saved")]) == 0
    assert "saved data set; 3 stories" in capsys.readouterr().out
    # Bad corpora: one sentence on stderr, exit 2, nothing written.
    (tmp_path / "bad.json").write_text(json.dumps([{"title": "x"}]))
    for bad in ("bad.json", "missing.txt"):
        assert main(["inspect", str(tmp_path / "model"), "--corpus", str(tmp_path / bad),
                     "--out", str(tmp_path / "bad-out")]) == 2
        assert capsys.readouterr().err.splitlines()[-1].startswith("error: ")
    assert not (tmp_path / "bad-out").exists()


def test_cli_inspect_on_the_shared_real_sample(neo, tok, tmp_path, capsys):
    from pathlib import Path

    from lab.cli import main

    sample = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "tinystories-valid-head.txt"
    if not sample.exists():
        pytest.skip(f"the shared TinyStories sample is absent ({sample}); a clone of the lab alone has no ../shared")
    neo.save_pretrained(tmp_path / "model")
    tok.save_pretrained(tmp_path / "model")
    assert main(["inspect", str(tmp_path / "model"), "--corpus", str(sample), "--stories", "4"]) == 0
    out = capsys.readouterr().out
    assert "txt, <|endoftext|> between stories; 4 stories, 1 fragment dropped, 1,202 more left out by the limit" in out


def test_runs_trained_on_short_windows_are_read_only_that_far(neo, tok, tmp_path):
    import json

    run = tmp_path / "run"
    (run / "step-000010").mkdir(parents=True)
    (run / "config.json").write_text(json.dumps({"seq_len": 8}))
    assert trained_length(run / "step-000010") == 8
    assert trained_length(tmp_path / "elsewhere" / "model") is None
    acts = lens.mlp_activations(neo, tok, [TEXT, TEXT], 0, max_tokens=8)
    assert len(acts.tokens) == 16 and acts.tokens["position"].max() == 7
    assert lens.attention_patterns(neo, tok, TEXT, max_tokens=8).shape[-1] == 8
