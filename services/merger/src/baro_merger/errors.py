"""What the merger's git core raises. Each message says what is wrong and what to do."""

from __future__ import annotations


class MergerError(RuntimeError):
    """Base of every error the merger reports on purpose."""


class SourceError(MergerError):
    """The run's source repository, ref or commit cannot be read."""


class NotPrepared(MergerError):
    """The run has no integration repository (PrepareRun has not completed)."""


class BundleError(MergerError):
    """A story's result bundle cannot be imported, or does not match the attempt."""


class ConfigError(MergerError):
    """The repository's .baro.toml cannot be parsed or holds a wrong value."""


class DeliveryError(MergerError):
    """The result cannot be placed into the user's repository."""


class NotFastForward(DeliveryError):
    """--continue: the existing branch moved away from the run's base."""
