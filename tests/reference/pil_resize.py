# Reference values for core/api/src/components/resize.rs, computed with Pillow (not a dependency
# of rossl): python tests/reference/pil_resize.py > core/api/testdata/pil_resize.json
# Written with Pillow 13.0.0 and numpy 2.4.6.
#
# Pillow's bilinear resampling with antialias (what torchvision's Resize does on PIL images) of
# float images (mode "F", so no uint8 rounding). The input pixel at (row y, column x) of a case
# is  ((7x + 13y) % 17) / 16 * 0.5 + ((x * y) % 11) / 32,  computed in float64 and stored as
# float32; the Rust test builds the same images with the same formula.
import json

import numpy as np
from PIL import Image

# (input height, input width, output height, output width)
CASES = [(96, 96, 32, 32), (28, 28, 32, 32), (32, 32, 28, 28), (7, 7, 5, 5), (6, 96, 9, 32)]


def pattern(h, w):
    y, x = np.mgrid[0:h, 0:w]
    return (((7 * x + 13 * y) % 17) / 16 * 0.5 + ((x * y) % 11) / 32).astype(np.float32)


out = []
for h, w, oh, ow in CASES:
    img = Image.fromarray(pattern(h, w))  # float32 -> mode "F"
    assert img.mode == "F"
    res = np.asarray(img.resize((ow, oh), Image.Resampling.BILINEAR), dtype=np.float32)
    assert res.shape == (oh, ow)
    out.append({
        "in": [h, w],
        "out": [oh, ow],
        "pixels": [round(float(v), 7) for v in res.reshape(-1)],
    })
import PIL

print(json.dumps({"pillow": PIL.__version__, "cases": out}))
