"""Aiguilleur: SIP call-routing engine (B2BUA, registrar, media relay)."""

__version__ = "0.1.0"
