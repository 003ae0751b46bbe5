"""Scenarios 4 to 7: town-hall Q&A, reconnect storm, churn and Redis cost."""

from __future__ import annotations

import argparse
from typing import Any


def add_parsers(sub: Any, common: argparse.ArgumentParser) -> None:
    pass
