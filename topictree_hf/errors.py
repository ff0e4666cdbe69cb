"""Every error the library raises on purpose.

Each class subclasses a built-in so callers can catch what they know; the CLI turns any
`TopicTreeError` into one line on stderr and exit code 2. Messages name the problem and the fix.
"""

from __future__ import annotations


class TopicTreeError(Exception):
    """Base class: a problem the user can fix; `str(err)` is one line naming the fix."""


class ConfigError(TopicTreeError, ValueError):
    """The config file or a flag holds an unknown key or a bad value."""


class ModelNotFoundError(TopicTreeError, FileNotFoundError):
    """The model named in the config cannot be had: not local, not on the Hub (unknown, gated), or
    not cached while downloads are off (`--offline`)."""


class BackendUnavailableError(TopicTreeError, ImportError):
    """A backend's optional dependency is not installed."""


class ServerUnreachableError(TopicTreeError, ConnectionError):
    """An OpenAI-compatible server did not answer."""


class EngineError(TopicTreeError, RuntimeError):
    """The engine failed in a way retries did not fix."""


class RunDirError(TopicTreeError, RuntimeError):
    """The run directory is missing, unreadable, or was made by an incompatible config or version."""


class InputFileError(TopicTreeError, ValueError):
    """A file given by the user (tree, outline, template, dataset folder) is malformed."""


class HubError(TopicTreeError, RuntimeError):
    """A Hub operation failed (not logged in, bad repo id, network failure)."""
