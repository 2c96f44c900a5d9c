#!/usr/bin/env python3
"""Draws the Claude Code plugin's icon, .claude-plugin/icon.png: a lightning
bolt on a rounded dark square, 512 x 512 RGBA (the plugin directory wants a
square PNG of 512 to 2048 px; SVG is not accepted there).

Standard library only (zlib), no font, no copied art: the shapes are the
polygon and the rounded square below, filled with 4 x 4 supersampling. The
output is byte-for-byte the same on every run.

Usage: python3 scripts/make-plugin-icon.py [OUT]   (default .claude-plugin/icon.png)
"""

import struct
import sys
import zlib
from pathlib import Path

SIZE = 512
SS = 4  # subsamples per pixel along each axis
RADIUS = 104  # corner radius of the background square
BACKGROUND = (30, 27, 58)  # deep indigo
BOLT = (247, 181, 0)  # amber
# The bolt, clockwise from its top point, in pixel coordinates.
BOLT_POLYGON = [(308, 44), (116, 300), (236, 300), (196, 468), (396, 204), (276, 204)]


def spans(polygon, y):
    """The [x0, x1) intervals inside `polygon` on the horizontal line at y (even-odd)."""
    xs = []
    n = len(polygon)
    for i in range(n):
        (x0, y0), (x1, y1) = polygon[i], polygon[(i + 1) % n]
        if (y0 <= y < y1) or (y1 <= y < y0):
            xs.append(x0 + (y - y0) * (x1 - x0) / (y1 - y0))
    xs.sort()
    return list(zip(xs[0::2], xs[1::2]))


def rounded_square_span(y):
    """The [x0, x1) interval of the rounded background square on line y, or None."""
    if not 0 <= y < SIZE:
        return None
    r = RADIUS
    dy = 0.0
    if y < r:
        dy = r - y
    elif y > SIZE - r:
        dy = y - (SIZE - r)
    inset = r - (r * r - dy * dy) ** 0.5 if dy else 0.0
    return (inset, SIZE - inset)


def coverage_row(py):
    """Per pixel of row py: (background coverage, bolt coverage), each 0..SS*SS."""
    bg = [0] * SIZE
    bolt = [0] * SIZE
    for sy in range(SS):
        y = py + (sy + 0.5) / SS
        square = rounded_square_span(y)
        bolt_spans = spans(BOLT_POLYGON, y)
        for px in range(SIZE):
            for sx in range(SS):
                x = px + (sx + 0.5) / SS
                if square and square[0] <= x < square[1]:
                    bg[px] += 1
                    if any(a <= x < b for a, b in bolt_spans):
                        bolt[px] += 1
    return bg, bolt


def render():
    full = SS * SS
    rows = []
    for py in range(SIZE):
        bg, bolt = coverage_row(py)
        row = bytearray([0])  # filter type 0
        for px in range(SIZE):
            if bg[px] == 0:
                row += b"\0\0\0\0"
                continue
            # Inside the square the bolt is blended over the background; the
            # square's own edge is the alpha.
            t = bolt[px] / bg[px]
            rgb = [round(BACKGROUND[i] + (BOLT[i] - BACKGROUND[i]) * t) for i in range(3)]
            row += bytes(rgb + [round(255 * bg[px] / full)])
        rows.append(bytes(row))
    return b"".join(rows)


def png(raw):
    def chunk(kind, data):
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", SIZE, SIZE, 8, 6, 0, 0, 0)  # 8-bit RGBA
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(raw, 9))
        + chunk(b"IEND", b"")
    )


def main():
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parent.parent / ".claude-plugin/icon.png"
    out.write_bytes(png(render()))
    print(f"wrote {out} ({SIZE}x{SIZE})")


if __name__ == "__main__":
    main()
