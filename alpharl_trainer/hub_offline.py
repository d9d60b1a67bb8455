"""Nothing is sent unless the user asks: no telemetry to the Hugging Face hub.

TRL pings the hub from every trainer's constructor (telemetry through huggingface_hub) unless
HF_HUB_DISABLE_TELEMETRY (or offline mode) is set. The command-line entry points call `stay_offline()` before
anything imports huggingface_hub, whose settings are read at import. Downloads are another matter: a hub model
id a user names is fetched when the hub is reachable (`policies.hub_policy`), and read from the local cache
alone with `HF_HUB_OFFLINE=1`, which this project's own defaults and tests set (they never need a hub). A
value the user set wins. Importing the package as a library changes nothing.
"""

from __future__ import annotations

import os

DEFAULTS = {"HF_HUB_DISABLE_TELEMETRY": "1"}


def stay_offline() -> None:
    for name, value in DEFAULTS.items():
        os.environ.setdefault(name, value)
