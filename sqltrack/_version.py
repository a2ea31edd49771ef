"""The version of sqltrack (one place: the package, the wheel's metadata and
``sqltrack --version`` read it)."""

__version__ = "0.3.0"
