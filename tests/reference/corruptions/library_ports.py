"""NumPy/SciPy ports of the OpenCV, scikit-image and ImageMagick calls of make_cifar_c.py, used by
make_reference.py (see its docstring for how they were checked against the libraries)."""
import math

import numpy as np
from scipy.ndimage import correlate1d


def cv_gaussian_kernel(ksize, sigma):
    # cv2.getGaussianKernel for sigma > 0.
    i = np.arange(ksize) - (ksize - 1) / 2
    k = np.exp(-(i ** 2) / (2 * sigma ** 2))
    return k / k.sum()


def disk(radius, alias_blur=0.1, dtype=np.float32):
    L = np.arange(-8, 8 + 1)
    X, Y = np.meshgrid(L, L)
    aliased_disk = np.array((X ** 2 + Y ** 2) <= radius ** 2, dtype=dtype)
    aliased_disk /= np.sum(aliased_disk)
    # cv2.GaussianBlur(ksize=(3, 3)), BORDER_REFLECT_101 = SciPy 'mirror'.
    k = cv_gaussian_kernel(3, alias_blur)
    out = correlate1d(aliased_disk.astype(np.float64), k, axis=0, mode="mirror")
    return correlate1d(out, k, axis=1, mode="mirror")


def motion_blur_u8(plane, radius, sigma, angle):
    # MagickCore MotionBlurImage: width = 2 ceil(radius) + 1 (GetOptimalKernelWidth1D),
    # one-sided Gaussian weights normalised to 1, tap offsets ceil(i cos - 0.5), ceil(i sin - 0.5),
    # edge virtual pixels; Q16: the sum of 257 x the 8-bit values rounded to 16 bits
    # (ClampToQuantum) and truncated to 8 bits on writing. This matched `convert -motion-blur`
    # of ImageMagick 6.9.11-60 Q16 byte for byte (RGB and grey images, four settings).
    width = int(2 * math.ceil(radius) + 1)
    i = np.arange(width, dtype=np.float64)
    k = np.exp(-(i * i) / (2.0 * sigma * sigma)) / (math.sqrt(2 * math.pi) * sigma)
    k /= k.sum()
    px, py = width * math.sin(math.radians(angle)), width * math.cos(math.radians(angle))
    hyp = math.hypot(px, py)
    ox = [int(math.ceil(j * py / hyp - 0.5)) for j in range(width)]
    oy = [int(math.ceil(j * px / hyp - 0.5)) for j in range(width)]
    h, w = plane.shape
    ys, xs = np.mgrid[0:h, 0:w]
    acc = np.zeros((h, w))
    for j in range(width):
        yy = np.clip(ys + oy[j], 0, h - 1)
        xx = np.clip(xs + ox[j], 0, w - 1)
        acc += k[j] * plane[yy, xx]
    q16 = np.clip(np.floor(acc * 257 + 0.5), 0, 65535)
    return np.floor(q16 / 257).astype(np.uint8)


def rgb2hsv(arr):
    # skimage.color.rgb2hsv (0.14).
    out = np.empty_like(arr)
    out_v = arr.max(-1)
    delta = arr.ptp(-1) if hasattr(arr, "ptp") else np.ptp(arr, -1)
    with np.errstate(invalid="ignore", divide="ignore"):
        out_s = delta / out_v
        out_s[delta == 0.0] = 0.0
        out_h = np.zeros_like(out_v)
        idx = arr[:, :, 0] == out_v
        out_h[idx] = (arr[:, :, 1][idx] - arr[:, :, 2][idx]) / delta[idx]
        idx = arr[:, :, 1] == out_v
        out_h[idx] = 2.0 + (arr[:, :, 2][idx] - arr[:, :, 0][idx]) / delta[idx]
        idx = arr[:, :, 2] == out_v
        out_h[idx] = 4.0 + (arr[:, :, 0][idx] - arr[:, :, 1][idx]) / delta[idx]
    out_h = (out_h / 6.0) % 1.0
    out_h[delta == 0.0] = 0.0
    out[:, :, 0], out[:, :, 1], out[:, :, 2] = out_h, out_s, out_v
    return out


def hsv2rgb(hsv):
    # skimage.color.hsv2rgb (0.14).
    hi = np.floor(hsv[:, :, 0] * 6)
    f = hsv[:, :, 0] * 6 - hi
    p = hsv[:, :, 2] * (1 - hsv[:, :, 1])
    q = hsv[:, :, 2] * (1 - f * hsv[:, :, 1])
    t = hsv[:, :, 2] * (1 - (1 - f) * hsv[:, :, 1])
    v = hsv[:, :, 2]
    hi = np.dstack([hi, hi, hi]).astype(np.uint8) % 6
    return np.choose(hi, [np.dstack((v, t, p)), np.dstack((q, v, p)), np.dstack((p, v, t)),
                          np.dstack((p, q, v)), np.dstack((t, p, v)), np.dstack((v, p, q))])


def cv_warp_affine(img, M):
    # cv2.warpAffine(INTER_LINEAR, BORDER_REFLECT_101) on float images: M inverted
    # (invertAffineTransform), source coordinates in 10-bit fixed point rounded to 1/32 pixel
    # (AB_BITS = 10, INTER_BITS = 5), then bilinear with the four neighbours mirrored (reflect 101).
    D = M[0, 0] * M[1, 1] - M[0, 1] * M[1, 0]
    D = 1.0 / D if D != 0 else 0.0
    A11, A22, A12, A21 = M[1, 1] * D, M[0, 0] * D, -M[0, 1] * D, -M[1, 0] * D
    b1 = -A11 * M[0, 2] - A12 * M[1, 2]
    b2 = -A21 * M[0, 2] - A22 * M[1, 2]
    h, w = img.shape[:2]
    out = np.zeros_like(img)

    def mirror(i, n):
        period = 2 * n - 2
        m = i % period
        return np.where(m < n, m, period - m)

    for y in range(h):
        X0 = int(np.rint((A12 * y + b1) * 1024)) + 16
        Y0 = int(np.rint((A22 * y + b2) * 1024)) + 16
        for x in range(w):
            X = (X0 + int(np.rint(A11 * x * 1024))) >> 5
            Y = (Y0 + int(np.rint(A21 * x * 1024))) >> 5
            xi, fx = X >> 5, (X & 31) / 32.0
            yi, fy = Y >> 5, (Y & 31) / 32.0
            x0, x1 = mirror(xi, w), mirror(xi + 1, w)
            y0, y1 = mirror(yi, h), mirror(yi + 1, h)
            top = img[y0, x0] * (1 - fx) + img[y0, x1] * fx
            bottom = img[y1, x0] * (1 - fx) + img[y1, x1] * fx
            out[y, x] = top * (1 - fy) + bottom * fy
    return out


# ---------------------------------------------------------------- spatter's OpenCV calls
def _mirror101(i, n):
    period = 2 * n - 2
    m = np.mod(i, period)
    return np.where(m < n, m, period - m)


def cv_box_blur3(img):
    """cv2.blur(img, (3, 3)): 3x3 mean, BORDER_REFLECT_101; uint8 input rounds (half to even)."""
    h, w = img.shape
    ys, xs = np.mgrid[0:h, 0:w]
    acc = np.zeros((h, w))
    for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):
            acc += img[_mirror101(ys + dy, h), _mirror101(xs + dx, w)]
    if img.dtype == np.uint8:
        return np.clip(np.rint(acc * (1.0 / 9.0)), 0, 255).astype(np.uint8)
    return (acc / 9.0).astype(img.dtype)


def cv_filter2d_u8(img, ker):
    """cv2.filter2D(img, cv2.CV_8U, ker): correlation, BORDER_REFLECT_101, rounded and saturated."""
    h, w = img.shape
    ys, xs = np.mgrid[0:h, 0:w]
    acc = np.zeros((h, w))
    for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):
            acc += ker[dy + 1, dx + 1] * img[_mirror101(ys + dy, h), _mirror101(xs + dx, w)].astype(np.float64)
    return np.clip(np.rint(acc), 0, 255).astype(np.uint8)


def cv_canny_l1(img, low, high):
    """cv2.Canny(img, low, high): 3x3 Sobel (BORDER_REPLICATE), L1 magnitude, non-maximum
    suppression in four directions with tan(22.5°) in 15-bit fixed point, hysteresis over the
    8-neighbourhood from magnitudes above `high` through those above `low`."""
    h, w = img.shape
    p = np.pad(img.astype(np.int64), 1, mode="edge")
    dx = (p[:-2, 2:] + 2 * p[1:-1, 2:] + p[2:, 2:]) - (p[:-2, :-2] + 2 * p[1:-1, :-2] + p[2:, :-2])
    dy = (p[2:, :-2] + 2 * p[2:, 1:-1] + p[2:, 2:]) - (p[:-2, :-2] + 2 * p[:-2, 1:-1] + p[:-2, 2:])
    mag = np.zeros((h + 2, w + 2), dtype=np.int64)
    mag[1:-1, 1:-1] = np.abs(dx) + np.abs(dy)
    low, high = math.floor(low), math.floor(high)
    state = np.ones((h, w), dtype=np.int64)  # 1 not an edge, 0 candidate, 2 edge
    stack = []
    for y in range(h):
        for x in range(w):
            m = mag[y + 1, x + 1]
            if m <= low:
                continue
            xs, ys = int(dx[y, x]), int(dy[y, x])
            ax, ay = abs(xs), abs(ys) << 15
            tg22x = ax * 13573
            if ay < tg22x:
                keep = m > mag[y + 1, x] and m >= mag[y + 1, x + 2]
            elif ay > tg22x + (ax << 16):
                keep = m > mag[y, x + 1] and m >= mag[y + 2, x + 1]
            else:
                s = -1 if (xs ^ ys) < 0 else 1
                keep = m > mag[y, x + 1 - s] and m > mag[y + 2, x + 1 + s]
            if keep:
                if m > high:
                    state[y, x] = 2
                    stack.append((y, x))
                else:
                    state[y, x] = 0
    while stack:
        y, x = stack.pop()
        for ny in (y - 1, y, y + 1):
            for nx in (x - 1, x, x + 1):
                if 0 <= ny < h and 0 <= nx < w and state[ny, nx] == 0:
                    state[ny, nx] = 2
                    stack.append((ny, nx))
    return np.where(state == 2, 255, 0).astype(np.uint8)


def cv_distance_l2_5(img):
    """cv2.distanceTransform(img, cv2.DIST_L2, 5): distance to the nearest zero pixel by OpenCV's
    two-pass 5x5 chamfer (1, 1.4, 2.1969 in 16-bit fixed point), float32."""
    h, w = img.shape
    hv, diag, long_ = round(1.0 * 65536), round(1.4 * 65536), round(2.1969 * 65536)
    big = 2 ** 31 - 1
    t = np.full((h + 4, w + 4), big, dtype=np.int64)
    fwd = [(-2, -1, long_), (-2, 1, long_), (-1, -2, long_), (-1, -1, diag), (-1, 0, hv), (-1, 1, diag),
           (-1, 2, long_), (0, -1, hv)]
    for y in range(h):
        for x in range(w):
            if img[y, x] == 0:
                t[y + 2, x + 2] = 0
            else:
                t[y + 2, x + 2] = min(t[y + 2 + dy, x + 2 + dx] + d for dy, dx, d in fwd)
    out = np.zeros((h, w), dtype=np.float32)
    for y in range(h - 1, -1, -1):
        for x in range(w - 1, -1, -1):
            t0 = t[y + 2, x + 2]
            if t0 > hv:
                t0 = min([t0] + [t[y + 2 - dy, x + 2 - dx] + d for dy, dx, d in fwd])
                t[y + 2, x + 2] = t0
            out[y, x] = np.float32(t0 * np.float32(1.0 / 65536))
    return out


def cv_equalize_hist(img):
    """cv2.equalizeHist: the cumulative histogram from the first used level, scaled by 255 /
    (pixels - count of that level) in float32 and rounded."""
    hist = np.bincount(img.ravel(), minlength=256)
    total = img.size
    i = int(np.nonzero(hist)[0][0])
    if hist[i] == total:
        return np.full_like(img, i)
    scale = np.float32(255.0) / np.float32(total - hist[i])
    lut = np.zeros(256, dtype=np.uint8)
    s = 0
    for j in range(i + 1, 256):
        s += int(hist[j])
        lut[j] = np.clip(np.rint(np.float32(s) * scale), 0, 255)
    return lut[img]
