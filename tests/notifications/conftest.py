from __future__ import annotations

from tests.qa.conftest import pair, room  # noqa: F401  (the Q&A suite's servers and room fixture)
