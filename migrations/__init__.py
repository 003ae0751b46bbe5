"""Piccolo migrations of the `roomcast` app, applied in id order by `roomcast migrate`."""
