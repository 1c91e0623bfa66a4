"""creditpool: pools of prepaid credits shared inside an organisation."""

__version__ = "0.1.0"
