"""The next-token loss of a causal LM computed from hidden states, without materialising the logits.

transformers' loss computes logits for every position (batch x seq x vocab floats), their log-softmax (another
such tensor), and in backward a zero-filled gradient and the log-softmax backward (two more): with a vocabulary
of thousands that memory traffic is most of a small model's training step on a CPU. `next_token_loss` walks the
positions in chunks whose logits stay in the CPU's cache and computes, in the forward pass, the loss and the
gradients of the hidden states and of the output matrix; backward only scales them. (Liger-Kernel's fused linear
cross-entropy does this on CUDA with Triton; nothing well-kept does it on CPUs, hence these few lines.)

Same value as ``F.cross_entropy(logits[:, :-1], labels[:, 1:], ignore_index=-100)`` (mean over predicted
tokens) and the same gradients, within float rounding (tests/test_lm_loss.py). `training_loss` is the one place
the training loop gets its loss from: this path where it applies, the model's own loss elsewhere.
"""

from __future__ import annotations

import torch
from transformers import GPTNeoForCausalLM

IGNORE = -100  # the label of positions that are not predicted (prompt, padding), as in transformers
CHUNK_ELEMENTS = 1 << 17  # logits per chunk: 512 KB of fp32, in one core's L2 cache (1.0-1.15x faster than 2 MB)
MIN_CHUNK_ROWS = 128  # but at least this many positions, so the products stay wide enough for the BLAS (a vocabulary
# of 8,192 would give 16 rows: 0.6-0.8x of a plain loss at d_model 128-256)


class _ChunkedLinearCrossEntropy(torch.autograd.Function):
    @staticmethod
    def forward(ctx, hidden, weight, targets, chunk_rows: int):
        rows = (targets != IGNORE).nonzero().squeeze(1)
        h, t = hidden.index_select(0, rows), targets.index_select(0, rows)  # only the predicted positions
        n = max(len(rows), 1)
        grad_h, grad_w = torch.empty_like(h), torch.zeros_like(weight)
        total = hidden.new_zeros(())
        for start in range(0, len(rows), chunk_rows):
            hc, tc = h[start : start + chunk_rows], t[start : start + chunk_rows, None]
            logp = torch.log_softmax(hc @ weight.t(), dim=1)  # (chunk, vocab); one exp fewer than logsumexp, then
            total -= logp.gather(1, tc).sum()  # subtracting it: 1.05-1.2x faster for the loss alone
            probs = logp.exp_()  # softmax, in place
            probs.scatter_add_(1, tc, torch.full_like(tc, -1, dtype=probs.dtype))  # d loss / d logits
            torch.mm(probs, weight, out=grad_h[start : start + chunk_rows])
            grad_w.addmm_(probs.t(), hc)
        ctx.save_for_backward(rows, grad_h.div_(n), grad_w.div_(n))
        ctx.hidden_shape = hidden.shape
        return total / n

    @staticmethod
    def backward(ctx, grad_out):
        rows, grad_h, grad_w = ctx.saved_tensors
        grad_hidden = grad_h.new_zeros(ctx.hidden_shape).index_copy_(0, rows, grad_h * grad_out)
        return grad_hidden, grad_w * grad_out, None, None


def linear_cross_entropy(hidden: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor,
                         chunk_elements: int = CHUNK_ELEMENTS, min_rows: int = MIN_CHUNK_ROWS) -> torch.Tensor:
    """Mean cross-entropy of ``hidden @ weight.T`` ((n, d) @ (d, vocab)) against ``targets`` ((n,), ``IGNORE`` = skip).

    No predicted token at all gives 0 (not NaN).
    """
    chunk_rows = max(min_rows, chunk_elements // weight.shape[0])
    if torch.is_grad_enabled() and (hidden.requires_grad or weight.requires_grad):
        return _ChunkedLinearCrossEntropy.apply(hidden, weight, targets, chunk_rows)
    rows = (targets != IGNORE).nonzero().squeeze(1)  # no gradient wanted: the loss alone, chunk by chunk
    h, t = hidden.index_select(0, rows), targets.index_select(0, rows)
    total = hidden.new_zeros(())
    for start in range(0, len(rows), chunk_rows):
        logp = torch.log_softmax(h[start : start + chunk_rows] @ weight.t(), dim=1)
        total -= logp.gather(1, t[start : start + chunk_rows, None]).sum()
    return total / max(len(rows), 1)


def next_token_loss(hidden: torch.Tensor, weight: torch.Tensor, labels: torch.Tensor,
                    chunk_elements: int = CHUNK_ELEMENTS, min_rows: int = MIN_CHUNK_ROWS) -> torch.Tensor:
    """Mean cross-entropy of predicting ``labels[:, t + 1]`` from ``hidden[:, t] @ weight.T``, as transformers'
    causal-LM loss: hidden (batch, seq, d_model), weight (vocab, d_model), labels (batch, seq), ``IGNORE`` where
    nothing is predicted."""
    targets = torch.nn.functional.pad(labels[:, 1:], (0, 1), value=IGNORE)  # position t predicts label t + 1
    return linear_cross_entropy(hidden.flatten(0, 1), weight, targets.flatten(), chunk_elements, min_rows)


def mask_is_causal(mask: torch.Tensor, labels: torch.Tensor) -> bool:
    """Whether a (batch, seq) attention mask adds nothing to causal attention for this loss: every row is ones,
    then zeros (right padding), and no padded position predicts a label. A real token sees only tokens before
    it, all real, so the loss and its gradients are the same without the mask, and the unmasked path is the
    fast one (`lab.small_attention`)."""
    return bool(mask.dim() == 2 and (mask[:, 0] == 1).all() and (mask[:, 1:] <= mask[:, :-1]).all()
                and (labels[:, 1:][mask[:, :-1] == 0] == IGNORE).all())


def training_loss(model, batch: dict) -> torch.Tensor:
    """The mean next-token loss of a training batch (``input_ids``, ``labels``, maybe ``attention_mask``).

    A plain GPT-Neo on a CPU without autocast: `next_token_loss` from its hidden states (0.95-2.1x the speed of
    the plain loss alone, README; a model whose blocks `lab.compiled` compiled in place still is one). Anything
    else — a DDP wrapper (it must be called itself), a GPU, another architecture — computes the model's own loss.
    A right-padded batch's mask is dropped there (`mask_is_causal`). Never with a KV cache, which transformers
    builds on every forward pass unless told not to.
    """
    if (isinstance(model, GPTNeoForCausalLM) and model.lm_head.weight.device.type == "cpu"
            and not torch.is_autocast_enabled("cpu")):
        mask = batch.get("attention_mask")
        if mask is not None and mask_is_causal(mask, batch["labels"]):
            mask = None
        hidden = model.transformer(input_ids=batch["input_ids"], attention_mask=mask, use_cache=False)[0]
        return next_token_loss(hidden, model.lm_head.weight, batch["labels"])
    return model(**batch, use_cache=False).loss
