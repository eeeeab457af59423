#!/usr/bin/python3
"""Writes the chunked-volume interop fixtures under tests/data/chunked/.

The fixtures are written by the reference implementations, not by emtriplet:
Debian's python3-zarr 2.13 (Zarr v2 arrays, an OME-Zarr 0.4 group, and N5
through zarr.n5.N5Store) with python3-numcodecs for every codec. Zarr v3 (and OME-Zarr 0.5 on it) has no writer in Debian
either (python3-zarr 2.13 only knows a pre-release draft), so v3 arrays are
written here by hand after the Zarr v3.0 core specification
(zarr-specs.readthedocs.io, "Zarr core specification version 3.0": zarr.json,
chunk_grid regular, chunk_key_encoding default "c/0/0/0" and v2 "0.0.0",
codecs transpose / bytes / gzip / zstd / blosc), with numcodecs compressing
the chunk payloads; OME-Zarr 0.5 after ngff.openmicroscopy.org/0.5 (the
"ome" key of the group's attributes). Neuroglancer
precomputed volumes have no writer in Debian; they are written here by hand,
following neuroglancer's own description of the format,
src/datasource/precomputed/volume.md in github.com/google/neuroglancer
("info" JSON file, scales[], unsharded chunk files named
xBegin-xEnd_yBegin-yEnd_zBegin-zEnd, raw little-endian samples with x fastest,
jpeg chunks as one image x wide and y*z high), with gzip-compressed chunk files
stored under NAME.gz as CloudVolume writes them.

The committed fixtures are what the tests read (tests/emio/test_chunked.cpp);
Python is needed only to regenerate them:

    bash scripts/setup.sh --fixtures     # python3-zarr python3-numcodecs python3-opencv
    /usr/bin/python3 tests/data/make_zarr_fixtures.py

Every array holds the same deterministic content (`volume(dtype)`), 5 x 13 x 19
voxels (z, y, x) in chunks of 3 x 8 x 16, so edge chunks are partial on every
axis. Expected contents: expected_u8.bin / expected_u16.bin (C order,
little-endian) and one file per fixture that differs (missing chunk, jpeg,
scale 1), each listed in fixtures.json with its SHA-256.
"""
import hashlib
import json
import os
import shutil
import sys
import warnings

import time

import numpy as np
import zarr

# gzip headers carry the time of writing; a fixed time makes regenerated
# fixtures byte-identical to the committed ones.
time.time = lambda: 0.0
from numcodecs import GZip, LZMA, Blosc, Zlib, Zstd

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "chunked")
SHAPE = (5, 13, 19)
CHUNKS = (3, 8, 16)
RES = [40.0, 4.0, 4.0]  # z, y, x nm


def volume(dtype):
    z, y, x = np.meshgrid(*[np.arange(n) for n in SHAPE], indexing="ij")
    rng = np.random.RandomState(13)
    v = (x * 5 + y * 3 + z * 17) % 256 + rng.randint(0, 4, SHAPE)
    v = np.clip(v, 0, 255)
    if dtype == np.uint16:
        return (1000 + v * 211).astype(np.uint16)  # uses both bytes
    return v.astype(np.uint8)


fixtures = []
expected_files = {}


def expected(name, data):
    """Stores `data` (C order, little-endian) once and returns its file name."""
    data = np.ascontiguousarray(data).astype(data.dtype.newbyteorder("<"))
    raw = data.tobytes()
    digest = hashlib.sha256(raw).hexdigest()
    if digest not in expected_files:
        expected_files[digest] = name
        with open(os.path.join(OUT, name), "wb") as f:
            f.write(raw)
    return expected_files[digest], digest


def record(path, kind, data, resolution=None, expect_name=None, **extra):
    name = expect_name or ("expected_u8.bin" if data.dtype == np.uint8 else "expected_u16.bin")
    fname, digest = expected(name, data)
    entry = {"path": path, "kind": kind, "bits": 8 * data.dtype.itemsize,
             "shape": list(data.shape), "expected": fname, "sha256": digest}
    if resolution is not None:
        entry["resolution"] = resolution
    entry.update(extra)
    fixtures.append(entry)


def zarr_array(name, dtype, compressor, order="C", sep=".", fill_value=0, drop_chunk=None):
    data = volume(np.dtype(dtype).type)
    store = zarr.DirectoryStore(os.path.join(OUT, name), dimension_separator=sep)
    a = zarr.create(shape=SHAPE, chunks=CHUNKS, dtype=dtype, compressor=compressor, order=order,
                    fill_value=fill_value, store=store, overwrite=True)
    a[:] = data
    a.attrs["resolution"] = RES  # funlib's convention for plain arrays
    want = data.copy()
    if drop_chunk is not None:
        cz, cy, cx = drop_chunk
        os.remove(os.path.join(OUT, name, sep.join(str(i) for i in drop_chunk)))
        want[cz * CHUNKS[0]:(cz + 1) * CHUNKS[0], cy * CHUNKS[1]:(cy + 1) * CHUNKS[1],
             cx * CHUNKS[2]:(cx + 1) * CHUNKS[2]] = fill_value
    record(name, "zarr", want, RES,
           expect_name=None if drop_chunk is None else name + ".expected.bin")


def n5_dataset(container, dataset, dtype, compressor):
    data = volume(dtype)
    store = zarr.N5Store(os.path.join(OUT, container))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "not all N5 implementations support blosc"
        a = zarr.create(shape=SHAPE, chunks=CHUNKS, dtype=dtype, compressor=compressor, store=store,
                        path=dataset, overwrite=True)
    a[:] = data
    a.attrs["pixelResolution"] = {"dimensions": RES[::-1], "unit": "nm"}  # n5-viewer's, x first
    record(container + ":" + dataset, "n5", data, RES)


def ome_zarr(name):
    """OME-Zarr 0.4: a leading channel axis of size 1, two levels, micrometre units."""
    data = volume(np.uint8)
    root = zarr.open_group(zarr.DirectoryStore(os.path.join(OUT, name)), mode="w")
    levels = [data, data[:, ::2, ::2]]
    datasets = []
    for i, level in enumerate(levels):
        a = root.create_dataset(str(i), shape=(1,) + level.shape, chunks=(1,) + CHUNKS, dtype=np.uint8,
                                compressor=Blosc(cname="zstd", clevel=3, shuffle=Blosc.SHUFFLE),
                                dimension_separator="/")
        a[0] = level
        datasets.append({"path": str(i), "coordinateTransformations": [
            {"type": "scale", "scale": [1.0, 0.04, 0.004 * 2 ** i, 0.004 * 2 ** i]}]})
    root.attrs["multiscales"] = [{
        "version": "0.4", "name": name,
        "axes": [{"name": "c", "type": "channel"}] +
                [{"name": a, "type": "space", "unit": "micrometer"} for a in "zyx"],
        "datasets": datasets,
        "coordinateTransformations": [{"type": "scale", "scale": [1.0, 1.0, 1.0, 1.0]}],
    }]
    record(name, "ome-zarr", levels[0], RES)
    record(name + ":1", "ome-zarr", levels[1], [40.0, 8.0, 8.0], expect_name="ome_level1.bin")


def zarr3_array(name, dtype, compressor=None, order="C", big_endian=False, keys=("default", "/"),
                fill_value=0, drop_chunk=None, data=None, root=OUT, attributes=None, record_it=True):
    """A Zarr v3 array written after the v3.0 core specification."""
    data = volume(dtype) if data is None else data
    path = os.path.join(root, name)
    os.makedirs(path)
    codecs = []
    if order == "F":
        codecs.append({"name": "transpose", "configuration": {"order": list(range(data.ndim))[::-1]}})
    codecs.append({"name": "bytes", "configuration": {"endian": "big" if big_endian else "little"}})
    if compressor is not None:
        codecs.append(compressor[0])
    meta = {"zarr_format": 3, "node_type": "array", "shape": list(data.shape), "data_type": np.dtype(dtype).name,
            "chunk_grid": {"name": "regular", "configuration": {"chunk_shape": list(CHUNKS[-data.ndim:])}},
            "chunk_key_encoding": {"name": keys[0], "configuration": {"separator": keys[1]}},
            "fill_value": fill_value, "codecs": codecs, "attributes": attributes or {"resolution": RES}}
    with open(os.path.join(path, "zarr.json"), "w") as f:
        json.dump(meta, f, indent=1)
    grid = [(n + c - 1) // c for n, c in zip(data.shape, CHUNKS[-data.ndim:])]
    want = data.copy()
    for idx in np.ndindex(*grid):
        block = np.full(CHUNKS[-data.ndim:], fill_value, dtype=data.dtype)  # edge chunks padded with the fill value
        src = tuple(slice(i * c, min((i + 1) * c, n)) for i, c, n in zip(idx, CHUNKS[-data.ndim:], data.shape))
        block[tuple(slice(0, sl.stop - sl.start) for sl in src)] = data[src]
        if drop_chunk is not None and tuple(idx) == tuple(drop_chunk):
            want[src] = fill_value
            continue
        if order == "F":
            block = block.transpose()
        raw = np.ascontiguousarray(block).astype(block.dtype.newbyteorder(">" if big_endian else "<")).tobytes()
        payload = compressor[1].encode(raw) if compressor is not None else raw
        key = keys[1].join(str(i) for i in idx)
        if keys[0] == "default":
            key = "c" + keys[1] + key
        out = os.path.join(path, *key.split("/"))
        os.makedirs(os.path.dirname(out), exist_ok=True)
        with open(out, "wb") as f:
            f.write(bytes(payload))
    if record_it:
        record(name, "zarr", want, RES, expect_name=None if drop_chunk is None else name + ".expected.bin")


def ome_zarr_05(name):
    """OME-Zarr 0.5: a Zarr v3 group whose attributes hold "ome" {version, multiscales}."""
    data = volume(np.uint8)
    root = os.path.join(OUT, name)
    os.makedirs(root)
    levels = [data, data[:, ::2, ::2]]
    datasets = []
    for i, level in enumerate(levels):
        zarr3_array(str(i), np.uint8, (GZIP3, GZip(level=5)), data=level, root=root, attributes={}, record_it=False)
        datasets.append({"path": str(i), "coordinateTransformations": [{"type": "scale", "scale": [40.0, 4.0 * 2 ** i, 4.0 * 2 ** i]}]})
    group = {"zarr_format": 3, "node_type": "group", "attributes": {"ome": {"version": "0.5", "multiscales": [{
        "name": name, "axes": [{"name": a, "type": "space", "unit": "nanometer"} for a in "zyx"], "datasets": datasets}]}}}
    with open(os.path.join(root, "zarr.json"), "w") as f:
        json.dump(group, f, indent=1)
    record(name, "ome-zarr", levels[0], RES)
    record(name + ":1", "ome-zarr", levels[1], [40.0, 8.0, 8.0], expect_name="ome_level1.bin")


GZIP3 = {"name": "gzip", "configuration": {"level": 5}}


def precomputed(name, dtype, encoding, gzip_chunks=False, scales=1):
    import cv2
    import gzip as gz
    data = volume(dtype)
    offset = [3, 5, 7]  # x, y, z
    chunk_xyz = [CHUNKS[2], CHUNKS[1], CHUNKS[0]]
    info = {"type": "image", "data_type": np.dtype(dtype).name, "num_channels": 1, "scales": []}
    levels = [data] + [data[:, ::2 ** s, ::2 ** s] for s in range(1, scales)]
    root = os.path.join(OUT, name)
    os.makedirs(root)
    decoded = []
    for s, level in enumerate(levels):
        key = "%d_%d_%d" % (4 * 2 ** s, 4 * 2 ** s, 40)
        size = [level.shape[2], level.shape[1], level.shape[0]]
        info["scales"].append({"key": key, "size": size, "resolution": [4 * 2 ** s, 4 * 2 ** s, 40],
                               "voxel_offset": offset, "chunk_sizes": [chunk_xyz], "encoding": encoding})
        os.makedirs(os.path.join(root, key))
        got = np.zeros_like(level)
        for z0 in range(0, size[2], chunk_xyz[2]):
            for y0 in range(0, size[1], chunk_xyz[1]):
                for x0 in range(0, size[0], chunk_xyz[0]):
                    z1, y1, x1 = min(z0 + chunk_xyz[2], size[2]), min(y0 + chunk_xyz[1], size[1]), min(x0 + chunk_xyz[0], size[0])
                    block = level[z0:z1, y0:y1, x0:x1]  # (z, y, x) C order == x fastest
                    fname = "%d-%d_%d-%d_%d-%d" % (x0 + offset[0], x1 + offset[0], y0 + offset[1], y1 + offset[1],
                                                   z0 + offset[2], z1 + offset[2])
                    if encoding == "raw":
                        payload = block.astype(block.dtype.newbyteorder("<")).tobytes()
                        got[z0:z1, y0:y1, x0:x1] = block
                    else:  # jpeg: one grey image, x wide, y*z high
                        img = block.reshape((z1 - z0) * (y1 - y0), x1 - x0)
                        ok, enc = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, 90])
                        assert ok
                        payload = enc.tobytes()
                        got[z0:z1, y0:y1, x0:x1] = cv2.imdecode(enc, cv2.IMREAD_GRAYSCALE).reshape(block.shape)
                    path = os.path.join(root, key, fname)
                    if gzip_chunks:
                        with open(path + ".gz", "wb") as f:
                            f.write(gz.compress(payload, mtime=0))
                    else:
                        with open(path, "wb") as f:
                            f.write(payload)
        decoded.append(got)
    with open(os.path.join(root, "info"), "w") as f:
        json.dump(info, f, indent=1)
    for s, got in enumerate(decoded):
        exp = None if encoding == "raw" and s == 0 else "%s.scale%d.expected.bin" % (name, s)
        record(name + ("" if s == 0 else ":%d" % s), "precomputed", got, [40.0, 4.0 * 2 ** s, 4.0 * 2 ** s],
               expect_name=exp)


def main():
    if os.path.exists(OUT):
        shutil.rmtree(OUT)
    os.makedirs(OUT)
    # Zarr v2: every compressor, both dtypes and byte orders, both orders and separators.
    zarr_array("raw_u8.zarr", "|u1", None)
    zarr_array("zlib_u8.zarr", "|u1", Zlib(level=6))
    zarr_array("gzip_u16le.zarr", "<u2", GZip(level=5))
    zarr_array("zstd_u16be_F.zarr", ">u2", Zstd(level=3), order="F")
    zarr_array("none_u16le_F_slash.zarr", "<u2", None, order="F", sep="/")
    zarr_array("lzma_u8.zarr", "|u1", LZMA(preset=1))
    zarr_array("blosc_lz4_byteshuffle_u16le.zarr", "<u2", Blosc(cname="lz4", clevel=5, shuffle=Blosc.SHUFFLE))
    zarr_array("blosc_lz4hc_noshuffle_u8.zarr", "|u1", Blosc(cname="lz4hc", clevel=5, shuffle=Blosc.NOSHUFFLE))
    zarr_array("blosc_zstd_bitshuffle_u16be.zarr", ">u2", Blosc(cname="zstd", clevel=5, shuffle=Blosc.BITSHUFFLE))
    zarr_array("blosc_zlib_byteshuffle_u8_slash.zarr", "|u1", Blosc(cname="zlib", clevel=5, shuffle=Blosc.SHUFFLE), sep="/")
    zarr_array("blosc_blosclz_bitshuffle_u8.zarr", "|u1", Blosc(cname="blosclz", clevel=5, shuffle=Blosc.BITSHUFFLE))
    zarr_array("fill_missing_u16le.zarr", "<u2", Zstd(level=1), fill_value=777, drop_chunk=(1, 1, 0))
    # N5 through zarr's N5Store: raw, gzip, zlib-flavoured gzip, zstd, blosc, xz.
    n5_dataset("vol.n5", "raw_u8", np.uint8, None)
    n5_dataset("vol.n5", "gzip_u16", np.uint16, GZip(level=5))
    n5_dataset("vol.n5", "zlib_u8", np.uint8, Zlib(level=5))
    n5_dataset("vol.n5", "zstd_u16", np.uint16, Zstd(level=3))
    n5_dataset("vol.n5", "blosc_u16", np.uint16, Blosc(cname="lz4", clevel=5, shuffle=Blosc.SHUFFLE))
    n5_dataset("vol.n5", "xz_u8", np.uint8, LZMA(preset=1))
    ome_zarr("ome.zarr")
    # Zarr v3 (by hand after the v3.0 core spec; payloads compressed by numcodecs).
    zarr3_array("v3_gzip_u16le.zarr", np.uint16, (GZIP3, GZip(level=5)))
    zarr3_array("v3_zstd_u16be_F_dotkeys.zarr", np.uint16, ({"name": "zstd", "configuration": {"level": 3, "checksum": False}}, Zstd(level=3)),
                order="F", big_endian=True, keys=("default", "."))
    zarr3_array("v3_blosc_bitshuffle_u8_v2keys.zarr", np.uint8,
                ({"name": "blosc", "configuration": {"cname": "lz4", "clevel": 5, "shuffle": "bitshuffle", "typesize": 1, "blocksize": 0}},
                 Blosc(cname="lz4", clevel=5, shuffle=Blosc.BITSHUFFLE)), keys=("v2", "."))
    zarr3_array("v3_raw_missing_u8.zarr", np.uint8, None, fill_value=5, drop_chunk=(1, 0, 1))
    ome_zarr_05("ome05.zarr")
    precomputed("pc_raw_u8", np.uint8, "raw", scales=2)
    precomputed("pc_gzip_u16", np.uint16, "raw", gzip_chunks=True)
    precomputed("pc_jpeg_u8", np.uint8, "jpeg")
    with open(os.path.join(OUT, "fixtures.json"), "w") as f:
        json.dump({"generator": "tests/data/make_zarr_fixtures.py", "zarr": zarr.__version__,
                   "numcodecs": __import__("numcodecs").__version__, "fixtures": fixtures}, f, indent=1)
    total = sum(os.path.getsize(os.path.join(d, n)) for d, _, names in os.walk(OUT) for n in names)
    print("wrote %d fixtures, %d bytes, under %s" % (len(fixtures), total, OUT), file=sys.stderr)


if __name__ == "__main__":
    main()
