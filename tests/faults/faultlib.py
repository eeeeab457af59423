"""Machinery of the fault suite (run_faults.py holds the table of cases).

Every case runs one tool command and checks the tool's contract
(docs/cli.md): the exit code, one `TOOL: error: WHAT (WHERE)` line carrying
an expected substring, nothing outside the tool's own output changed (the
protected trees are hashed before and after), no temporary left behind
(*.tmp, *.partial, *.lock), no partial output (a failed run leaves no output
path that did not exist before), and never a crash (a signal death).
"""
import hashlib
import os
import resource
import shutil
import signal
import struct
import subprocess
import sys
import time
import zlib

TEMP_SUFFIXES = (".tmp", ".partial", ".lock")


def tree_digest(root):
    """SHA-256 over every path, type and file content under root (sorted)."""
    h = hashlib.sha256()
    if not os.path.lexists(root):
        return "absent"
    if os.path.isfile(root):
        with open(root, "rb") as f:
            return hashlib.sha256(f.read()).hexdigest()
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        rel = os.path.relpath(dirpath, root)
        h.update(("D " + rel + "\n").encode())
        for name in sorted(filenames):
            p = os.path.join(dirpath, name)
            h.update(("F " + os.path.join(rel, name) + "\n").encode())
            with open(p, "rb") as f:
                h.update(hashlib.sha256(f.read()).digest())
    return h.hexdigest()


def temporaries(root):
    """Temporary names anywhere under root."""
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            if name.endswith(TEMP_SUFFIXES):
                found.append(os.path.join(dirpath, name))
    return found


def file_sha(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def shard_digests(d):
    """Digests of a triplet-build output's shards, manifest and rejected list."""
    out = {}
    for name in sorted(os.listdir(d)):
        if name.startswith("shard-") or name in ("manifest.json", "rejected.csv"):
            out[name] = file_sha(os.path.join(d, name))
    return out


# ---- writing damaged or unusual inputs ------------------------------------

def png_bytes(rows, channels=1):
    """An 8-bit PNG from a list of rows (each a bytes of width*channels)."""
    height, width = len(rows), len(rows[0]) // channels
    color = {1: 0, 3: 2}[channels]
    raw = b"".join(b"\x00" + r for r in rows)

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, color, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")


def multipage_tiff(pages):
    """An uncompressed 8-bit grey multipage TIFF (little-endian, one strip per page)."""
    out = bytearray(b"II*\x00" + struct.pack("<I", 0))
    prev_next = 4
    for rows in pages:
        height, width = len(rows), len(rows[0])
        data_off = len(out)
        out += b"".join(rows)
        if len(out) % 2:
            out += b"\x00"
        ifd = len(out)
        struct.pack_into("<I", out, prev_next, ifd)
        entries = [(256, 3, 1, width), (257, 3, 1, height), (258, 3, 1, 8), (259, 3, 1, 1), (262, 3, 1, 1),
                   (273, 4, 1, data_off), (277, 3, 1, 1), (278, 3, 1, height), (279, 4, 1, width * height)]
        out += struct.pack("<H", len(entries))
        for tag, typ, count, value in entries:
            out += struct.pack("<HHI", tag, typ, count) + (struct.pack("<HH", value, 0) if typ == 3 else struct.pack("<I", value))
        prev_next = len(out)
        out += struct.pack("<I", 0)
    return bytes(out)


def noise_rows(h, w, seed):
    """Grey rows with some texture (alignment and filters need structure)."""
    import random
    rnd = random.Random(seed)
    return [bytes(((x * 7 + y * 3 + rnd.randrange(40)) % 256) for x in range(w)) for y in range(h)]


def rgb_rows(rows, equal):
    """Grey rows as RGB: equal channels (grey saved as colour) or real colour."""
    out = []
    for r in rows:
        out.append(b"".join(bytes([v, v, v]) if equal else bytes([v, (v + 50) % 256, (v + 100) % 256]) for v in r))
    return out


def flip_byte_in_largest_zip_member(path):
    """Flips one byte inside the checkpoint's largest tensor (a weight)."""
    import zipfile
    with zipfile.ZipFile(path) as z:
        tensors = [i for i in z.infolist() if "/data/" in i.filename] or z.infolist()
        info = max(tensors, key=lambda i: i.compress_size)
    with open(path, "r+b") as f:
        f.seek(info.header_offset + 26)
        n, e = struct.unpack("<HH", f.read(4))
        pos = info.header_offset + 30 + n + e + info.compress_size // 2
        f.seek(pos)
        b = f.read(1)
        f.seek(pos)
        f.write(bytes([b[0] ^ 0x10]))


# ---- running --------------------------------------------------------------

class Result:
    def __init__(self, rc, out, err, seconds, signal_to_exit=None):
        self.rc, self.out, self.err, self.seconds, self.signal_to_exit = rc, out, err, seconds, signal_to_exit


def run(cmd, cwd, fsize=None, timeout=600, env=None):
    def limits():
        if fsize is not None:
            resource.setrlimit(resource.RLIMIT_FSIZE, (fsize, fsize))
    t0 = time.time()
    p = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout, preexec_fn=limits, env=env)
    return Result(p.returncode, p.stdout, p.stderr, time.time() - t0)


def catches(pid, sig):
    """True once process pid has a handler for sig (/proc/PID/status SigCgt):
    a signal before main() installs it (LibTorch takes a second to load)
    would test the dynamic loader, not the tool."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("SigCgt:"):
                    return bool(int(line.split()[1], 16) & (1 << (sig - 1)))
    except OSError:
        pass
    return False


def run_and_signal(cmd, cwd, sig, ready, timeout=600, settle=0.0):
    """Starts cmd, waits until it catches sig (unless SIGKILL) and ready()
    (polled), sends sig, waits for the exit."""
    t0 = time.time()
    p = subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    while not ((sig == signal.SIGKILL or catches(p.pid, sig)) and ready()):
        if p.poll() is not None:
            out, err = p.communicate()
            return Result(p.returncode, out, "NOT READY BEFORE EXIT: " + err, time.time() - t0)
        if time.time() - t0 > timeout:
            p.kill()
            out, err = p.communicate()
            return Result(-999, out, "TIMEOUT WAITING FOR READY: " + err, time.time() - t0)
        time.sleep(0.02)
    if settle:
        time.sleep(settle)
    ts = time.time()
    p.send_signal(sig)
    try:
        out, err = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        p.kill()
        out, err = p.communicate()
        return Result(-998, out, "DID NOT STOP AFTER THE SIGNAL: " + err, time.time() - t0)
    return Result(p.returncode, out, err, time.time() - t0, time.time() - ts)


class Suite:
    def __init__(self, name, work):
        self.name, self.work = name, work
        self.failures, self.passed, self.kinds, self.stop_times, self.tools = [], 0, {}, [], {}

    def check(self, case, ok, why):
        if not ok:
            self.failures.append(f"{case}: {why}")
        return ok

    def error_line(self, tool, res):
        lines = [l for l in res.err.splitlines() if f"{tool}: error:" in l]
        return lines

    def expect(self, case, kind, tool, res, rc, err=None, protected=(), before=None, outputs=(), outputs_existed=None,
               temp_roots=(), max_signal_seconds=None):
        """The common contract. `protected`: trees whose digests must not change
        (`before`: their digests before the run); `outputs`: paths that must not
        exist after a failure unless they existed before."""
        self.kinds[kind] = self.kinds.get(kind, 0) + 1
        self.tools[tool] = self.tools.get(tool, 0) + 1
        ok = True
        ok &= self.check(case, res.rc >= 0, f"crashed with signal {-res.rc}; stderr: {res.err[-400:]}")
        rcs = rc if isinstance(rc, (tuple, list, set)) else (rc,)
        ok &= self.check(case, res.rc in rcs, f"exit {res.rc}, expected {rc}; stderr: {res.err[-600:]}")
        if res.rc != 0 and res.rc >= 0:
            lines = self.error_line(tool, res)
            ok &= self.check(case, len(lines) == 1, f"expected exactly one '{tool}: error:' line, got {len(lines)}: {res.err[-600:]}")
            if err and lines:
                ok &= self.check(case, err in lines[0], f"error line lacks '{err}': {lines[0]}")
        if before is not None:
            for path, digest in zip(protected, before):
                ok &= self.check(case, tree_digest(path) == digest, f"protected {path} changed")
        for root in temp_roots:
            left = temporaries(root)
            ok &= self.check(case, not left, f"temporaries left: {left[:5]}")
        if res.rc != 0:
            existed = outputs_existed or [False] * len(outputs)
            for path, was in zip(outputs, existed):
                if not was:
                    ok &= self.check(case, not os.path.lexists(path), f"partial output left: {path}")
        if res.signal_to_exit is not None:
            self.stop_times.append((case, res.signal_to_exit))
        if max_signal_seconds is not None and res.signal_to_exit is not None:
            ok &= self.check(case, res.signal_to_exit <= max_signal_seconds,
                             f"took {res.signal_to_exit:.2f} s to stop after the signal (limit {max_signal_seconds})")
        if ok:
            self.passed += 1
        return ok

    def report(self):
        total = self.passed + len(self.failures)
        kinds = ", ".join(f"{k} {v}" for k, v in sorted(self.kinds.items()))
        print(f"fault suite '{self.name}': {self.passed}/{total} checks passed ({kinds})")
        print("checks per tool: " + ", ".join(f"{k} {v}" for k, v in sorted(self.tools.items())))
        if self.stop_times:
            print("seconds from the signal to the exit: " + ", ".join(f"{c} {t:.2f}" for c, t in self.stop_times))
        for f in self.failures:
            print("FAIL " + f)
        return 0 if not self.failures else 1
