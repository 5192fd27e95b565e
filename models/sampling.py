"""Autoregressive sampling shared by the models: one new token at a time from the last position's logits,
and `generate_stream`, the same as text for the programs that show it (sample, chat, the web page)."""
import math

import tensorlite


def sample_next(logits, temperature=1.0, top_k=None):
    """One token id per row of `logits` (B, vocab), as a (B, 1) int64 tensor.

    temperature scales the logits before the softmax (< 1 sharper, > 1 flatter; 0 takes the argmax);
    top_k keeps only the k most likely tokens.
    """
    if not (isinstance(temperature, (int, float)) and math.isfinite(temperature) and temperature >= 0):
        raise ValueError(f"temperature must be a finite number >= 0, got {temperature}")
    if top_k is not None and (int(top_k) != top_k or top_k < 1):
        raise ValueError(f"top_k must be a positive integer or None, got {top_k}")
    if temperature == 0:
        return logits.argmax(dim=-1, keepdim=True)
    logits = logits / temperature
    if top_k is not None and top_k < logits.shape[-1]:
        xp = logits.xp
        kth = xp.sort(logits.data, axis=-1)[:, -int(top_k)][:, None]  # the k-th largest logit of each row
        logits = logits.masked_fill(logits.data < kth, float("-inf"))
    probs = logits.softmax(dim=-1)
    return tensorlite.multinomial(probs, num_samples=1)


def generate_tokens(model, idx, max_new_tokens, temperature=1.0, top_k=None, context=None, use_cache=True):
    """Yield (B, 1) tensors of new token ids, feeding each back in; the model sees at most `context` tokens.

    A model with new_kv_cache() (the GPT) keeps the keys and values of the tokens it has seen, so each step
    runs only the newest token, unless use_cache=False. Once the text fills `context`, the window slides by
    one token per step and every token moves to a new position, so cached keys and values would be stale:
    from then on each step runs the whole window, as without a cache. The tokens are the same either way
    (the logits agree up to float rounding).
    """
    if idx.ndim != 2:
        raise ValueError(f"idx must be a (batch, time) tensor of token ids, got shape {tuple(idx.shape)}")
    if max_new_tokens < 0:
        raise ValueError(f"max_new_tokens must be >= 0, got {max_new_tokens}")
    use_cache = use_cache and hasattr(model, "new_kv_cache")
    cache, cached = None, 0  # cached: how many tokens of the window the cache holds
    was_training = model.training
    model.eval()  # no dropout while sampling
    try:
        for _ in range(max_new_tokens):
            with tensorlite.no_grad():
                cond = idx if context is None or idx.shape[1] <= context else idx[:, -context:]
                if cache is not None and cond.shape[1] == cached + 1:
                    logits, _ = model(cond[:, -1:], kv_cache=cache)  # only the new token runs
                elif use_cache and (context is None or cond.shape[1] < context):
                    cache = model.new_kv_cache()  # the first step, or the window slid: every position moved
                    logits, _ = model(cond, kv_cache=cache)
                else:  # no cache, or a full window: the next step slides it again, a cache would be stale
                    cache = None
                    logits, _ = model(cond)
                cached = cond.shape[1]
                nxt = sample_next(logits[:, -1, :], temperature, top_k)
                idx = tensorlite.cat([idx, nxt], dim=1)
            yield nxt
    finally:
        model.train(was_training)


def generate_stream(model, tokenizer, prompt, max_new_tokens=200, temperature=1.0, top_k=None, seed=None,
                    unknown="error"):
    """Yield the generated text piece by piece, one piece per sampled token (the prompt is not repeated).

    `tokenizer` is anything with encode(text, unknown=...) and decode(ids) (train.tokenizers has them).
    A prompt with characters outside the vocabulary raises the tokenizer's error naming them, unless
    unknown='skip' drops them. An empty prompt starts from token 0. Decoding the whole continuation each
    time and yielding the new tail keeps multi-byte tokens whole.
    """
    if unknown not in ("error", "skip"):
        raise ValueError(f"unknown must be 'error' or 'skip', got {unknown!r}")
    if seed is not None:
        tensorlite.manual_seed(seed)
    ids = tokenizer.encode(prompt, unknown=unknown) or [0]
    device = next(iter(model.parameters())).device
    idx = tensorlite.tensor([ids], dtype=tensorlite.int64, device=device)
    new_ids, emitted = [], ""
    context = getattr(model, "context_size", None)
    for nxt in generate_tokens(model, idx, max_new_tokens, temperature, top_k, context=context):
        new_ids.append(int(nxt.item()))
        text = tokenizer.decode(new_ids)
        if text.endswith("\ufffd") and len(new_ids) < max_new_tokens:
            continue  # a character split across tokens: wait for the rest of it
        if len(text) > len(emitted) and text.startswith(emitted):
            piece, emitted = text[len(emitted):], text
            yield piece
