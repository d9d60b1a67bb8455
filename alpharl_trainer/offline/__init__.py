"""Offline AlphaRL on anyone's checkpoints: base + window of checkpoint folders -> trajectory -> forecast.

`predict.predict` writes a checkpoint at a target step (or reward) that loads with `from_pretrained`;
`analyze.analyze` measures how rank-1 and how linear the updates are, which says whether `predict` is worth
trusting on this run. Both stream through `window` (about two tensors of the model in memory at a time);
`plots` draws what `analyze` measured.
"""
