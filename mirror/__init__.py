"""solarproof-mirror: a local two-way SQLite mirror of a Solar Proof account's customers."""

__version__ = "0.1.0"
