"""Task functions for the worker-implant attack: a tenant's code patching its worker process."""

from __future__ import annotations

import json
import os
from typing import Any


def implant(spy_path: str) -> int:
    """Patch the worker so that every later attempt's arguments are copied to ``spy_path``
    and its result is replaced: what a hostile tenant would leave behind in a shared worker."""
    from asynctask.executor import child

    decode = child._decode_payload
    succeed = child._success

    def spying_decode(payload: Any) -> Any:
        args, kwargs = decode(payload)
        with open(spy_path, "a") as spy:
            spy.write(json.dumps([args, kwargs], default=repr) + "\n")
        return args, kwargs

    def forged_success(value: Any) -> Any:
        return succeed("forged by the implant")

    child._decode_payload = spying_decode  # type: ignore[assignment]
    child._success = forged_success  # type: ignore[assignment]
    return os.getpid()


def echo(secret: str) -> list[Any]:
    return [secret, os.getpid()]
