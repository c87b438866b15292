#!/usr/bin/env python3
"""Unit tests for the PyTorch-free parts of tools/torch_crosscheck.py: slice plans, exact reads,
merging of per-slice statistics, dump size estimates, mount lookup, the default work folder, and
the --cpu mode's staging of a problems folder and its verdict.

Run: python3 tests/unit/tools/test_torch_crosscheck.py (CTest runs it under the unit label)
"""
import io
import math
import os
import struct
import sys
import tempfile
import unittest

sys.path.insert(
    0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..", "tools"))
import torch_crosscheck as xc  # noqa: E402


def py_stats(got, ref, atol, rtol):
    """compare()'s definitions over plain Python floats, for one slice."""
    max_abs = max_rel = 0.0
    bad = parity = 0
    for g, r in zip(got, ref):
        finite = math.isfinite(g) and math.isfinite(r)
        diff = abs(g - r) if finite else 0.0
        rel = diff / max(abs(r), 1e-30) if abs(r) > 0 else diff
        max_abs, max_rel = max(max_abs, diff), max(max_rel, rel)
        bad += finite and diff > atol + rtol * abs(r)
        parity += math.isnan(g) != math.isnan(r)
    return {"max_abs_err": max_abs, "max_rel_err": max_rel, "outside_tolerance": bad,
            "nan_parity_mismatches": parity, "numel": len(got)}


class SlicePlanTest(unittest.TestCase):
    def test_covers_every_element_once_in_order(self):
        for count in (0, 1, 7, 8, 9, 64, 1000):
            for chunk in (1, 3, 8, 1000, 5000):
                plan = list(xc.slice_plan(count, 4, chunk))
                self.assertEqual(sum(n for _, n, _, _ in plan), count)
                expected_start = 0
                for start, n, offset, nbytes in plan:
                    self.assertEqual(start, expected_start)
                    self.assertTrue(1 <= n <= chunk)
                    self.assertEqual(offset, start * 4)
                    self.assertEqual(nbytes, n * 4)
                    expected_start += n
                self.assertEqual(len(plan), -(-count // chunk))

    def test_last_slice_is_the_remainder(self):
        plan = list(xc.slice_plan(10, 8, 4))
        self.assertEqual(plan, [(0, 4, 0, 32), (4, 4, 32, 32), (8, 2, 64, 16)])

    def test_large_tensor_byte_offsets_exceed_32_bits(self):
        count = 4096 * 393216  # relu_4096x393216's output, read as float64
        plan = list(xc.slice_plan(count, 8, 1 << 25))
        self.assertEqual(len(plan), 48)
        start, n, offset, nbytes = plan[-1]
        self.assertEqual(offset + nbytes, count * 8)
        self.assertGreater(offset, 1 << 32)

    def test_rejects_bad_arguments(self):
        for args in ((-1, 4, 8), (8, 0, 8), (8, 4, 0)):
            with self.assertRaises(ValueError):
                list(xc.slice_plan(*args))

    def test_chunk_elems_from_mib(self):
        self.assertEqual(xc.chunk_elems_for(256), 1 << 25)
        self.assertEqual(xc.chunk_elems_for(1e-9), 1)
        for bad in (0, -1, float("nan"), float("inf")):
            with self.assertRaises(ValueError):
                xc.chunk_elems_for(bad)


class ReadExactTest(unittest.TestCase):
    class Trickle(io.RawIOBase):
        """A file that hands out at most three bytes per readinto."""

        def __init__(self, data):
            self.data, self.pos = data, 0

        def readable(self):
            return True

        def readinto(self, b):
            n = min(3, len(b), len(self.data) - self.pos)
            b[:n] = self.data[self.pos:self.pos + n]
            self.pos += n
            return n

    def test_short_reads_are_completed(self):
        buf = bytearray(10)
        xc.read_exact(self.Trickle(b"0123456789abc"), memoryview(buf))
        self.assertEqual(bytes(buf), b"0123456789")

    def test_end_of_file_raises(self):
        with self.assertRaises(RuntimeError):
            xc.read_exact(self.Trickle(b"0123"), memoryview(bytearray(10)))

    def test_slices_of_a_file_reassemble_it(self):
        values = [float(i) * 0.5 - 3.0 for i in range(37)]
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "t.bin")
            with open(path, "wb") as f:
                f.write(struct.pack(f"<{len(values)}d", *values))
            buf = bytearray(8 * 5)
            view = memoryview(buf)
            back = []
            with open(path, "rb", buffering=0) as f:
                for _, n, offset, nbytes in xc.slice_plan(len(values), 8, 5):
                    f.seek(offset)
                    xc.read_exact(f, view[:nbytes])
                    back += struct.unpack(f"<{n}d", buf[:nbytes])
        self.assertEqual(back, values)


class MergeStatsTest(unittest.TestCase):
    def test_sliced_statistics_equal_whole_tensor_statistics(self):
        nan, inf = float("nan"), float("inf")
        ref = [0.0, 1.0, -2.0, 3.0, nan, 5.0, inf, 0.0, 1e-3, -4.0, 2.0, 7.0, 0.0]
        got = [0.0, 1.1, -2.0, 3.5, nan, nan, inf, 1e-6, 2e-3, -4.0, inf, 7.0001, 0.5]
        whole = py_stats(got, ref, 1e-4, 1e-4)
        for chunk in (1, 2, 3, 5, 13, 100):
            acc = xc.empty_stats()
            for start, n, _, _ in xc.slice_plan(len(ref), 8, chunk):
                acc = xc.merge_stats(acc, py_stats(got[start:start + n], ref[start:start + n],
                                                   1e-4, 1e-4))
            self.assertEqual(acc, whole, f"chunk {chunk}")
        self.assertEqual(whole["nan_parity_mismatches"], 1)
        self.assertEqual(whole["numel"], len(ref))

    def test_empty_tensor_gives_zeros(self):
        self.assertEqual(xc.merge_stats(xc.empty_stats(), xc.empty_stats()), xc.empty_stats())


class DumpSizeTest(unittest.TestCase):
    def problem(self):
        return {
            "inputs": [{"name": "x", "dtype": "f32", "shape": [8, 64]}],
            "params": [{"name": "w", "dtype": "f32", "shape": [32, 64]},
                       {"name": "b", "dtype": "f32", "shape": [32]}],
            "outputs": ["y", "k"],
            "values": {"y": {"dtype": "f32", "shape": [8, 32]}, "k": {"dtype": "i64", "shape": [8]},
                       "x": {"dtype": "f32", "shape": [8, 64]}},
        }

    def test_counts_inputs_params_baselines_and_f64_references(self):
        # The sizes test_baseline_dump checks file by file.
        expected = 8 * 64 * 4 + 32 * 64 * 4 + 32 * 4 + 8 * 32 * 4 + 8 * 32 * 8 + 8 * 8 + 8 * 8
        self.assertEqual(xc.expected_dump_bytes(self.problem()), expected)

    def test_scalar_and_bool(self):
        p = {"inputs": [{"dtype": "bool", "shape": []}], "params": [], "outputs": ["m"],
             "values": {"m": {"dtype": "b8", "shape": [3]}}}
        self.assertEqual(xc.expected_dump_bytes(p), 1 + 3 + 3 * 8)

    def test_large_problem(self):
        p = {"inputs": [{"dtype": "f32", "shape": [4096, 393216]}], "params": [],
             "outputs": ["y"], "values": {"y": {"dtype": "f32", "shape": [4096, 393216]}}}
        self.assertEqual(xc.expected_dump_bytes(p), 4096 * 393216 * (4 + 4 + 8))

    def test_missing_information_gives_none(self):
        p = self.problem()
        del p["values"]["k"]
        self.assertIsNone(xc.expected_dump_bytes(p))
        p = self.problem()
        p["params"][0]["dtype"] = "f8"
        self.assertIsNone(xc.expected_dump_bytes(p))

    def test_manifest_bytes(self):
        entries = [{"dtype": "f32", "shape": [2, 3]}, {"dtype": "f64", "shape": [2, 3]},
                   {"dtype": "i64", "shape": []}]
        self.assertEqual(xc.manifest_bytes(entries), 24 + 48 + 8)


class WorkdirTest(unittest.TestCase):
    MOUNTS = "\n".join([
        "overlay / overlay rw,relatime 0 0",
        "tmpfs /dev/shm tmpfs rw,nosuid,nodev 0 0",
        "/dev/nvme0n1 /data ext4 rw 0 0",
        "tmpfs /data/scratch\\040space tmpfs rw 0 0",
        "short line",
    ])

    def test_deepest_mount_wins(self):
        self.assertEqual(xc.mount_fstype("/dev/shm/x", self.MOUNTS), "tmpfs")
        self.assertEqual(xc.mount_fstype("/dev/shm", self.MOUNTS), "tmpfs")
        self.assertEqual(xc.mount_fstype("/dev/shmem", self.MOUNTS), "overlay")
        self.assertEqual(xc.mount_fstype("/data/kbench/.xcheck-work", self.MOUNTS), "ext4")
        self.assertEqual(xc.mount_fstype("/data/scratch space/a", self.MOUNTS), "tmpfs")
        self.assertEqual(xc.mount_fstype("/home", self.MOUNTS), "overlay")
        self.assertIsNone(xc.mount_fstype("/x", ""))

    def test_default_workdir(self):
        self.assertEqual(xc.default_workdir({}, "/repo"), "/repo/.xcheck-work")
        self.assertEqual(xc.default_workdir({"KB_XCHECK_WORK": "/data/x"}, "/repo"), "/data/x")
        self.assertEqual(xc.default_workdir({"KB_XCHECK_WORK": ""}, "/repo"),
                         "/repo/.xcheck-work")

    def test_problem_dir(self):
        self.assertEqual(xc.problem_dir("/w", "l1/kb_sdpa"), "/w/l1_kb_sdpa")


class StageProblemsTest(unittest.TestCase):
    def write(self, path, text="name: x\n"):
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w") as f:
            f.write(text)

    def test_top_level_files_become_level_1_and_level_folders_keep_their_level(self):
        with tempfile.TemporaryDirectory() as d:
            src = os.path.join(d, "src")
            self.write(os.path.join(src, "relu.yaml"), "relu\n")
            self.write(os.path.join(src, "pad.yml"))
            self.write(os.path.join(src, "notes.txt"))
            self.write(os.path.join(src, "level2", "chain.yaml"), "chain\n")
            self.write(os.path.join(src, "other", "ignored.yaml"))
            staged = xc.stage_problems(src, os.path.join(d, "stage"))
            self.assertEqual([e["id"] for e in staged], ["l1/pad", "l1/relu", "l2/chain"])
            by_id = {e["id"]: e for e in staged}
            self.assertEqual(by_id["l1/relu"]["staged"],
                             os.path.join(d, "stage", "level1", "relu.yaml"))
            self.assertEqual(by_id["l1/relu"]["source"], os.path.join(src, "relu.yaml"))
            with open(by_id["l2/chain"]["staged"]) as f:
                self.assertEqual(f.read(), "chain\n")

    def test_duplicate_ids_and_empty_folders_are_errors(self):
        with tempfile.TemporaryDirectory() as d:
            src = os.path.join(d, "src")
            self.write(os.path.join(src, "relu.yaml"))
            self.write(os.path.join(src, "level1", "relu.yaml"))
            with self.assertRaisesRegex(RuntimeError, "both be problem l1/relu"):
                xc.stage_problems(src, os.path.join(d, "stage"))
            os.makedirs(os.path.join(d, "empty"))
            with self.assertRaisesRegex(RuntimeError, "holds no .yaml problem"):
                xc.stage_problems(os.path.join(d, "empty"), os.path.join(d, "stage"))
            with self.assertRaisesRegex(RuntimeError, "is not a folder"):
                xc.stage_problems(os.path.join(d, "missing"), os.path.join(d, "stage"))


class AgreesCpuTest(unittest.TestCase):
    GOOD = {"max_abs_err": 0.0, "max_rel_err": 0.0, "outside_tolerance": 0,
            "nan_parity_mismatches": 0, "numel": 4}

    def test_every_output_must_be_within_tolerance(self):
        self.assertTrue(xc.agrees_cpu({"outputs": {"y": {"vs_f64": self.GOOD}}}))
        bad = dict(self.GOOD, outside_tolerance=1)
        self.assertFalse(xc.agrees_cpu({"outputs": {"y": {"vs_f64": self.GOOD},
                                                    "z": {"vs_f64": bad}}}))
        nan = dict(self.GOOD, nan_parity_mismatches=2)
        self.assertFalse(xc.agrees_cpu({"outputs": {"y": {"vs_f64": nan}}}))
        self.assertFalse(xc.agrees_cpu({"outputs": {"y": {"vs_f64": {"shape_mismatch": "x"}}}}))

    def test_errors_and_missing_comparisons_never_agree(self):
        self.assertFalse(xc.agrees_cpu({"error": "boom", "outputs": {}}))
        self.assertFalse(xc.agrees_cpu({"outputs": {}}))
        self.assertFalse(xc.agrees_cpu({"outputs": {"y": {}}}))


if __name__ == "__main__":
    unittest.main()
