#!/usr/bin/env python3
"""Renders a terminal capture with ANSI colours (`tmux capture-pane -e -p`) to a PNG.

    python3 screenshots/render.py CAPTURE.ansi OUT.png [--cols 120] [--rows 36]

Each character is one cell of a fixed grid (two for East Asian wide ones). SGR escapes are
interpreted: the 16 ANSI colours (30-37, 90-97, 40-47, 100-107), 256 colours (38;5;N),
truecolor (38;2;R;G;B), bold, dim, italic (drawn upright), underline and reverse; any other
escape is skipped. Box drawing lines and braille dots (ratatui's borders and charts) are drawn
as shapes so they join from cell to cell; all other text uses DejaVu Sans Mono, falling back to
DejaVu Sans for a glyph the monospace font lacks.
"""

import argparse
import re
import sys
import unicodedata

from PIL import Image, ImageDraw, ImageFont

FONT_DIR = "/usr/share/fonts/truetype/dejavu/"
FONT_SIZE = 16
DEFAULT_FG = (204, 204, 204)
DEFAULT_BG = (24, 24, 27)
# The 16 ANSI colours as a common dark terminal shows them (VS Code's integrated terminal).
ANSI16 = [
    (0, 0, 0), (205, 49, 49), (13, 188, 121), (229, 229, 16),
    (36, 114, 200), (188, 63, 188), (17, 168, 205), (229, 229, 229),
    (102, 102, 102), (241, 76, 76), (35, 209, 139), (245, 245, 67),
    (59, 142, 234), (214, 112, 214), (41, 184, 219), (255, 255, 255),
]


def xterm256(n):
    if n < 16:
        return ANSI16[n]
    if n < 232:
        n -= 16
        steps = [0, 95, 135, 175, 215, 255]
        return (steps[n // 36], steps[(n // 6) % 6], steps[n % 6])
    level = 8 + (n - 232) * 10
    return (level, level, level)


class Style:
    __slots__ = ("fg", "bg", "bold", "dim", "italic", "underline", "reverse")

    def __init__(self):
        self.reset()

    def reset(self):
        self.fg = None
        self.bg = None
        self.bold = self.dim = self.italic = self.underline = self.reverse = False

    def copy(self):
        other = Style()
        for name in self.__slots__:
            setattr(other, name, getattr(self, name))
        return other

    def apply(self, params):
        """Applies one SGR sequence's parameters (already split on ';')."""
        codes = [int(p) if p.isdigit() else 0 for p in params] or [0]
        i = 0
        while i < len(codes):
            code = codes[i]
            if code == 0:
                self.reset()
            elif code == 1:
                self.bold = True
            elif code == 2:
                self.dim = True
            elif code == 3:
                self.italic = True
            elif code == 4:
                self.underline = True
            elif code == 7:
                self.reverse = True
            elif code == 22:
                self.bold = self.dim = False
            elif code == 23:
                self.italic = False
            elif code == 24:
                self.underline = False
            elif code == 27:
                self.reverse = False
            elif 30 <= code <= 37:
                self.fg = ANSI16[code - 30]
            elif 90 <= code <= 97:
                self.fg = ANSI16[code - 90 + 8]
            elif 40 <= code <= 47:
                self.bg = ANSI16[code - 40]
            elif 100 <= code <= 107:
                self.bg = ANSI16[code - 100 + 8]
            elif code == 39:
                self.fg = None
            elif code == 49:
                self.bg = None
            elif code in (38, 48) and i + 1 < len(codes):
                colour = None
                if codes[i + 1] == 5 and i + 2 < len(codes):
                    colour = xterm256(codes[i + 2] % 256)
                    i += 2
                elif codes[i + 1] == 2 and i + 4 < len(codes):
                    colour = tuple(c % 256 for c in codes[i + 2:i + 5])
                    i += 4
                if code == 38:
                    self.fg = colour
                else:
                    self.bg = colour
            i += 1

    def colours(self):
        fg = self.fg or DEFAULT_FG
        bg = self.bg or DEFAULT_BG
        if self.reverse:
            fg, bg = bg, fg
        if self.dim:
            fg = tuple((f + b) // 2 for f, b in zip(fg, bg))
        return fg, bg


ESCAPE = re.compile(r"\x1b(?:\[([0-9;:?]*)([@-~])|\][^\x07\x1b]*(?:\x07|\x1b\\)|[()][0-9A-Za-z]|.)")


def parse(text, cols, rows):
    """The capture as a grid of (char, Style) cells, rows × cols."""
    blank = Style()
    grid = [[(" ", blank) for _ in range(cols)] for _ in range(rows)]
    for y, line in enumerate(text.split("\n")[:rows]):
        style = Style()
        x = 0
        pos = 0
        while pos < len(line):
            match = ESCAPE.match(line, pos) if line[pos] == "\x1b" else None
            if match:
                if match.group(2) == "m":
                    style.apply(match.group(1).replace(":", ";").split(";"))
                pos = match.end()
                continue
            char = line[pos]
            pos += 1
            if char == "\r" or unicodedata.category(char) in ("Cc", "Mn"):
                continue
            width = 2 if unicodedata.east_asian_width(char) in ("W", "F") else 1
            if x + width > cols:
                break
            grid[y][x] = (char, style.copy())
            if width == 2:
                grid[y][x + 1] = ("", style.copy())
            x += width
    return grid


# Box drawing: for each character, the arms it has (up, down, left, right), each light (1) or
# heavy (2).
BOX = {
    "─": (0, 0, 1, 1), "━": (0, 0, 2, 2), "│": (1, 1, 0, 0), "┃": (2, 2, 0, 0),
    "┌": (0, 1, 0, 1), "┐": (0, 1, 1, 0), "└": (1, 0, 0, 1), "┘": (1, 0, 1, 0),
    "├": (1, 1, 0, 1), "┤": (1, 1, 1, 0), "┬": (0, 1, 1, 1), "┴": (1, 0, 1, 1),
    "┼": (1, 1, 1, 1), "╭": (0, 1, 0, 1), "╮": (0, 1, 1, 0), "╰": (1, 0, 0, 1),
    "╯": (1, 0, 1, 0), "╴": (0, 0, 1, 0), "╶": (0, 0, 0, 1), "╵": (1, 0, 0, 0),
    "╷": (0, 1, 0, 0),
}


class Renderer:
    def __init__(self):
        self.regular = ImageFont.truetype(FONT_DIR + "DejaVuSansMono.ttf", FONT_SIZE)
        self.bold = ImageFont.truetype(FONT_DIR + "DejaVuSansMono-Bold.ttf", FONT_SIZE)
        self.fallback = ImageFont.truetype(FONT_DIR + "DejaVuSans.ttf", FONT_SIZE - 2)
        self.fallback_bold = ImageFont.truetype(FONT_DIR + "DejaVuSans-Bold.ttf", FONT_SIZE - 2)
        ascent, descent = self.regular.getmetrics()
        self.cell_w = round(self.regular.getlength("M"))
        self.cell_h = ascent + descent + 2
        # A glyph the font lacks renders as its .notdef box: compare against a character no
        # font has.
        self.notdef = self.pixels("\U0010fffd")
        self.missing = {}

    def pixels(self, char):
        image = Image.new("L", (self.cell_w * 2, self.cell_h))
        ImageDraw.Draw(image).text((0, 0), char, font=self.regular, fill=255)
        return image.tobytes()

    def lacks(self, char):
        if char not in self.missing:
            self.missing[char] = self.pixels(char) == self.notdef
        return self.missing[char]

    def render(self, grid, path):
        rows, cols = len(grid), len(grid[0])
        pad = 12
        image = Image.new("RGB", (cols * self.cell_w + 2 * pad, rows * self.cell_h + 2 * pad), DEFAULT_BG)
        draw = ImageDraw.Draw(image)
        for y, row in enumerate(grid):
            for x, (char, style) in enumerate(row):
                fg, bg = style.colours()
                left, top = pad + x * self.cell_w, pad + y * self.cell_h
                if bg != DEFAULT_BG:
                    draw.rectangle([left, top, left + self.cell_w - 1, top + self.cell_h - 1], fill=bg)
                if char in ("", " "):
                    pass
                elif char in BOX:
                    self.box(draw, BOX[char], left, top, fg)
                elif 0x2800 <= ord(char) <= 0x28FF:
                    self.braille(draw, ord(char) - 0x2800, left, top, fg)
                else:
                    self.glyph(draw, char, style, left, top, fg)
                if style.underline:
                    base = top + self.cell_h - 2
                    draw.line([left, base, left + self.cell_w - 1, base], fill=fg)
        image.save(path)

    def glyph(self, draw, char, style, left, top, fg):
        if self.lacks(char):
            font = self.fallback_bold if style.bold else self.fallback
            draw.text((left, top + 2), char, font=font, fill=fg)
        else:
            font = self.bold if style.bold else self.regular
            draw.text((left, top + 1), char, font=font, fill=fg)

    def box(self, draw, arms, left, top, fg):
        up, down, leftarm, right = arms
        cx = left + self.cell_w // 2
        cy = top + self.cell_h // 2
        width = lambda weight: 1 if weight == 1 else 3
        if leftarm:
            draw.line([left, cy, cx, cy], fill=fg, width=width(leftarm))
        if right:
            draw.line([cx, cy, left + self.cell_w, cy], fill=fg, width=width(right))
        if up:
            draw.line([cx, top, cx, cy], fill=fg, width=width(up))
        if down:
            draw.line([cx, cy, cx, top + self.cell_h], fill=fg, width=width(down))

    def braille(self, draw, bits, left, top, fg):
        # Dots 1-3 and 7 down the left column, 4-6 and 8 down the right (Unicode's order).
        dots = [(0, 0), (0, 1), (0, 2), (1, 0), (1, 1), (1, 2), (0, 3), (1, 3)]
        radius = max(1, self.cell_w // 8)
        for bit, (column, row) in enumerate(dots):
            if bits & (1 << bit):
                cx = left + (column * 2 + 1) * self.cell_w // 4
                cy = top + (row * 2 + 1) * self.cell_h // 8
                draw.ellipse([cx - radius, cy - radius, cx + radius, cy + radius], fill=fg)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("capture")
    parser.add_argument("png")
    parser.add_argument("--cols", type=int, default=120)
    parser.add_argument("--rows", type=int, default=36)
    args = parser.parse_args()
    with open(args.capture, encoding="utf-8", errors="replace") as capture:
        text = capture.read()
    grid = parse(text, args.cols, args.rows)
    Renderer().render(grid, args.png)
    print(f"{args.png}: {args.cols}x{args.rows} cells", file=sys.stderr)


if __name__ == "__main__":
    main()
