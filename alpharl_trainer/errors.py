"""One exception type for every bad-input condition, so the CLI can turn it into a clean exit."""


class AlphaRLError(ValueError):
    """Bad input or an impossible request. The message names the file or tensor at fault."""
