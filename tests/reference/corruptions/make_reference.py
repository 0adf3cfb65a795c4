"""Reference outputs for rossl's common corruptions (core/nn/src/corruptions).

A NumPy/SciPy/PIL port of make_cifar_c.py (hendrycks/robustness, ImageNet-C/create_c), written
independently of the Rust code. Each corruption is applied, at every severity, to two small fixed
images (3x32x32 and 1x28x28), and pixelate, JPEG and contrast also to a 3x28x20 one. The random
draws come from a Python port of rossl's Rng (xoshiro256++, core/api/src/rng.rs), in the order
each Rust family documents, so that each output is a deterministic function of (image, severity,
seed).

Regenerate (from the repository root):

    /work/venv-ref/bin/python tests/reference/corruptions/make_reference.py

which rewrites cases.json (inputs, seeds, offsets) and expected.bin.gz (per case, the uint8 output
minus the uint8 input, modulo 256, CHW: it compresses better than the outputs).

Replacements of the reference's libraries, each said where it happens: cv2 (GaussianBlur,
filter2D, warpAffine, getAffineTransform, cvtColor) by SciPy/NumPy equivalents with the same
border rules; scikit-image (gaussian, random_noise, rgb2hsv, hsv2rgb) by SciPy and ports of its
code (library_ports.py); Wand/ImageMagick's motion blur by a port of MagickCore's
MotionBlurImage kernel. PIL (BOX resize, JPEG) and SciPy (zoom, map_coordinates) are used as the
reference uses them.

The replacements were checked once against the real libraries (not needed to regenerate):
disk + filter2D, getAffineTransform and warpAffine against OpenCV 4.10 (equal to 1e-7; OpenCV
4.11 and later compute warpAffine's source coordinates in floating point instead of 1/32 pixel,
up to 0.021 apart on these images, while make_cifar_c.py ran on the fixed-point OpenCV of 2018),
cvtColor RGB2GRAY, skimage.filters.gaussian and rgb2hsv/hsv2rgb against scikit-image 0.26
(exactly equal), the motion blur against ImageMagick 6.9.11-60 Q16 (byte for byte), and
spatter's Canny, distanceTransform, blur, equalizeHist and filter2D against OpenCV 4.10 (equal;
the distances to 3e-5), the whole spatter port against make_cifar_c.py's spatter run with
OpenCV 4.10 and scikit-image 0.26 on the same draws (within one level).
"""
import gzip
import json
import math
import os
import sys
from io import BytesIO

import numpy as np
from PIL import Image
from scipy.ndimage import correlate, gaussian_filter, map_coordinates
from scipy.ndimage import zoom as scizoom

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from library_ports import (cv_box_blur3, cv_canny_l1, cv_distance_l2_5, cv_equalize_hist,  # noqa: E402
                           cv_filter2d_u8, cv_warp_affine, disk, hsv2rgb, motion_blur_u8, rgb2hsv)

HERE = os.path.dirname(os.path.abspath(__file__))
M64 = (1 << 64) - 1


# ---------------------------------------------------------------- rossl's Rng
def _splitmix(state):
    state = (state + 0x9E3779B97F4A7C15) & M64
    z = state
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M64
    return state, z ^ (z >> 31)


def _rotl(x, k):
    return ((x << k) | (x >> (64 - k))) & M64


class Rng:
    def __init__(self, seed):
        s, self.s = seed, []
        for _ in range(4):
            s, v = _splitmix(s)
            self.s.append(v)

    def next_u64(self):
        s = self.s
        result = (_rotl((s[0] + s[3]) & M64, 23) + s[0]) & M64
        t = (s[1] << 17) & M64
        s[2] ^= s[0]
        s[3] ^= s[1]
        s[1] ^= s[2]
        s[0] ^= s[3]
        s[2] ^= t
        s[3] = _rotl(s[3], 45)
        return result

    def uniform(self):
        return (self.next_u64() >> 11) * (1.0 / (1 << 53))

    def uniform_range(self, low, high):
        return low + (high - low) * self.uniform()

    def below(self, n):
        zone = M64 - (M64 % n)
        while True:
            x = self.next_u64()
            if x < zone:
                return x % n

    def normal(self):
        u1 = 1.0 - self.uniform()
        u2 = self.uniform()
        return math.sqrt(-2.0 * math.log(u1)) * math.cos(2.0 * math.pi * u2)

    def normals(self, shape):
        return np.array([self.normal() for _ in range(int(np.prod(shape)))]).reshape(shape)

    def uniforms(self, low, high, shape):
        n = int(np.prod(shape))
        return np.array([self.uniform_range(low, high) for _ in range(n)]).reshape(shape)


def chw_draws(draw, x):
    """Per-value draws made in channel-major order, returned in the HWC layout of x."""
    h, w, c = x.shape
    return draw((c, h, w)).transpose(1, 2, 0)


def poisson(lam, rng):
    """Poisson by CDF inversion from 0, one uniform (the same algorithm as the Rust side)."""
    u = rng.uniform()
    if lam <= 0.0:
        return 0.0
    p = math.exp(-lam)
    cdf, k, cap = p, 0.0, 10.0 * lam + 1000.0
    while u > cdf and k < cap:
        k += 1.0
        p *= lam / k
        cdf += p
    return k


# ---------------------------------------------------------------- helpers
def sk_gaussian(x, sigma, mode="nearest", truncate=4.0):
    # skimage.filters.gaussian(multichannel=True) = scipy gaussian_filter, σ 0 on channels.
    if x.ndim == 3:
        return gaussian_filter(x, sigma=(sigma, sigma, 0), mode=mode, truncate=truncate)
    return gaussian_filter(x, sigma=sigma, mode=mode, truncate=truncate)


def plasma_fractal(rng, mapsize=32, wibbledecay=3):
    assert mapsize & (mapsize - 1) == 0
    maparray = np.empty((mapsize, mapsize), dtype=np.float64)
    maparray[0, 0] = 0
    stepsize = mapsize
    wibble = 100

    def wibbledmean(array):
        return array / 4 + wibble * rng.uniforms(-wibble, wibble, array.shape)

    def fillsquares():
        cornerref = maparray[0:mapsize:stepsize, 0:mapsize:stepsize]
        squareaccum = cornerref + np.roll(cornerref, shift=-1, axis=0)
        squareaccum += np.roll(squareaccum, shift=-1, axis=1)
        maparray[stepsize // 2:mapsize:stepsize, stepsize // 2:mapsize:stepsize] = wibbledmean(squareaccum)

    def filldiamonds():
        drgrid = maparray[stepsize // 2:mapsize:stepsize, stepsize // 2:mapsize:stepsize]
        ulgrid = maparray[0:mapsize:stepsize, 0:mapsize:stepsize]
        ltsum = drgrid + np.roll(drgrid, 1, axis=0) + ulgrid + np.roll(ulgrid, -1, axis=1)
        maparray[0:mapsize:stepsize, stepsize // 2:mapsize:stepsize] = wibbledmean(ltsum)
        ttsum = drgrid + np.roll(drgrid, 1, axis=1) + ulgrid + np.roll(ulgrid, -1, axis=0)
        maparray[stepsize // 2:mapsize:stepsize, 0:mapsize:stepsize] = wibbledmean(ttsum)

    while stepsize >= 2:
        fillsquares()
        filldiamonds()
        stepsize //= 2
        wibble /= wibbledecay
    maparray -= maparray.min()
    return maparray / maparray.max()


def clipped_zoom(img, zoom_factor):
    h = img.shape[0]
    ch = int(np.ceil(h / zoom_factor))
    top = (h - ch) // 2
    img = scizoom(img[top:top + ch, top:top + ch], (zoom_factor, zoom_factor, 1), order=1)
    trim_top = (img.shape[0] - h) // 2
    return img[trim_top:trim_top + h, trim_top:trim_top + h]


# ---------------------------------------------------------------- distortions
# Each takes the uint8 HWC image, the severity and the Rng, and returns values in [0, 255] that
# np.uint8 truncates as make_cifar_c.py's driver does.

def gaussian_noise(x, severity, rng):
    c = [0.04, 0.06, .08, .09, .10][severity - 1]
    x = np.array(x) / 255.
    return np.clip(x + c * chw_draws(rng.normals, x), 0, 1) * 255


def shot_noise(x, severity, rng):
    c = [500, 250, 100, 75, 50][severity - 1]
    x = np.array(x) / 255.
    lam = (x * c).transpose(2, 0, 1)
    draws = np.array([poisson(v, rng) for v in lam.ravel()]).reshape(lam.shape).transpose(1, 2, 0)
    return np.clip(draws / c, 0, 1) * 255


def impulse_noise(x, severity, rng):
    # skimage random_noise(mode='s&p', amount=c, salt_vs_pepper=0.5): flipped with p = c, salted
    # with p = 0.5, drawn per value (flip then salt).
    c = [.01, .02, .03, .05, .07][severity - 1]
    x = np.array(x) / 255.
    h, w, ch = x.shape
    pairs = np.array([[rng.uniform(), rng.uniform()] for _ in range(h * w * ch)])
    pairs = pairs.reshape(ch, h, w, 2).transpose(1, 2, 0, 3)
    flipped, salted = pairs[..., 0] < c, pairs[..., 1] < 0.5
    out = x.copy()
    out[flipped & salted] = 1
    out[flipped & ~salted] = 0
    return np.clip(out, 0, 1) * 255


def speckle_noise(x, severity, rng):
    c = [.06, .1, .12, .16, .2][severity - 1]
    x = np.array(x) / 255.
    return np.clip(x + x * c * chw_draws(rng.normals, x), 0, 1) * 255


def gaussian_blur(x, severity, rng):
    c = [.4, .6, 0.7, .8, 1][severity - 1]
    return np.clip(sk_gaussian(np.array(x) / 255., c), 0, 1) * 255


def glass_blur(x, severity, rng):
    c = [(0.05, 1, 1), (0.25, 1, 1), (0.4, 1, 1), (0.25, 1, 2), (0.4, 1, 2)][severity - 1]
    x = np.uint8(sk_gaussian(np.array(x) / 255., c[0]) * 255)
    H, W = x.shape[:2]
    for i in range(c[2]):
        for h in range(H - c[1], c[1], -1):
            for w in range(W - c[1], c[1], -1):
                dx = rng.below(2 * c[1]) - c[1]
                dy = rng.below(2 * c[1]) - c[1]
                h_prime, w_prime = h + dy, w + dx
                # the reference's line, kept: on views of (h, w, channels) it copies, not swaps
                x[h, w], x[h_prime, w_prime] = x[h_prime, w_prime], x[h, w]
    return np.clip(sk_gaussian(x / 255., c[0]), 0, 1) * 255


def defocus_blur(x, severity, rng):
    c = [(0.3, 0.4), (0.4, 0.5), (0.5, 0.6), (1, 0.2), (1.5, 0.1)][severity - 1]
    x = np.array(x) / 255.
    kernel = disk(radius=c[0], alias_blur=c[1])
    # cv2.filter2D = correlation with BORDER_REFLECT_101 (SciPy 'mirror')
    channels = [correlate(x[:, :, d], kernel, mode="mirror") for d in range(x.shape[2])]
    return np.clip(np.array(channels).transpose((1, 2, 0)), 0, 1) * 255


def motion_blur(x, severity, rng):
    c = [(6, 1), (6, 1.5), (6, 2), (8, 2), (9, 2.5)][severity - 1]
    angle = rng.uniform_range(-45, 45)
    x = np.array(x)
    out = [motion_blur_u8(x[:, :, d].astype(np.float64), c[0], c[1], angle) for d in range(x.shape[2])]
    return np.array(out).transpose(1, 2, 0).astype(np.float64)


def zoom_blur(x, severity, rng):
    c = [np.arange(1, 1.06, 0.01), np.arange(1, 1.11, 0.01), np.arange(1, 1.16, 0.01),
         np.arange(1, 1.21, 0.01), np.arange(1, 1.26, 0.01)][severity - 1]
    x = (np.array(x) / 255.).astype(np.float32)
    out = np.zeros_like(x)
    for zoom_factor in c:
        out += clipped_zoom(x, zoom_factor)
    x = (x + out) / (len(c) + 1)
    return np.clip(x, 0, 1) * 255


def snow(x, severity, rng):
    c = [(0.1, 0.2, 1, 0.6, 8, 3, 0.95), (0.1, 0.2, 1, 0.5, 10, 4, 0.9),
         (0.15, 0.3, 1.75, 0.55, 10, 4, 0.9), (0.25, 0.3, 2.25, 0.6, 12, 6, 0.85),
         (0.3, 0.3, 1.25, 0.65, 14, 12, 0.8)][severity - 1]
    x = np.array(x, dtype=np.float32) / 255.
    snow_layer = c[0] + c[1] * rng.normals(x.shape[:2])
    snow_layer = clipped_zoom(snow_layer[..., np.newaxis], c[2])
    snow_layer[snow_layer < c[3]] = 0
    snow_layer = (np.clip(snow_layer.squeeze(), 0, 1) * 255).astype(np.uint8)
    angle = rng.uniform_range(-135, -45)
    snow_layer = motion_blur_u8(snow_layer.astype(np.float64), c[4], c[5], angle) / 255.
    snow_layer = snow_layer[..., np.newaxis]
    if x.shape[2] == 3:  # cv2.cvtColor(RGB2GRAY)
        gray = (0.299 * x[..., 0] + 0.587 * x[..., 1] + 0.114 * x[..., 2])[..., np.newaxis]
    else:
        gray = x
    x = c[6] * x + (1 - c[6]) * np.maximum(x, gray * 1.5 + 0.5)
    return np.clip(x + snow_layer + np.rot90(snow_layer, k=2), 0, 1) * 255


def fog(x, severity, rng):
    c = [(.2, 3), (.5, 3), (0.75, 2.5), (1, 2), (1.5, 1.75)][severity - 1]
    x = np.array(x) / 255.
    h, w = x.shape[:2]
    size = 1 << (max(h, w) - 1).bit_length()
    max_val = x.max()
    x += c[0] * plasma_fractal(rng, mapsize=size, wibbledecay=c[1])[:h, :w][..., np.newaxis]
    return np.clip(x * max_val / (max_val + c[0]), 0, 1) * 255


def brightness(x, severity, rng):
    c = [.05, .1, .15, .2, .3][severity - 1]
    x = np.array(x) / 255.
    if x.shape[2] != 3:  # grey: the value is the grey level
        return np.clip(x + c, 0, 1) * 255
    x = rgb2hsv(x)
    x[:, :, 2] = np.clip(x[:, :, 2] + c, 0, 1)
    return np.clip(hsv2rgb(x), 0, 1) * 255


def contrast(x, severity, rng):
    c = [.75, .5, .4, .3, 0.15][severity - 1]
    x = np.array(x) / 255.
    means = np.mean(x, axis=(0, 1), keepdims=True)
    return np.clip((x - means) * c + means, 0, 1) * 255


def saturate(x, severity, rng):
    c = [(0.3, 0), (0.1, 0), (1.5, 0), (2, 0.1), (2.5, 0.2)][severity - 1]
    x = np.array(x) / 255.
    if x.shape[2] != 3:  # grey: unchanged (rossl's rule)
        return x * 255
    x = rgb2hsv(x)
    x[:, :, 1] = np.clip(x[:, :, 1] * c[0] + c[1], 0, 1)
    return np.clip(hsv2rgb(x), 0, 1) * 255


def elastic_transform(image, severity, rng):
    IMSIZE = min(image.shape[:2])
    c = [(IMSIZE * 0, IMSIZE * 0, IMSIZE * 0.08), (IMSIZE * 0.05, IMSIZE * 0.2, IMSIZE * 0.07),
         (IMSIZE * 0.08, IMSIZE * 0.06, IMSIZE * 0.06), (IMSIZE * 0.1, IMSIZE * 0.04, IMSIZE * 0.05),
         (IMSIZE * 0.1, IMSIZE * 0.03, IMSIZE * 0.03)][severity - 1]
    image = np.array(image, dtype=np.float32) / 255.
    shape = image.shape
    shape_size = shape[:2]
    center_square = np.float32(shape_size) // 2
    square_size = min(shape_size) // 3
    pts1 = np.float32([center_square + square_size,
                       [center_square[0] + square_size, center_square[1] - square_size],
                       center_square - square_size])
    pts2 = pts1 + rng.uniforms(-c[2], c[2], pts1.shape).astype(np.float32)
    # cv2.getAffineTransform: solve M [x y 1]^T = [u v]^T for the three points
    A = np.hstack([pts1.astype(np.float64), np.ones((3, 1))])
    M = np.linalg.solve(A, pts2.astype(np.float64)).T
    image = cv_warp_affine(image, M)
    dx = (sk_gaussian(rng.uniforms(-1, 1, shape[:2]), c[1], mode="reflect", truncate=3) * c[0]).astype(np.float32)
    dy = (sk_gaussian(rng.uniforms(-1, 1, shape[:2]), c[1], mode="reflect", truncate=3) * c[0]).astype(np.float32)
    dx, dy = dx[..., np.newaxis], dy[..., np.newaxis]
    x, y, z = np.meshgrid(np.arange(shape[1]), np.arange(shape[0]), np.arange(shape[2]))
    indices = np.reshape(y + dy, (-1, 1)), np.reshape(x + dx, (-1, 1)), np.reshape(z, (-1, 1))
    return np.clip(map_coordinates(image, indices, order=1, mode='reflect').reshape(shape), 0, 1) * 255


def spatter(x, severity, rng):
    c = [(0.62, 0.1, 0.7, 0.7, 0.5, 0), (0.65, 0.1, 0.8, 0.7, 0.5, 0), (0.65, 0.3, 1, 0.69, 0.5, 0),
         (0.65, 0.1, 0.7, 0.69, 0.6, 1), (0.65, 0.1, 0.5, 0.68, 0.6, 1)][severity - 1]
    x = np.array(x, dtype=np.float32) / 255.
    liquid_layer = c[0] + c[1] * rng.normals(x.shape[:2])
    liquid_layer = sk_gaussian(liquid_layer, c[2])
    liquid_layer[liquid_layer < c[3]] = 0
    # rossl's rule for other than three channels: the colour's mean over its components
    grey = x.shape[2] != 3
    if c[5] == 0:
        # (x * 255).astype(np.uint8), with the wrap-around of values past 255 made explicit
        liquid_layer = np.mod(np.floor(liquid_layer * 255), 256).astype(np.uint8)
        dist = 255 - cv_canny_l1(liquid_layer, 50, 150)
        dist = np.minimum(cv_distance_l2_5(dist), np.float32(20))  # THRESH_TRUNC at 20
        dist = cv_box_blur3(dist).astype(np.uint8)
        dist = cv_equalize_hist(dist)
        ker = np.array([[-2, -1, 0], [-1, 1, 1], [0, 1, 2]])
        dist = cv_filter2d_u8(dist, ker)
        dist = cv_box_blur3(dist).astype(np.float32)
        m = liquid_layer * dist  # GRAY2BGRA: the same in the three colour channels
        peak = np.max(m)
        m = m / peak if peak > 0 else m  # rossl: no water when the layer is empty (NaN there)
        m = (m * c[4])[..., np.newaxis]
        # water is pale turquoise, added to the channels in the order written (BGR on RGB data)
        color = np.array([175 / 255., 238 / 255., 238 / 255.])
        color = color.mean(keepdims=True) if grey else color
        return np.clip(x + m * color, 0, 1) * 255
    m = np.where(liquid_layer > c[3], 1, 0)
    m = sk_gaussian(m.astype(np.float32), c[4])
    m[m < 0.8] = 0
    # mud brown
    color = np.array([63 / 255., 42 / 255., 20 / 255.])
    color = color.mean(keepdims=True) if grey else color
    color = color * m[..., np.newaxis]
    x *= (1 - m[..., np.newaxis])
    return np.clip(x + color, 0, 1) * 255


def to_pil(x):
    return Image.fromarray(x[:, :, 0], mode="L") if x.shape[2] == 1 else Image.fromarray(x)


def from_pil(im, channels):
    a = np.array(im, dtype=np.float64)
    return a[..., np.newaxis] if channels == 1 else a


def pixelate(x, severity, rng):
    c = [0.95, 0.9, 0.85, 0.75, 0.65][severity - 1]
    h, w = x.shape[:2]
    im = to_pil(x).resize((int(w * c), int(h * c)), Image.BOX).resize((w, h), Image.BOX)
    return from_pil(im, x.shape[2])


def jpeg_compression(x, severity, rng):
    c = [80, 65, 58, 50, 40][severity - 1]
    output = BytesIO()
    to_pil(x).save(output, 'JPEG', quality=c)
    return from_pil(Image.open(output), x.shape[2])


FAMILIES = [gaussian_noise, shot_noise, impulse_noise, defocus_blur, glass_blur, motion_blur,
            zoom_blur, snow, fog, brightness, contrast, elastic_transform, pixelate,
            jpeg_compression, speckle_noise, gaussian_blur, saturate, spatter]


# The third image (28 rows, 20 columns: JPEG's edge padding of odd block and MCU counts) gets
# only the families that do not assume a square image.
FAMILIES_NON_SQUARE = [pixelate, jpeg_compression, contrast]


def make_images():
    """Fixed uint8 images (HWC): RGB 32x32 with edges and texture, grey 28x28, RGB 28x20."""
    out = []
    for c, h, w in [(3, 32, 32), (1, 28, 28), (3, 28, 20)]:
        y, x, ch = np.meshgrid(np.arange(h), np.arange(w), np.arange(c), indexing="ij")
        v = (37 * x + 53 * y + 91 * ch + ((x * y * 7) % 23) * 5 + ((x // 8 + y // 8) % 2) * 60) % 256
        out.append(v.astype(np.uint8))
    return out


def main():
    images = make_images()
    cases, blobs, offset = [], [], 0
    for i, img in enumerate(images):
        for f, fam in enumerate(FAMILIES if img.shape[0] == img.shape[1] else FAMILIES_NON_SQUARE):
            for severity in range(1, 6):
                seed = 1000 * (i + 1) + 10 * f + severity
                out = np.uint8(fam(img.copy(), severity, Rng(seed)))
                delta = out.astype(np.int16) - img.astype(np.int16)
                chw = np.ascontiguousarray(delta.astype(np.uint8).transpose(2, 0, 1)).tobytes()
                cases.append({"image": i, "corruption": fam.__name__, "severity": severity,
                              "seed": seed, "offset": offset})
                blobs.append(chw)
                offset += len(chw)
    meta = {
        "generator": "tests/reference/corruptions/make_reference.py",
        "numpy": np.__version__, "scipy": __import__("scipy").__version__,
        "pillow": Image.__version__ if hasattr(Image, "__version__") else __import__("PIL").__version__,
        "images": [{"shape": [int(im.shape[2]), int(im.shape[0]), int(im.shape[1])],
                    "pixels": im.transpose(2, 0, 1).ravel().tolist()} for im in images],
        "cases": cases,
    }
    with open(os.path.join(HERE, "cases.json"), "w") as fh:
        json.dump(meta, fh, separators=(",", ":"))
    with gzip.GzipFile(os.path.join(HERE, "expected.bin.gz"), "wb", mtime=0) as fh:
        fh.write(b"".join(blobs))


if __name__ == "__main__":
    main()
