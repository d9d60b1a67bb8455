"""One exception type for every bad-input condition, so the CLI can turn it into a clean exit."""


class AlphaRLError(ValueError):
    """Bad input or an impossible request. The message names the file or tensor at fault."""


def check_known(name: str, valid, what: str, source: str = "") -> None:
    """Refuse a `name` not in `valid`, suggesting the nearest valid one (a misspelt key, trainer, reward)."""
    import difflib

    if name not in valid:
        close = difflib.get_close_matches(name, list(valid), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else f"; choose from {', '.join(sorted(valid))}"
        raise AlphaRLError(f"{source}unknown {what} {name!r}{hint}")


FSDP_REFUSED = (
    "AlphaRL runs on one process, DDP, or DeepSpeed ZeRO-1/2/3 (configs/ddp.yaml, configs/zero2.yaml, "
    "configs/zero3.yaml); under FSDP it would read and write sharded DTensors it does not gather: launch "
    "with DeepSpeed ZeRO-3 for sharded training, or set alpharl: false"
)
"""Why a run under FSDP is refused, at attach and by `--dry-run`."""
