"""Playwright fixtures for the browser tests: Debian's Chromium, one context per simulated person.

Every tab records its console errors and uncaught page errors; `Tab.assert_no_errors()` is how a
test says "no JavaScript errors". Contexts are separate, so each tab has its own sessionStorage
(one guest token, one presenter session) like separate people on separate devices.
"""

from __future__ import annotations

import os
import struct
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from playwright.async_api import Browser, BrowserContext, ConsoleMessage, Error, Page, async_playwright

CHROMIUM = os.environ.get("ROOMCAST_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
CHROMIUM_FOUND = Path(CHROMIUM).exists()
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}


@dataclass
class Tab:
    """One person's browser tab, with every console error and uncaught exception it produced."""

    page: Page
    name: str
    errors: list[str] = field(default_factory=list)

    def assert_no_errors(self, *, allow: tuple[str, ...] = ()) -> None:
        unexpected = [e for e in self.errors if not any(a in e for a in allow)]
        assert not unexpected, f"{self.name}: console errors: {unexpected}"


OpenTab = Callable[..., Awaitable[Tab]]


@pytest.fixture(scope="session")
async def browser() -> AsyncIterator[Browser]:
    if not CHROMIUM_FOUND:
        pytest.skip(f"no Chromium at {CHROMIUM} (.ci/run installs Debian's chromium)")
    async with async_playwright() as playwright:
        instance = await playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield instance
        await instance.close()


@pytest.fixture
async def open_tab(browser: Browser) -> AsyncIterator[OpenTab]:
    """`await open_tab(url, name="ann", phone=False)`: a fresh context and page at `url`."""
    contexts: list[BrowserContext] = []

    async def open_(url: str | None = None, *, name: str = "tab", phone: bool = False) -> Tab:
        context = await browser.new_context(
            viewport=PHONE if phone else DESKTOP,
            device_scale_factor=1,
            is_mobile=phone,
            has_touch=phone,
            accept_downloads=True,
        )
        context.set_default_timeout(10_000)
        contexts.append(context)
        page = await context.new_page()
        tab = Tab(page, name)

        def on_console(message: ConsoleMessage) -> None:
            if message.type == "error":
                tab.errors.append(f"{message.text} @ {message.location.get('url', '')}")

        def on_page_error(error: Error) -> None:
            tab.errors.append(f"uncaught: {error.message}")

        page.on("console", on_console)
        page.on("pageerror", on_page_error)
        if url is not None:
            await page.goto(url)
        return tab

    yield open_
    for context in contexts:
        await context.close()


def png_to_gray(png: bytes) -> tuple[bytes, int, int]:
    """Decode an 8-bit, non-interlaced RGB(A) PNG (what Chromium's screenshots are) to grey pixels."""
    assert png[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    position, chunks, header = 8, [], b""
    while position < len(png):
        (length,) = struct.unpack(">I", png[position : position + 4])
        kind, data = png[position + 4 : position + 8], png[position + 8 : position + 8 + length]
        if kind == b"IHDR":
            header = data
        elif kind == b"IDAT":
            chunks.append(data)
        position += 12 + length
    width, height, depth, color, _, _, interlace = struct.unpack(">IIBBBBB", header)
    assert depth == 8 and color in (2, 6) and interlace == 0, (depth, color, interlace)
    channels = 3 if color == 2 else 4
    raw, stride = zlib.decompress(b"".join(chunks)), width * channels
    rows: list[bytearray] = []
    previous = bytearray(stride)
    for y in range(height):
        kind, line = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1 : (y + 1) * (stride + 1)])
        for x in range(stride):
            left = line[x - channels] if x >= channels else 0
            up, corner = previous[x], previous[x - channels] if x >= channels else 0
            if kind == 1:
                line[x] = (line[x] + left) & 0xFF
            elif kind == 2:
                line[x] = (line[x] + up) & 0xFF
            elif kind == 3:
                line[x] = (line[x] + (left + up) // 2) & 0xFF
            elif kind == 4:
                estimate = left + up - corner
                pa, pb, pc = abs(estimate - left), abs(estimate - up), abs(estimate - corner)
                line[x] = (line[x] + (left if pa <= pb and pa <= pc else up if pb <= pc else corner)) & 0xFF
        rows.append(line)
        previous = line
    gray = bytearray(width * height)
    for y, line in enumerate(rows):
        for x in range(width):
            r, g, b = line[x * channels : x * channels + 3]
            gray[y * width + x] = (r * 299 + g * 587 + b * 114) // 1000
    return bytes(gray), width, height


def decode_qr(png: bytes) -> list[str]:
    """The texts of the QR codes in a screenshot, read by zxing-cpp."""
    import zxingcpp

    gray, width, height = png_to_gray(png)
    image = memoryview(gray).cast("B", (height, width))
    return [barcode.text for barcode in zxingcpp.read_barcodes(image, formats=zxingcpp.BarcodeFormat.QRCode)]
