#!/usr/bin/python3
"""Writes the JPEG variants Go's encoder cannot make, for the fastjpeg
differential tests: progressive, 4:4:4, 4:2:2, 4:1:1-like, grayscale,
restart intervals, optimised Huffman tables, CMYK (Adobe), odd sizes.
Run with Debian's python3-pil: /usr/bin/python3 make.py"""
import math
from PIL import Image

def photo(w, h, seed):
    im = Image.new("RGB", (w, h))
    px = im.load()
    for y in range(h):
        for x in range(w):
            r = int(127 + 100 * math.sin((x + seed) / 7.0) * math.cos(y / 11.0))
            g = int(127 + 90 * math.sin((x * y + seed) / 300.0))
            b = (x * 3 + y * 5 + seed * 17) % 256
            px[x, y] = (r, g, b)
    return im

base = photo(77, 53, 1)
base.save("progressive.jpg", quality=85, progressive=True)
base.save("progressive_444.jpg", quality=92, progressive=True, subsampling=0)
base.save("s444.jpg", quality=90, subsampling=0)
base.save("s422.jpg", quality=90, subsampling=1)
base.save("optimized_restart.jpg", quality=75, optimize=True, restart_marker_blocks=3)
base.save("q100.jpg", quality=100)
base.save("q5.jpg", quality=5)
base.convert("L").save("gray_progressive.jpg", quality=80, progressive=True)
base.convert("CMYK").save("cmyk.jpg", quality=85)
photo(1, 1, 3).save("one_pixel.jpg", quality=90)
photo(300, 7, 4).save("wide.jpg", quality=70, subsampling=2)
