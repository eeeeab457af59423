#!/usr/bin/python3
"""The fault suite: bad inputs, bad values, unsafe outputs, full disks,
signals and concurrent runs through all eight tools, as a table.

    run_faults.py --bin BUILD/apps --source SRC --group GROUP [--work DIR]

Groups (one ctest each, so they run in parallel): inputs, ssan, outputs,
signals. Each case is a row: the command, the expected exit code, a
substring of the one-line error, and the contract checks of faultlib.Suite
(protected trees unchanged, no temporaries, no partial output, no crash).
"""
import argparse
import json
import os
import shutil
import signal
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import faultlib as fl  # noqa: E402

ap = argparse.ArgumentParser()
ap.add_argument("--bin", required=True)
ap.add_argument("--source", required=True)
ap.add_argument("--group", required=True, choices=["inputs", "ssan", "outputs", "signals", "all"])
ap.add_argument("--work")
ap.add_argument("--keep", action="store_true")
args = ap.parse_args()

BIN = os.path.abspath(args.bin)
TINY = os.path.join(os.path.abspath(args.source), "data_specs", "ssan_tiny.ini")
WORK = args.work or tempfile.mkdtemp(prefix=f"emt-faults-{args.group}-")
os.makedirs(WORK, exist_ok=True)
F = os.path.join(WORK, "fixtures")
suite = fl.Suite(args.group, WORK)
SIGNAL_LIMIT = 5.0  # seconds from the signal to the exit (the contract says 1-2 s; slack for a loaded CI machine)


def tool(name):
    return os.path.join(BIN, name)


def must(cmd, cwd=None, **kw):
    r = fl.run(cmd, cwd or WORK, **kw)
    if r.rc != 0:
        raise SystemExit(f"fixture command failed ({r.rc}): {' '.join(cmd)}\n{r.err}")
    return r


SPEC = """[output]
tile_size = 64
stride = 64
[align]
search_radius = 6
[filters]
min_ncc = 0.3
[source.ph]
path = {path}
"""


def fixtures():
    """Small inputs every case reads (never written by a case: hashed)."""
    if os.path.exists(os.path.join(F, "done")):
        return
    os.makedirs(F, exist_ok=True)
    must([tool("em-phantom"), "--size", "14x160x160", "--cell-size", "40", "--max-drift", "2", "--defect-rate", "0",
          "--out", os.path.join(F, "ph.h5"), "-q"])
    with open(os.path.join(F, "spec.ini"), "w") as f:
        f.write(SPEC.format(path=os.path.join(F, "ph.h5")))
    must([tool("triplet-build"), "--config", os.path.join(F, "spec.ini"), "--out", os.path.join(F, "b"), "-q"])
    must([tool("triplet-split"), os.path.join(F, "b"), "--group", "z-block:3", "-q"])
    must([tool("em-phantom"), "--size", "6x96x96", "--format", "png", "--defect-rate", "0", "--out", os.path.join(F, "stack"), "-q",
          "--truth", os.path.join(F, "stack.truth.json")])
    open(os.path.join(F, "done"), "w").close()


def checkpoint():
    """A tiny trained model (3 steps) for the ssan tools."""
    run = os.path.join(F, "run")
    if not os.path.exists(os.path.join(run, "last.pt")):
        # A relative --data from the fixtures directory: run.json must record it
        # absolute, or --resume from elsewhere (a case below) fails.
        must([tool("ssan-train"), "--config", TINY, "--data", "b", "--out", run, "--crop", "32", "--batch", "2",
              "--max-steps", "3", "--val-split", "none", "--quiet", "--threads", "2"], cwd=F)
    return os.path.join(run, "last.pt")


COUNTER = [0]


def case_dir(name):
    COUNTER[0] += 1
    d = os.path.join(WORK, f"c{COUNTER[0]:03d}-{name}")
    os.makedirs(d)
    return d


def case(name, kind, toolname, argv, rc, err=None, setup=None, outputs=(), fsize=None, protect_case=True, after=None, cwd=None, temps_ok=False):
    """One row of the table. argv may use {F} (fixtures) and {C} (this case's directory)."""
    C = case_dir(name)
    if setup:
        setup(C)
    fmt = lambda a: a.format(F=F, C=C)  # noqa: E731
    cmd = [tool(toolname)] + [fmt(a) for a in argv]
    outs = [fmt(o) for o in outputs]
    existed = [os.path.lexists(o) for o in outs]
    protected = [F] + ([os.path.join(C, "in")] if protect_case and os.path.exists(os.path.join(C, "in")) else [])
    before = [fl.tree_digest(p) for p in protected]
    res = fl.run(cmd, cwd or C, fsize=fsize)
    ok = suite.expect(name, kind, toolname, res, rc, err, protected=protected, before=before, outputs=outs, outputs_existed=existed,
                      temp_roots=[F] if temps_ok else [F, C])
    if ok and after:
        why = after(C, res)
        if why:
            suite.failures.append(f"{name}: {why}")
            suite.passed -= 1
    return res


def copy_build(C, name="in"):
    shutil.copytree(os.path.join(F, "b"), os.path.join(C, name))
    return os.path.join(C, name)


def write(path, data, mode="w"):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, mode) as f:
        f.write(data)


def edit_manifest(C, fn):
    d = copy_build(C)
    p = os.path.join(d, "manifest.json")
    m = json.load(open(p))
    fn(m)
    write(p, json.dumps(m))


def spec_with(extra, path=None):
    def setup(C):
        write(os.path.join(C, "in", "s.ini"), SPEC.format(path=path or os.path.join(F, "ph.h5")) + extra)
    return setup


def stack_with(fn):
    """A copy of the PNG stack, altered by fn(dir)."""
    def setup(C):
        d = os.path.join(C, "in", "stack")
        shutil.copytree(os.path.join(F, "stack"), d)
        fn(d)
    return setup


# ---------------------------------------------------------------------------
def group_inputs():
    B = ["--config", "{C}/in/s.ini", "--out", "{C}/out", "-q"]
    # Spec values: every one range-checked before work, NaN included.
    for name, extra, err in [
        ("spec-min-ncc-nan", "[filters]\nmin_ncc = nan\n", "min_ncc"),
        ("spec-max-flat-negative", "[filters]\nmax_flat_fraction = -1\n", "max_flat_fraction"),
        ("spec-defect-fraction-2", "[filters]\nmax_defect_fraction = 2\n", "max_defect_fraction"),
        ("spec-percentiles-inverted", "[uint16]\nlow_percentile = 99\nhigh_percentile = 1\n", "percentile"),
        ("spec-percentile-nan", "[uint16]\nlow_percentile = nan\n", "percentile"),
        ("spec-duplicate-source", "[source.ph]\npath = {F}/ph.h5\n".format(F=F), "given twice"),
        ("spec-skip-out-of-range", "skip = 500\n", "skip entry 500"),
        ("spec-tile-too-small", "", "tile_size"),
        ("spec-unknown-key", "[filters]\nmin_nccc = 0.3\n", "unknown spec key"),
        ("spec-not-a-number", "[output]\nshard_size = lots\n", "bad spec"),
        ("spec-blur-ratio-nan", "[filters]\nmax_blur_ratio = nan\n", "max_blur_ratio"),
        ("spec-step-zero", "step = 0\n", "step"),
    ]:
        setup = spec_with(extra) if name != "spec-tile-too-small" else (lambda C: write(os.path.join(C, "in", "s.ini"),
                                                                                        SPEC.format(path=F + "/ph.h5").replace("tile_size = 64", "tile_size = 8")))
        case(name, "bad spec value", "triplet-build", B, 2, err, setup=setup, outputs=["{C}/out"])
    case("spec-missing-file", "bad spec value", "triplet-build", ["--config", "{C}/none.ini", "--out", "{C}/out"], 1, "none.ini", outputs=["{C}/out"])
    # CLI values.
    for name, argv, err in [
        ("build-tile-size-8", ["--tile-size", "8"], "tile_size"),
        ("build-step-0", ["--source", "{F}/ph.h5", "--step", "0"], "step"),
        ("build-unknown-option", ["--frobnicate"], "frobnicate"),
        ("build-no-out", None, "--out"),
    ]:
        a = ["--config", "{F}/spec.ini", "--out", "{C}/out", "-q"] + (argv or [])
        if argv is None:
            a = ["--config", "{F}/spec.ini"]
        case(name, "bad CLI value", "triplet-build", a, 2, err, outputs=["{C}/out"])
    # Inputs of every format: missing, corrupt, truncated, wrong type.
    src = lambda p: ["--source", p, "--out", "{C}/out", "--tile-size", "32", "-q"]  # noqa: E731
    case("hdf5-missing", "corrupt input", "triplet-build", src("{C}/none.h5"), 1, "none.h5", outputs=["{C}/out"])
    case("hdf5-truncated", "corrupt input", "triplet-build", src("{C}/in/t.h5"), 1, "t.h5",
         setup=lambda C: write(os.path.join(C, "in", "t.h5"), open(F + "/ph.h5", "rb").read()[:5000], "wb"), outputs=["{C}/out"])
    case("hdf5-not-hdf5", "corrupt input", "triplet-build", src("{C}/in/x.h5"), 1, "x.h5",
         setup=lambda C: write(os.path.join(C, "in", "x.h5"), "just text\n"), outputs=["{C}/out"])
    case("hdf5-wrong-dataset", "corrupt input", "triplet-build", src("{F}/ph.h5:volumes/nothing"), 1, "volumes/nothing", outputs=["{C}/out"])
    case("hdf5-empty-file", "corrupt input", "triplet-build", src("{C}/in/e.h5"), 1, "e.h5",
         setup=lambda C: write(os.path.join(C, "in", "e.h5"), ""), outputs=["{C}/out"])
    case("png-zero-bytes", "corrupt input", "triplet-build", src("{C}/in/stack"), 1, "0002.png",
         setup=stack_with(lambda d: write(os.path.join(d, "0002.png"), "")), outputs=["{C}/out"])

    def skipped(C, res):
        m = json.load(open(os.path.join(C, "out", "manifest.json")))
        return None if m["sources"][0]["bad_slices"] == [2] else f"bad_slices {m['sources'][0]['bad_slices']}, expected [2]"
    case("png-zero-bytes-skip-bad-slices", "corrupt input", "triplet-build",
         ["--source", "{C}/in/stack", "--out", "{C}/out", "--tile-size", "32", "--skip-bad-slices", "-q"], 0,
         setup=stack_with(lambda d: write(os.path.join(d, "0002.png"), "")), after=skipped)
    case("png-truncated", "corrupt input", "triplet-build", src("{C}/in/stack"), 1, "0003.png",
         setup=stack_with(lambda d: write(os.path.join(d, "0003.png"), open(os.path.join(d, "0003.png"), "rb").read()[:300], "wb")),
         outputs=["{C}/out"])

    def bad_crc(d):
        b = bytearray(open(os.path.join(d, "0001.png"), "rb").read())
        b[60] ^= 0xFF
        write(os.path.join(d, "0001.png"), bytes(b), "wb")
    case("png-bad-crc", "corrupt input", "triplet-build", src("{C}/in/stack"), 1, "0001.png", setup=stack_with(bad_crc), outputs=["{C}/out"])
    case("png-not-an-image", "corrupt input", "triplet-build", src("{C}/in/stack"), 1, "0004.png",
         setup=stack_with(lambda d: write(os.path.join(d, "0004.png"), "GIF89a not a png at all")), outputs=["{C}/out"])
    case("png-size-differs", "corrupt input", "triplet-build", src("{C}/in/stack"), 1, "0003.png",
         setup=stack_with(lambda d: write(os.path.join(d, "0003.png"), fl.png_bytes(fl.noise_rows(80, 96, 3)), "wb")), outputs=["{C}/out"])
    case("png-rgb-colour-refused", "corrupt input", "triplet-build", src("{C}/in/stack"), 1, "colour",
         setup=stack_with(lambda d: write(os.path.join(d, "0001.png"), fl.png_bytes(fl.rgb_rows(fl.noise_rows(96, 96, 1), False), 3), "wb")),
         outputs=["{C}/out"])
    case("png-rgb-equal-channels-accepted", "corrupt input", "triplet-build",
         ["--source", "{C}/in/stack", "--out", "{C}/out", "--tile-size", "32", "-q"], 0,
         setup=stack_with(lambda d: write(os.path.join(d, "0001.png"), fl.png_bytes(fl.rgb_rows(fl.noise_rows(96, 96, 1), True), 3), "wb")))
    pages = [fl.noise_rows(64, 64, k) for k in range(12)]
    whole = fl.multipage_tiff(pages)
    case("tiff-multipage-ok", "corrupt input", "triplet-build", ["--source", "{C}/in/v.tif", "--out", "{C}/out", "--tile-size", "32", "-q"], 0,
         setup=lambda C: write(os.path.join(C, "in", "v.tif"), whole, "wb"),
         after=lambda C, r: None if json.load(open(C + "/out/manifest.json"))["sources"][0]["shape"][0] == 12 else "not 12 pages")
    case("tiff-multipage-truncated", "corrupt input", "triplet-build", ["--source", "{C}/in/v.tif", "--out", "{C}/out", "--tile-size", "32", "-q"],
         1, "v.tif", setup=lambda C: write(os.path.join(C, "in", "v.tif"), whole[: len(whole) * 7 // 12], "wb"), outputs=["{C}/out"])
    case("tiff-garbage", "corrupt input", "triplet-build", ["--source", "{C}/in/v.tif", "--out", "{C}/out", "-q"], 1, "v.tif",
         setup=lambda C: write(os.path.join(C, "in", "v.tif"), "II*\x00garbage"), outputs=["{C}/out"])
    case("stack-dir-missing", "corrupt input", "triplet-build", src("{C}/nodir"), 1, "nodir", outputs=["{C}/out"])

    # Shard directories: manifests, shards, split files.
    def corrupt_shard(C):
        d = copy_build(C)
        p = os.path.join(d, "shard-00000.h5")
        b = bytearray(open(p, "rb").read())
        b[len(b) // 2] ^= 0xFF
        write(p, bytes(b), "wb")
    for t, argv in [("triplet-split", ["{C}/in"]), ("triplet-inspect", ["{C}/in", "--verify"]),
                    ("triplet-export", ["{C}/in", "--out", "{C}/x"])]:
        protect = t != "triplet-split"
        case(f"{t}-corrupt-shard", "corrupt shard/manifest/split", t, argv + ["-q"], 1, "shard-00000.h5" if t != "triplet-inspect" else "problem",
             setup=corrupt_shard, outputs=["{C}/x"], protect_case=protect)
    for t, argv in [("triplet-split", ["{C}/in"]), ("triplet-inspect", ["{C}/in"]), ("triplet-export", ["{C}/in", "--out", "{C}/x"])]:
        case(f"{t}-manifest-not-json", "corrupt shard/manifest/split", t, argv + ["-q"], 1, "manifest.json",
             setup=lambda C: (copy_build(C), write(os.path.join(C, "in", "manifest.json"), "{ not json")), outputs=["{C}/x"])
        case(f"{t}-manifest-wrong-type", "corrupt shard/manifest/split", t, argv + ["-q"], 1, "manifest is damaged",
             setup=lambda C: edit_manifest(C, lambda m: m["shards"][0].__setitem__("count", "many")), outputs=["{C}/x"])
        case(f"{t}-no-manifest", "corrupt shard/manifest/split", t, argv + ["-q"], 1, "manifest",
             setup=lambda C: (copy_build(C), os.remove(os.path.join(C, "in", "manifest.json"))), outputs=["{C}/x"])
    case("split-manifest-shards-not-list", "corrupt shard/manifest/split", "triplet-split", ["{C}/in", "-q"], 1, "manifest is damaged",
         setup=lambda C: edit_manifest(C, lambda m: m.__setitem__("shards", {"a": 1})))
    case("split-manifest-shard-path-escape", "corrupt shard/manifest/split", "triplet-split", ["{C}/in", "-q"], 1, "not a file name",
         setup=lambda C: edit_manifest(C, lambda m: m["shards"][0].__setitem__("file", "../../etc/passwd")))
    case("split-missing-shard", "corrupt shard/manifest/split", "triplet-split", ["{C}/in", "-q"], 1, "missing",
         setup=lambda C: (copy_build(C), os.remove(os.path.join(C, "in", "shard-00000.h5"))))

    def truncated_shard_matching_sha(C):
        d = copy_build(C)
        p = os.path.join(d, "shard-00000.h5")
        write(p, open(p, "rb").read()[:4000], "wb")
        m = json.load(open(os.path.join(d, "manifest.json")))
        m["shards"][0]["sha256"] = fl.file_sha(p)
        write(os.path.join(d, "manifest.json"), json.dumps(m))
    case("split-truncated-shard", "corrupt shard/manifest/split", "triplet-split", ["{C}/in", "-q"], 1, "shard-00000.h5",
         setup=truncated_shard_matching_sha)
    case("export-unresolvable-split-line", "corrupt shard/manifest/split", "triplet-export", ["{C}/in", "--out", "{C}/x", "-q"], 1,
         "not a triplet of the manifest",
         setup=lambda C: (copy_build(C), write(os.path.join(C, "in", "splits", "test.txt"), "shard-00000.h5 9999\n")), outputs=["{C}/x"])
    case("inspect-malformed-split-line", "corrupt shard/manifest/split", "triplet-inspect", ["{C}/in", "-q"], 1, "SHARD INDEX",
         setup=lambda C: (copy_build(C), write(os.path.join(C, "in", "splits", "val.txt"), "shard-00000.h5\n")))
    # An interrupted build's resume state, damaged (its rejected.csv.partial is
    # that build's, kept for --resume: temps_ok; the tree is still hashed).
    def interrupted_build(mutate):
        def setup(C):
            write(os.path.join(C, "in", "s.ini"), SPEC.format(path=os.path.join(F, "ph.h5")).replace("stride = 64", "stride = 64\nshard_size = 4"))
            r = fl.run([tool("triplet-build"), "--config", os.path.join(C, "in", "s.ini"), "--out", os.path.join(C, "in", "b"), "-q",
                        "--stop-after-shards", "1"], C)
            assert r.rc == 1, r.err
            p = os.path.join(C, "in", "b", ".triplet-build-state.json")
            j = json.load(open(p))
            write(p, mutate(j))
        return setup
    R = ["--config", "{C}/in/s.ini", "--out", "{C}/in/b", "--resume", "-q"]
    case("build-resume-state-wrong-type", "corrupt shard/manifest/split", "triplet-build", R, 1, "resume state is damaged",
         setup=interrupted_build(lambda j: json.dumps(dict(j, next_triplet="x"))), temps_ok=True)
    case("build-resume-state-garbage", "corrupt shard/manifest/split", "triplet-build", R, 2, "different spec",
         setup=interrupted_build(lambda j: "{ garbage"), temps_ok=True)
    case("build-unfinished-without-resume", "existing directory", "triplet-build", R[:-2] + ["-q"], 2, "--resume",
         setup=interrupted_build(lambda j: json.dumps(j)), temps_ok=True)
    # triplet-split values.
    for name, argv, err in [("ratios-nan", ["--ratios", "nan:1:1"], "not a number"), ("ratios-two", ["--ratios", "1:1"], "TRAIN:VAL:TEST"),
                            ("ratios-zero", ["--ratios", "0:0:0"], "sum to zero"), ("ratios-negative", ["--ratios", "3:-1:1"], "negative"),
                            ("ratios-inf", ["--ratios", "inf:1:1"], "not a number"), ("group-bad", ["--group", "blocks"], "group")]:
        case("split-" + name, "bad CLI value", "triplet-split", ["{C}/in", "-q"] + argv, 2, err, setup=copy_build)
    case("split-materialize-user-train-dir", "existing directory", "triplet-split", ["{C}/in", "--materialize", "-q"], 2, "not a partition",
         setup=lambda C: (copy_build(C), write(os.path.join(C, "in", "train", "notes.txt"), "mine\n")), protect_case=False,
         after=lambda C, r: None if open(os.path.join(C, "in", "train", "notes.txt")).read() == "mine\n" else "user's train/ changed")
    # triplet-inspect values.
    case("inspect-rows-0", "bad CLI value", "triplet-inspect", ["{F}/b", "--montage", "{C}/m.png", "--rows", "0"], 2, "--rows", outputs=["{C}/m.png"])
    case("inspect-no-dir", "bad CLI value", "triplet-inspect", [], 2, "--dir")
    case("export-bad-format", "bad CLI value", "triplet-export", ["{F}/b", "--format", "hdf5", "--out", "{C}/x"], 2, "--format", outputs=["{C}/x"])
    case("export-no-out", "bad CLI value", "triplet-export", ["{F}/b"], 2, "--out")
    # em-phantom values.
    for name, argv, err in [("size-2d", ["--size", "3x64"], "--size"), ("bits-12", ["--bits", "12"], "--bits"),
                            ("defect-rate-nan", ["--defect-rate", "nan"], "defect rate"), ("defect-rate-2", ["--defect-rate", "2"], "defect rate"),
                            ("drift-negative", ["--max-drift", "-1"], "drift"), ("cell-nan", ["--cell-size", "nan"], "cell size"),
                            ("noise-inf", ["--noise", "inf"], "noise"), ("format-jpeg", ["--format", "jpeg"], "--format"), ("size-zero", ["--size", "0x64x64"], "size"),
                            ("threads-0", ["--threads", "0"], "--threads")]:
        case("phantom-" + name, "bad CLI value", "em-phantom", ["--out", "{C}/v.h5", "-q"] + ([] if "--size" in argv else ["--size", "3x32x32"]) + argv,
             2, err, outputs=["{C}/v.h5"])


# ---------------------------------------------------------------------------
def group_ssan():
    ck = checkpoint()
    def train_args(argv):
        """The tiny training command; argv's options replace the defaults."""
        defaults = {"--config": TINY, "--data": "{F}/b", "--crop": "32", "--batch": "2", "--max-steps": "2", "--val-split": "none", "--threads": "1"}
        for k in argv[::2]:
            defaults.pop(k, None)
        return [x for kv in defaults.items() for x in kv] + ["-q"] + argv
    T = train_args([])
    for name, argv, rc, err in [("crop-larger-than-tiles", ["--out", "{C}/r", "--crop", "1000"], 2, "larger than the tiles"),
                                ("lr-nan", ["--out", "{C}/r", "--lr", "nan"], 2, "lr"),
                                ("batch-0", ["--out", "{C}/r", "--batch", "0"], 2, "batch"),
                                ("data-missing", ["--out", "{C}/r", "--data", "{C}/nothing"], 1, "nothing"),
                                ("split-missing", ["--out", "{C}/r", "--split", "nosuch"], 1, "nosuch")]:
        case("train-" + name, "bad CLI value", "ssan-train", train_args(argv), rc, err, outputs=["{C}/r"])
    case("train-no-config", "bad CLI value", "ssan-train", ["--data", "{F}/b", "--out", "{C}/r"], 2, "config", outputs=["{C}/r"])
    case("train-out-is-data", "output is an input", "ssan-train", T + ["--out", "{F}/b"], 2, "contains an input")
    case("train-out-is-manifest", "output is an input", "ssan-train", T + ["--out", "{F}/b/manifest.json"], 2, "is an input")
    case("train-malformed-split", "corrupt shard/manifest/split", "ssan-train", train_args(["--out", "{C}/r", "--data", "{C}/in", "--split", "few"]), 1,
         "SHARD INDEX", setup=lambda C: (copy_build(C), write(os.path.join(C, "in", "splits", "few.txt"), "shard-00000.h5 x\n")), outputs=["{C}/r"])
    case("train-unresolvable-split", "corrupt shard/manifest/split", "ssan-train", train_args(["--out", "{C}/r", "--data", "{C}/in", "--split", "few"]), 1,
         "few.txt", setup=lambda C: (copy_build(C), write(os.path.join(C, "in", "splits", "few.txt"), "shard-00009.h5 0\n")), outputs=["{C}/r"])

    def run_copy(C):
        shutil.copytree(os.path.join(F, "run"), os.path.join(C, "run"))
    R = ["--resume", "{C}/run", "-q", "--threads", "1"]
    case("train-existing-run-without-resume", "existing directory", "ssan-train", T + ["--out", "{C}/run"], 2, "already holds a checkpoint",
         setup=run_copy, after=lambda C, r: None if fl.file_sha(C + "/run/last.pt") == fl.file_sha(F + "/run/last.pt") else "last.pt changed")
    case("train-resume-other-config", "corrupt checkpoint/resume", "ssan-train", R + ["--config", "{C}/other.ini"], 2, "differs",
         setup=lambda C: (run_copy(C), write(os.path.join(C, "other.ini"), open(TINY).read().replace("features = 8", "features = 12"))))

    def flipped(C):
        run_copy(C)
        fl.flip_byte_in_largest_zip_member(os.path.join(C, "run", "last.pt"))
    case("train-resume-flipped-byte", "corrupt checkpoint/resume", "ssan-train", R, 1, "CRC", setup=flipped)
    case("train-resume-no-run-json", "corrupt checkpoint/resume", "ssan-train", R, 1, "run.json",
         setup=lambda C: (run_copy(C), os.remove(os.path.join(C, "run", "run.json"))))
    case("train-resume-run-json-garbage", "corrupt checkpoint/resume", "ssan-train", R, 1, "run.json",
         setup=lambda C: (run_copy(C), write(os.path.join(C, "run", "run.json"), "{]")))

    def wrong_type(C):
        run_copy(C)
        p = os.path.join(C, "run", "run.json")
        j = json.load(open(p))
        j["batch"] = "three"
        write(p, json.dumps(j))
    case("train-resume-run-json-wrong-type", "corrupt checkpoint/resume", "ssan-train", R, 1, "batch", setup=wrong_type)

    def steps(C, r):
        rows = open(os.path.join(C, "run", "metrics.csv")).read().strip().splitlines()[1:]
        return None if len(rows) == 3 else f"resumed 3-step run went on to {len(rows)} steps"
    case("train-resume-keeps-max-steps", "corrupt checkpoint/resume", "ssan-train", R, 0, setup=run_copy, after=steps, protect_case=False)
    case("train-resume-from-another-directory", "corrupt checkpoint/resume", "ssan-train", ["--resume", "{C}/run", "--max-steps", "4", "-q",
                                                                                           "--threads", "1"], 0,
         setup=run_copy, cwd="/", protect_case=False)
    # Checkpoints for eval and interpolate: flipped, truncated, empty, not a zip, missing.
    bad_ckpts = [("flipped-byte", lambda p: (shutil.copy(ck, p), fl.flip_byte_in_largest_zip_member(p)), "CRC"),
                 ("truncated", lambda p: write(p, open(ck, "rb").read()[: os.path.getsize(ck) // 2], "wb"), "c.pt"),
                 ("empty", lambda p: write(p, ""), "c.pt"),
                 ("not-a-zip", lambda p: write(p, "PK but not really a zip archive\n" * 10), "c.pt")]
    for name, make, err in bad_ckpts:
        setup = (lambda m: (lambda C: m(os.path.join(C, "in", "c.pt")) if os.makedirs(os.path.join(C, "in"), exist_ok=True) is None else None))(make)
        case("eval-checkpoint-" + name, "corrupt checkpoint/resume", "ssan-eval", ["--checkpoint", "{C}/in/c.pt", "--data", "{F}/b", "-q"], 1, err,
             setup=setup)
        case("interpolate-checkpoint-" + name, "corrupt checkpoint/resume", "ssan-interpolate",
             ["--checkpoint", "{C}/in/c.pt", "--input", "{F}/ph.h5", "--slices", "5", "--out", "{C}/o.h5", "-q"], 1, err, setup=setup,
             outputs=["{C}/o.h5", "{C}/o.h5.report.json"])
    case("eval-checkpoint-missing", "corrupt checkpoint/resume", "ssan-eval", ["--checkpoint", "{C}/none.pt", "--data", "{F}/b"], 1, "none.pt")
    E = ["--baselines-only", "--data", "{F}/b", "-q"]
    for name, argv, err in [("blur-sigma-nan", ["--blur-sigma", "nan"], "--blur-sigma"), ("max-samples-negative", ["--max-samples", "-1"], "--max-samples"),
                            ("montage-rows-negative", ["--montage-rows", "-1"], "--montage-rows")]:
        case("eval-" + name, "bad CLI value", "ssan-eval", E + argv + ["--out", "{C}/e"], 2, err, outputs=["{C}/e"])
    case("eval-neither-checkpoint-nor-baselines", "bad CLI value", "ssan-eval", ["--data", "{F}/b"], 2, "--checkpoint")
    case("eval-out-is-data", "output is an input", "ssan-eval", E + ["--out", "{F}/b"], 2, "contains an input")
    case("eval-out-is-checkpoint", "output is an input", "ssan-eval", ["--checkpoint", ck, "--data", "{F}/b", "--out", ck, "-q"], 2, "is an input")
    case("eval-out-nonempty", "existing directory", "ssan-eval", E + ["--out", "{C}/in"], 2, "--force",
         setup=lambda C: write(os.path.join(C, "in", "mine.txt"), "mine\n"))
    case("eval-out-nonempty-force-keeps-foreign", "existing directory", "ssan-eval", E + ["--out", "{C}/e", "--force", "--max-samples", "2"], 0,
         setup=lambda C: write(os.path.join(C, "e", "mine.txt"), "mine\n"),
         after=lambda C, r: None if open(C + "/e/mine.txt").read() == "mine\n" and os.path.exists(C + "/e/eval.json") else "foreign file or eval.json")
    I = ["--checkpoint", ck, "-q"]
    for name, argv, err in [("tile-0", ["--tile", "0"], "--tile"), ("overlap-negative", ["--overlap", "-8"], "--overlap"),
                            ("overlap-too-large", ["--tile", "64", "--overlap", "40"], "--overlap"),
                            ("detect-fraction-negative", ["--detect-fraction", "-1", "--detect-defects"], "--detect-fraction"),
                            ("detect-fraction-nan", ["--detect-fraction", "nan", "--detect-defects"], "--detect-fraction"),
                            ("search-radius-negative", ["--search-radius", "-1"], "--search-radius"),
                            ("slice-outside", ["--slices", "99"], "outside the volume"),
                            ("in-place-and-out", ["--in-place"], "not both")]:
        sl = [] if "--slices" in argv or "--detect-defects" in argv else ["--slices", "5"]
        case("interpolate-" + name, "bad CLI value", "ssan-interpolate", I + ["--input", "{F}/ph.h5", "--out", "{C}/o.h5"] + sl + argv,
             2, err, outputs=["{C}/o.h5"])
    case("interpolate-no-neighbour", "bad CLI value", "ssan-interpolate", I + ["--input", "{F}/ph.h5", "--out", "{C}/o.h5", "--slices", "0"], 1,
         "neighbour", outputs=["{C}/o.h5", "{C}/o.h5.report.json"])
    case("interpolate-no-out", "bad CLI value", "ssan-interpolate", I + ["--input", "{F}/ph.h5", "--slices", "5"], 2, "--out")
    case("interpolate-input-is-out-h5", "output is an input", "ssan-interpolate", I + ["--input", "{F}/ph.h5", "--out", "{F}/ph.h5", "--slices", "5"],
         2, "is an input")
    case("interpolate-input-is-out-stack", "output is an input", "ssan-interpolate", I + ["--input", "{F}/stack", "--out", "{F}/stack", "--slices", "2"],
         2, "is an input")
    case("interpolate-out-inside-stack", "output is an input", "ssan-interpolate",
         I + ["--input", "{F}/stack", "--out", "{F}/stack/fixed", "--slices", "2"], 2, "lies inside")
    case("interpolate-out-is-checkpoint", "output is an input", "ssan-interpolate", I + ["--input", "{F}/ph.h5", "--out", ck, "--slices", "5"],
         2, "is an input")
    case("interpolate-out-existing-stack-dir", "existing directory", "ssan-interpolate",
         I + ["--input", "{F}/stack", "--out", "{C}/in", "--slices", "2"], 2, "--force",
         setup=lambda C: shutil.copytree(os.path.join(F, "stack"), os.path.join(C, "in")))

    def kept(C, r):
        if open(os.path.join(C, "o", "notes.txt")).read() != "mine\n":
            return "foreign file changed"
        if os.path.exists(os.path.join(C, "o", "0099.png")):
            return "stale slice image of the tool's kind kept"
        return None if len([n for n in os.listdir(os.path.join(C, "o")) if n.endswith(".png")]) == 6 else "not 6 slices"
    case("interpolate-force-replaces-only-slices", "existing directory", "ssan-interpolate",
         I + ["--input", "{F}/stack", "--out", "{C}/o", "--slices", "2", "--force", "--tile", "64", "--overlap", "8"], 0,
         setup=lambda C: (write(os.path.join(C, "o", "notes.txt"), "mine\n"), write(os.path.join(C, "o", "0099.png"), "x")), after=kept)
    case("interpolate-out-existing-file-for-stack", "existing directory", "ssan-interpolate",
         I + ["--input", "{F}/stack", "--out", "{C}/in/f", "--slices", "2"], 1, "not a directory",
         setup=lambda C: write(os.path.join(C, "in", "f"), "a file\n"))


# ---------------------------------------------------------------------------
def group_outputs():
    # Outputs that are, contain or lie inside an input.
    case("build-out-is-input-h5", "output is an input", "triplet-build", ["--source", "{F}/ph.h5", "--out", "{F}/ph.h5", "--tile-size", "32", "-q"], 2, "is an input")
    case("build-out-is-stack", "output is an input", "triplet-build", ["--source", "{F}/stack", "--out", "{F}/stack", "--tile-size", "32", "-q"], 2, "is an input")
    case("build-out-inside-stack", "output is an input", "triplet-build", ["--source", "{F}/stack", "--out", "{F}/stack/b", "--tile-size", "32", "-q"], 2, "lies inside")
    case("build-out-contains-input", "output is an input", "triplet-build", ["--source", "{F}/ph.h5", "--out", "{F}", "--tile-size", "32", "-q", "--force"], 2,
         "contains an input")
    case("export-out-is-dir", "output is an input", "triplet-export", ["{F}/b", "--out", "{F}/b", "-q"], 2, "contains an input")
    case("export-out-is-dir-force", "output is an input", "triplet-export", ["{F}/b", "--out", "{F}/b", "--force", "-q"], 2, "contains an input")
    case("export-out-is-manifest", "output is an input", "triplet-export", ["{F}/b", "--out", "{F}/b/manifest.json", "-q"], 2, "is an input")
    case("export-out-is-splits", "output is an input", "triplet-export", ["{F}/b", "--out", "{F}/b/splits", "-q", "--force"], 2, "is an input")
    case("inspect-montage-is-manifest", "output is an input", "triplet-inspect", ["{F}/b", "--montage", "{F}/b/manifest.json", "-q"], 2, "is an input")
    case("inspect-montage-is-shard", "output is an input", "triplet-inspect", ["{F}/b", "--montage", "{F}/b/shard-00000.h5", "-q"], 2, "is an input")
    case("phantom-truth-is-out", "output is an input", "em-phantom", ["--size", "3x32x32", "--out", "{C}/v.h5", "--truth", "{C}/v.h5"], 2, "--truth",
         outputs=["{C}/v.h5"])
    # Existing directories and files.
    case("build-out-foreign-dir", "existing directory", "triplet-build", ["--config", "{F}/spec.ini", "--out", "{C}/in", "-q"], 2, "did not write",
         setup=lambda C: write(os.path.join(C, "in", "notes.txt"), "mine\n"))
    case("build-out-foreign-dir-force", "existing directory", "triplet-build", ["--config", "{F}/spec.ini", "--out", "{C}/o", "-q", "--force"], 0,
         setup=lambda C: write(os.path.join(C, "o", "notes.txt"), "mine\n"),
         after=lambda C, r: None if open(C + "/o/notes.txt").read() == "mine\n" and os.path.exists(C + "/o/manifest.json") else "notes.txt or manifest")
    case("export-out-nonempty", "existing directory", "triplet-export", ["{F}/b", "--out", "{C}/in", "-q"], 2, "--force",
         setup=lambda C: write(os.path.join(C, "in", "notes.txt"), "mine\n"))
    case("export-out-regular-file", "existing directory", "triplet-export", ["{F}/b", "--out", "{C}/in/f", "-q"], 1, "not a directory",
         setup=lambda C: write(os.path.join(C, "in", "f"), "mine\n"))

    def export_kept(C, r):
        if open(os.path.join(C, "x", "notes.txt")).read() != "mine\n":
            return "foreign file changed"
        if os.path.exists(os.path.join(C, "x", "sequences", "stale")):
            return "stale export kept"
        return None if os.path.exists(os.path.join(C, "x", "tri_trainlist.txt")) else "no export"
    case("export-force-replaces-only-own", "existing directory", "triplet-export", ["{F}/b", "--out", "{C}/x", "-q", "--force"], 0,
         setup=lambda C: (write(os.path.join(C, "x", "notes.txt"), "mine\n"), write(os.path.join(C, "x", "sequences", "stale"), "old")), after=export_kept)
    case("phantom-stack-nonempty", "existing directory", "em-phantom", ["--size", "3x32x32", "--format", "png", "--out", "{C}/in", "-q"], 2, "--force",
         setup=lambda C: write(os.path.join(C, "in", "notes.txt"), "mine\n"))
    case("phantom-h5-onto-directory", "existing directory", "em-phantom", ["--size", "3x32x32", "--out", "{C}/in/v.h5", "-q"], 1, "directory",
         setup=lambda C: os.makedirs(os.path.join(C, "in", "v.h5", "keep")))
    # Read-only places. Root ignores permission bits, so chmod cannot make a
    # directory read-only here; /proc refuses new files even to root.
    for t, argv in [("triplet-build", ["--config", "{F}/spec.ini", "--out", "/proc/emt-faults/b"]),
                    ("triplet-export", ["{F}/b", "--out", "/proc/emt-faults/x"]),
                    ("triplet-inspect", ["{F}/b", "--montage", "/proc/emt-faults.png"]),
                    ("em-phantom", ["--size", "3x32x32", "--out", "/proc/emt-faults/v.h5"])]:
        case(f"{t}-read-only-place", "read-only place", t, argv + ["-q"], 1, "/proc/emt-faults")
    # A full disk: a file-size limit (ulimit -f) in the child; SIGXFSZ is
    # ignored by the tools, so writes fail with EFBIG and are reported.
    lim = 2048
    case("build-file-size-limit", "full disk", "triplet-build", ["--config", "{F}/spec.ini", "--out", "{C}/b", "-q"], 1, "file-size limit",
         fsize=lim, outputs=["{C}/b"])
    case("export-file-size-limit", "full disk", "triplet-export", ["{F}/b", "--out", "{C}/x", "-q"], 1, "file-size limit", fsize=1024,
         outputs=["{C}/x"])
    case("phantom-file-size-limit", "full disk", "em-phantom", ["--size", "4x128x128", "--out", "{C}/v.h5", "-q"], 1, "v.h5", fsize=lim,
         outputs=["{C}/v.h5", "{C}/v.truth.json"])
    case("phantom-stack-file-size-limit", "full disk", "em-phantom", ["--size", "4x128x128", "--format", "png", "--out", "{C}/s", "-q"], 1, "s.tmp",
         fsize=lim, outputs=["{C}/s", "{C}/s.truth.json"])
    case("split-materialize-file-size-limit", "full disk", "triplet-split", ["{C}/in", "--materialize", "-q", "--group", "z-block:3"], 1,
         "file-size limit", fsize=16384, setup=copy_build, protect_case=False,
         after=lambda C, r: None if not any(os.path.exists(os.path.join(C, "in", p)) for p in ("train", "val", "test")) else "partial partitions")
    case("inspect-montage-file-size-limit", "full disk", "triplet-inspect", ["{F}/b", "--montage", "{C}/m.png", "-q"], 1, "m.png", fsize=lim,
         outputs=["{C}/m.png"])


def group_ssan_outputs():
    # The output cases of the ssan-* tools (LibTorch builds only, like the ssan group that runs them).
    case("ssan-eval-read-only-place", "read-only place", "ssan-eval",
         ["--baselines-only", "--data", "{F}/b", "--out", "/proc/emt-faults/e", "--max-samples", "2", "-q"], 1, "/proc/emt-faults")
    lim = 2048
    case("eval-file-size-limit", "full disk", "ssan-eval", ["--baselines-only", "--data", "{F}/b", "--out", "{C}/e", "-q"], 1, "file-size limit",
         fsize=1024, outputs=["{C}/e"])
    ck = checkpoint()
    case("interpolate-file-size-limit", "full disk", "ssan-interpolate", ["--checkpoint", ck, "--input", "{F}/ph.h5", "--slices", "5", "--out",
                                                                         "{C}/o.h5", "-q"], 1, "o.h5", fsize=lim, outputs=["{C}/o.h5", "{C}/o.h5.report.json"])
    case("train-file-size-limit", "full disk", "ssan-train", ["--config", TINY, "--data", "{F}/b", "--out", "{C}/r", "--crop", "32", "--batch", "2",
                                                              "--max-steps", "2", "--val-split", "none", "-q", "--threads", "1"], 1, "", fsize=8192,
         after=lambda C, r: None if not os.path.exists(os.path.join(C, "r", "last.pt")) else "a checkpoint appeared")


# ---------------------------------------------------------------------------
def big_fixture():
    """A volume large enough that the long tools run for seconds."""
    p = os.path.join(F, "big.h5")
    if not os.path.exists(p):
        must([tool("em-phantom"), "--size", "24x256x256", "--cell-size", "40", "--max-drift", "2", "--defect-rate", "0", "--out", p, "-q"])
        write(os.path.join(F, "big.ini"), "[output]\ntile_size = 64\nstride = 16\nshard_size = 16\n[align]\nsearch_radius = 6\n"
                                          "[filters]\nmin_ncc = 0.3\n[source.big]\npath = " + p + "\n")
        must([tool("triplet-build"), "--config", os.path.join(F, "big.ini"), "--out", os.path.join(F, "bigref"), "-q", "--threads", "2"])
    return p


def exists_fn(path):
    return lambda: os.path.exists(path)


def signal_case(name, toolname, argv, sig, ready, outputs=(), keep_ok=False, resume=None, compare=None, reference=None):
    """Signal a running tool; expect 128 + signal within SIGNAL_LIMIT seconds,
    no temporaries and no output (a resumable interruption keeps its state
    until the resume) and, with `resume`, a resumed run whose result equals
    the uninterrupted reference (`reference(C)` makes it first, at the same path)."""
    C = case_dir(name)
    fmt = lambda a: a.format(F=F, C=C)  # noqa: E731
    if reference:
        reference(C)
    cmd = [tool(toolname)] + [fmt(a) for a in argv]
    protected = [F]
    before = [fl.tree_digest(p) for p in protected]
    res = fl.run_and_signal(cmd, C, sig, ready(C))
    expected = 128 + sig if sig != signal.SIGKILL else -signal.SIGKILL
    if sig == signal.SIGKILL:
        suite.kinds["signal + resume"] = suite.kinds.get("signal + resume", 0) + 1
        ok = suite.check(name, res.rc == -signal.SIGKILL, f"expected death by SIGKILL, got {res.rc}: {res.err[-300:]}")
        if ok:
            suite.passed += 1
    else:
        outs = [fmt(o) for o in outputs]
        suite.expect(name, "signal + resume" if resume else "signal", toolname, res, expected, "interrupted", protected=protected, before=before,
                     outputs=[] if keep_ok else outs, temp_roots=[F] if keep_ok else [F, C], max_signal_seconds=SIGNAL_LIMIT)
    if resume:
        r2 = fl.run([tool(toolname)] + [fmt(a) for a in resume], C)
        suite.expect(name + " (resume)", "signal + resume", toolname, r2, 0, protected=protected, before=before, temp_roots=[F, C])
        if compare:
            why = compare(C)
            if why:
                suite.failures.append(f"{name} (resume): {why}")
                suite.passed -= 1
    return res


def group_signals():
    big = big_fixture()
    build = ["--config", "{F}/big.ini", "--out", "{C}/b", "-q", "--threads", "2"]
    refs = {}

    def reference(C):
        # Shards record the command line (with --out): the reference is built at the same path.
        must([tool("triplet-build")] + [a.format(F=F, C=C) for a in build])
        refs[C] = fl.shard_digests(os.path.join(C, "b"))
        shutil.rmtree(os.path.join(C, "b"))
    same = lambda C: None if fl.shard_digests(os.path.join(C, "b")) == refs[C] else "resumed shards differ from the uninterrupted build"  # noqa: E731
    two_shards = lambda C: exists_fn(os.path.join(C, "b", "shard-00002.h5"))  # noqa: E731
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGKILL):
        signal_case(f"build-{signal.Signals(sig).name}-resume", "triplet-build", build, sig, two_shards, keep_ok=True,
                    resume=build + ["--resume"], compare=same, reference=reference)
    # Dense stride: thousands of tiles per triplet; the signal must still stop it at once.
    write(os.path.join(F, "dense.ini"), open(os.path.join(F, "big.ini")).read().replace("stride = 16", "stride = 1"))
    signal_case("build-dense-stride-SIGTERM", "triplet-build", ["--config", "{F}/dense.ini", "--out", "{C}/d", "-q", "--threads", "2"],
                signal.SIGTERM, lambda C: (lambda t0=time.time(): (lambda: time.time() - t0 > 2.0))(), outputs=["{C}/d"])
    # Long runs of the other tools, signalled part-way: nothing of theirs stays.
    started = lambda C: (lambda t0=time.time(): (lambda: time.time() - t0 > 0.7))()  # noqa: E731
    signal_case("phantom-SIGTERM", "em-phantom", ["--size", "64x1024x1024", "--out", "{C}/v.h5", "-q"], signal.SIGTERM, started,
                outputs=["{C}/v.h5", "{C}/v.truth.json"])
    signal_case("phantom-SIGINT", "em-phantom", ["--size", "64x1024x1024", "--format", "png", "--out", "{C}/s", "-q"], signal.SIGINT, started,
                outputs=["{C}/s", "{C}/s.truth.json"])
    signal_case("export-SIGTERM", "triplet-export", ["{F}/bigref", "--out", "{C}/x", "-q"], signal.SIGTERM, started, outputs=["{C}/x"])
    signal_case("eval-SIGTERM", "ssan-eval", ["--baselines-only", "--data", "{F}/bigref", "--out", "{C}/e", "-q"], signal.SIGTERM, started,
                outputs=["{C}/e"])
    ck = checkpoint()
    signal_case("interpolate-SIGTERM", "ssan-interpolate", ["--checkpoint", ck, "--input", big, "--slices", "1:23", "--out", "{C}/o.h5", "-q",
                                                            "--tile", "64", "--overlap", "8", "--threads", "1"], signal.SIGTERM, started,
                outputs=["{C}/o.h5", "{C}/o.h5.report.json"])
    signal_case("interpolate-SIGINT", "ssan-interpolate", ["--checkpoint", ck, "--input", big, "--detect-defects", "--slices", "1:23", "--out", "{C}/o.h5", "-q",
                                                           "--threads", "1"], signal.SIGINT, started, outputs=["{C}/o.h5", "{C}/o.h5.report.json"])
    # ssan-train: SIGINT part-way, --resume, and the loss curve equals an uninterrupted run's.
    T0 = ["--config", TINY, "--data", "{F}/b", "--crop", "32", "--batch", "2", "--warmup-steps", "0", "--val-split", "none", "-q", "--threads", "1"]
    T = T0 + ["--max-steps", "16"]
    refrun = os.path.join(WORK, "train-ref")
    must([tool("ssan-train")] + [a.format(F=F) for a in T] + ["--out", refrun])

    def losses(run):
        return [l.split(",")[:3] for l in open(os.path.join(run, "metrics.csv")).read().strip().splitlines()[1:]]

    def metrics_rows(C, n):
        p = os.path.join(C, "r", "metrics.csv")
        return lambda: os.path.exists(p) and len(open(p).read().strip().splitlines()) > n
    signal_case("train-SIGINT-resume", "ssan-train", T + ["--out", "{C}/r"], signal.SIGINT, lambda C: metrics_rows(C, 4), keep_ok=True,
                resume=["--resume", "{C}/r", "-q", "--threads", "1"],
                compare=lambda C: None if losses(os.path.join(C, "r")) == losses(refrun) else "loss curve differs from the uninterrupted run")
    # Killed after the first epoch's checkpoint (10 steps of 2 of 20 triplets): the resume redoes the lost steps.
    signal_case("train-SIGKILL-resume", "ssan-train", T + ["--out", "{C}/r"], signal.SIGKILL,
                lambda C: (lambda m=metrics_rows(C, 11): (lambda: m() and os.path.exists(os.path.join(C, "r", "last.pt"))))(),
                resume=["--resume", "{C}/r", "-q", "--threads", "1"],
                compare=lambda C: None if losses(os.path.join(C, "r")) == losses(refrun) else "loss curve differs from the uninterrupted run")
    # Two concurrent runs on one output: the second fails at once.
    for name, toolname, argv in [("build", "triplet-build", ["--config", "{F}/big.ini", "--out", "{C}/o", "-q", "--threads", "1"]),
                                 ("export", "triplet-export", ["{F}/bigref", "--out", "{C}/o", "-q"]),
                                 ("train", "ssan-train", T0 + ["--out", "{C}/o", "--max-steps", "200"])]:
        C = case_dir("concurrent-" + name)
        fmt = lambda a: a.format(F=F, C=C)  # noqa: E731
        import subprocess
        first = subprocess.Popen([tool(toolname)] + [fmt(a) for a in argv], cwd=C, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        t0 = time.time()
        lock_held = lambda: os.path.exists(os.path.join(C, "o")) or os.path.exists(os.path.join(C, "o.lock"))  # noqa: E731
        while not lock_held() and time.time() - t0 < 600 and first.poll() is None:
            time.sleep(0.02)
        time.sleep(0.3)
        second = fl.run([tool(toolname)] + [fmt(a) for a in argv] + (["--force"] if toolname == "triplet-export" else []), C, timeout=600)
        first.send_signal(signal.SIGTERM)
        first.communicate(timeout=600)
        suite.expect(f"concurrent-{name}", "concurrent runs", toolname, second, 1, "in use by another")


groups = {"inputs": [group_inputs], "ssan": [group_ssan, group_ssan_outputs], "outputs": [group_outputs], "signals": [group_signals],
          "all": [group_inputs, group_ssan, group_ssan_outputs, group_outputs, group_signals]}
t0 = time.time()
fixtures()
for g in groups[args.group]:
    g()
rc = suite.report()
print(f"{time.time() - t0:.1f} s")
if not args.keep and rc == 0:
    shutil.rmtree(WORK, ignore_errors=True)
sys.exit(rc)
