"""Score given completions of given prompts in one forward pass, without generating.

A sampler at temperature T writes a completion c (then stops) with probability
`prod_t softmax(logits_t / T)[c_t] * P(stop)`, and greedy decoding writes it exactly when every c_t (then a
stop token) is the argmax. Both come out of one teacher-forced forward pass over prompt + c: where the
verifier accepts one completion only (the synthetic tasks' gold), the first is the exact expected reward of
sampling and the second the exact greedy reward, with no sampling noise and no token-by-token decoding.
"""

from __future__ import annotations

import torch


@torch.inference_mode()
def score_references(
    model,
    prompts: list[list[int]],
    references: list[list[int]],
    stops: list[int],
    pad: int,
    temperature: float = 1.0,
    max_new_tokens: int | None = None,
    batch_size: int = 64,
) -> tuple[list[bool], list[float]]:
    """For each prompt (token ids) and reference completion (token ids, no stop token): whether greedy
    decoding writes the reference and stops (a stop token from `stops`, or the length limit reached right
    at its end), and the log-probability that sampling at `temperature` does. A reference longer than
    `max_new_tokens` cannot be written: False and -inf."""
    rows, fits = [], []
    for p, ref in zip(prompts, references, strict=True):
        fits.append(max_new_tokens is None or len(ref) <= max_new_tokens)
        stop = [stops[0]] if max_new_tokens is None or len(ref) < max_new_tokens else []
        rows.append((p, ref + stop, bool(stop)))
    exact, logprob = [], []
    device = model.device
    for start in range(0, len(rows), batch_size):
        batch = rows[start : start + batch_size]
        width = max(len(p) + len(g) for p, g, _ in batch)
        ids = torch.full((len(batch), width), pad)
        attention = torch.zeros((len(batch), width), dtype=torch.long)
        scored = torch.zeros((len(batch), width - 1), dtype=torch.bool)  # target positions of the reference
        last = torch.zeros((len(batch), width - 1), dtype=torch.bool)  # the stop token's target position
        for i, (p, g, stopped) in enumerate(batch):  # right padding: positions start at 0 for every row
            ids[i, : len(p) + len(g)] = torch.tensor(p + g)
            attention[i, : len(p) + len(g)] = 1
            scored[i, len(p) - 1 : len(p) + len(g) - 1] = True
            last[i, len(p) + len(g) - 2] = stopped
        logits = model(input_ids=ids.to(device), attention_mask=attention.to(device)).logits[:, :-1].float()
        targets, scored, last = ids[:, 1:].to(device), scored.to(device), last.to(device)
        log_probs = torch.log_softmax(logits if temperature == 1.0 else logits / temperature, dim=-1)
        token_logprob = log_probs.gather(-1, targets.unsqueeze(-1)).squeeze(-1)
        hit = logits.argmax(dim=-1) == targets
        if len(stops) > 1:  # any stop token ends the completion: P(stop) sums over them
            stop_ids = torch.tensor(stops, device=device)
            token_logprob = torch.where(last, log_probs[..., stop_ids].logsumexp(-1), token_logprob)
            hit = torch.where(last, torch.isin(logits.argmax(dim=-1), stop_ids), hit)
        exact += (hit | ~scored).all(dim=1).tolist()
        logprob += (token_logprob * scored).sum(dim=1).tolist()
    exact = [e and f for e, f in zip(exact, fits, strict=True)]
    logprob = [lp if f else -float("inf") for lp, f in zip(logprob, fits, strict=True)]
    return exact, logprob
