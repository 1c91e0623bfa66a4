"""The domain: pure Python, no I/O. Credit amounts, metering arithmetic, policies, errors."""
