"""Close codes are values in `channels.protocol`, mirrored by `roomcast.js` and listed in docs/protocol.md."""

from __future__ import annotations

import re

from channels.protocol import CLOSE_CODES, CloseCode
from tests.support import ROOT


def _js_object(source: str, name: str) -> dict[str, str]:
    body = re.search(rf"export const {name} = Object\.freeze\(\{{(.*?)\}}\);", source, re.S)
    assert body is not None, name
    return dict(re.findall(r"(\w+): (\w+),", body.group(1)))


def test_roomcast_js_mirrors_every_close_code_and_whether_to_reconnect() -> None:
    source = (ROOT / "server/web/static/roomcast.js").read_text()
    codes = _js_object(source, "CloseCode")
    reconnect = _js_object(source, "RECONNECT")
    for name, value in vars(CloseCode).items():
        if isinstance(value, int):
            assert codes.get(name) == str(int(value)), name
    assert {int(c) for c in reconnect} == {int(c) for c in CLOSE_CODES}
    for close in CLOSE_CODES:
        assert reconnect[str(int(close))] == ("true" if close.reconnect else "false"), close


def test_docs_list_every_close_code() -> None:
    docs = (ROOT / "docs/protocol.md").read_text()
    for close in CLOSE_CODES:
        assert re.search(rf"^\| {int(close)} \|", docs, re.M), int(close)
    assert CloseCode.TOO_SLOW == 4008 and CloseCode.TOO_SLOW.reason and CloseCode.REMOVED.reconnect is False
