"""The package's version, read from its installed metadata: the one place it
is written is ``pyproject.toml`` (the same as the Rust workspace's)."""

from importlib import metadata

try:
    __version__ = metadata.version("keyport-client")
except metadata.PackageNotFoundError:  # a source tree on sys.path, not installed
    __version__ = "0+unknown"
