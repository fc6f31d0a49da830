"""Configuration: a TOML file turned into a frozen, validated ``Config``.

Every key has a default (no file means the defaults), every key is documented in
``config/asynctask.toml`` - and a test checks that file loads to exactly these defaults, so the
two cannot drift. Unknown keys and bad values are refused with the key's full path and what was
expected; the daemon does not start on a bad file. Durations and sizes are written as users write
them elsewhere (``"30s"``, ``"16M"``).
"""

from asynctask.config.parse import default_config_path, load_config, parse_config
from asynctask.config.reload import Reload, changed_keys, reconcile
from asynctask.config.sections import (
    DAY,
    AuthConfig,
    Config,
    DaemonConfig,
    FunctionDefaults,
    ObserveConfig,
    RetryConfig,
    ServerConfig,
    StoreConfig,
    WorkersConfig,
)
from asynctask.errors import ConfigError

__all__ = [
    "DAY",
    "AuthConfig",
    "Config",
    "ConfigError",
    "DaemonConfig",
    "FunctionDefaults",
    "ObserveConfig",
    "Reload",
    "RetryConfig",
    "ServerConfig",
    "StoreConfig",
    "WorkersConfig",
    "changed_keys",
    "default_config_path",
    "load_config",
    "parse_config",
    "reconcile",
]
