"""Operator console: the plant floor's view of the gateway in a browser (docs/console.md)."""
