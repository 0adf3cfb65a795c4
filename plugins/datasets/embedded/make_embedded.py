#!/usr/bin/env python3
"""Makes rossl's embedded dataset: a class-balanced subset of Fashion-MNIST.

Reads the Debian package's IDX files (package `dataset-fashion-mnist`, files under
/usr/share/datasets/fashion-mnist) and writes, next to this script, gzipped IDX files with the
first TRAIN_PER_CLASS training images of each class and the first TEST_PER_CLASS test images of
each class, in file order. No randomness and a zero gzip timestamp: the output is byte-identical
on every run.

    python3 plugins/datasets/embedded/make_embedded.py [SOURCE_DIR]
"""
import gzip
import os
import struct
import sys

TRAIN_PER_CLASS = 1000
TEST_PER_CLASS = 200
SOURCE = sys.argv[1] if len(sys.argv) > 1 else "/usr/share/datasets/fashion-mnist"
HERE = os.path.dirname(os.path.abspath(__file__))


def read_idx(path):
    with gzip.open(path) as f:
        data = f.read()
    ndims = data[3]
    dims = struct.unpack(">" + "I" * ndims, data[4 : 4 + 4 * ndims])
    return dims, data[4 + 4 * ndims :]


def write_idx(path, dims, payload):
    header = bytes([0, 0, 0x08, len(dims)]) + struct.pack(">" + "I" * len(dims), *dims)
    with open(path, "wb") as raw:
        with gzip.GzipFile(filename="", mode="wb", compresslevel=9, fileobj=raw, mtime=0) as f:
            f.write(header + payload)


def subset(prefix, per_class):
    (n, h, w), images = read_idx(os.path.join(SOURCE, f"{prefix}-images-idx3-ubyte.gz"))
    (_,), labels = read_idx(os.path.join(SOURCE, f"{prefix}-labels-idx1-ubyte.gz"))
    counts, chosen = [0] * 10, []
    for i, label in enumerate(labels):
        if counts[label] < per_class:
            counts[label] += 1
            chosen.append(i)
    size = h * w
    out_images = b"".join(images[i * size : (i + 1) * size] for i in chosen)
    out_labels = bytes(labels[i] for i in chosen)
    write_idx(os.path.join(HERE, f"{prefix}-images-idx3-ubyte.gz"), (len(chosen), h, w), out_images)
    write_idx(os.path.join(HERE, f"{prefix}-labels-idx1-ubyte.gz"), (len(chosen),), out_labels)
    print(f"{prefix}: {len(chosen)} images, {counts} per class")


subset("train", TRAIN_PER_CLASS)
subset("t10k", TEST_PER_CLASS)
