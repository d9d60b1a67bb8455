"""Nothing leaves the machine unless the user asks: the Hugging Face hub's offline mode and no telemetry.

Everything this project loads is a local folder, yet TRL pings the hub from every trainer's constructor
(telemetry through huggingface_hub) unless offline mode or HF_HUB_DISABLE_TELEMETRY is set. The command-line
entry points call `stay_offline()` before anything imports huggingface_hub, whose settings are read at
import. A value the user set wins: `HF_HUB_OFFLINE=0` opts back in. Importing the package as a library
changes nothing.
"""

from __future__ import annotations

import os

DEFAULTS = {"HF_HUB_OFFLINE": "1", "HF_HUB_DISABLE_TELEMETRY": "1"}


def stay_offline() -> None:
    for name, value in DEFAULTS.items():
        os.environ.setdefault(name, value)
