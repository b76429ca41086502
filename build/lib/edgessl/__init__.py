"""edgessl: ReSSL self-supervised pretraining of small image encoders, and their export to devices."""

__version__ = "0.1.0"
