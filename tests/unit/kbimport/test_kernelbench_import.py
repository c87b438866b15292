#!/usr/bin/env python3
"""Tests of tools/kernelbench_import.py and tools/kernelbench_proof.py on the KernelBench-format
fixture files beside this script: what is imported and how, that every YAML loads in kbench, that
a second run changes no byte, that the files kbench cannot express are named with the missing
construct and make the exit status 1, and that the renderings agree with the original models.

Usage: test_kernelbench_import.py --kbench BUILD/bin/kbench
Exit status 77 (CTest's skip) when no Python with PyTorch is found (KB_TORCH_PYTHON, the current
interpreter, /usr/bin/python3).
"""
import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(HERE)))
FIXTURES = os.path.join(HERE, "fixtures")
IMPORT = os.path.join(ROOT, "tools", "kernelbench_import.py")
PROOF = os.path.join(ROOT, "tools", "kernelbench_proof.py")
COMMIT = "0123456789abcdef0123456789abcdef01234567"
SKIP = 77


def torch_python():
    """A Python interpreter that can import torch, or None."""
    candidates = [os.environ.get("KB_TORCH_PYTHON"), sys.executable, "/usr/bin/python3"]
    for py in candidates:
        if not py or not os.path.exists(py):
            continue
        r = subprocess.run([py, "-c", "import torch"], capture_output=True)
        if r.returncode == 0:
            return py
    return None


class Failures:
    def __init__(self):
        self.items = []

    def check(self, cond, what):
        if not cond:
            self.items.append(what)
            print(f"FAIL: {what}", flush=True)
        return cond


def run(cmd, **kw):
    return subprocess.run(cmd, capture_output=True, text=True, timeout=900, **kw)


def digest(folder):
    out = {}
    for d, _, files in os.walk(folder):
        for f in files:
            p = os.path.join(d, f)
            with open(p, "rb") as fh:
                out[os.path.relpath(p, folder)] = hashlib.sha256(fh.read()).hexdigest()
    return out


def load_json(kbench, path):
    r = run([kbench, "problem", path, "--json"])
    if r.returncode != 0:
        return None, r.stderr
    return json.loads(r.stdout), ""


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--kbench", required=True)
    args = ap.parse_args()
    py = torch_python()
    if py is None:
        print("SKIP: no Python with PyTorch (set KB_TORCH_PYTHON); the importer needs it")
        return SKIP
    kbench = os.path.abspath(args.kbench)
    f = Failures()
    work = tempfile.mkdtemp(prefix="kbimport-test-")
    try:
        out = os.path.join(work, "levels")
        report = os.path.join(work, "report.json")
        base = [py, IMPORT, "--kbench", kbench, "--out-dir", out, "--kernelbench-commit", COMMIT,
                FIXTURES]
        r = run(base + ["--report", report])
        print(r.stdout, r.stderr)
        # Two fixtures are not expressible: exit 1, each named with what is missing.
        f.check(r.returncode == 1, f"first run exits 1 (got {r.returncode})")
        f.check("NOT EXPRESSIBLE level1/3_Sort_Values.py" in r.stderr
                and "'sort'" in r.stderr, "torch.sort named as not expressible")
        f.check("NOT EXPRESSIBLE level2/5_Linear_Dropout.py" in r.stderr
                and "training-mode Dropout with p=0.3" in r.stderr,
                "training-mode dropout named as not expressible")
        with open(report) as fh:
            rep = json.load(fh)
        f.check(sorted(x["id"] for x in rep["imported"]) ==
                ["l1/kb001_gelu", "l1/kb002_triangular_scaled",
                 "l2/kb004_conv2d_batchnorm_min_add", "l3/kb006_tinycnn",
                 "l3/kb007_attention_rnn"], f"imported ids: {rep['imported']}")
        f.check(len(rep["not_expressible"]) == 2, "two files reported as not expressible")

        # Every YAML loads in kbench, with the KernelBench provenance.
        problems = {}
        for x in rep["imported"]:
            lvl, stem = x["id"].split("/")
            path = os.path.join(out, f"level{lvl[1:]}", stem + ".yaml")
            pj, err = load_json(kbench, path)
            if f.check(pj is not None, f"{path} loads in kbench: {err}"):
                problems[x["id"]] = pj
                f.check(pj["provenance"]["source"] == "kernelbench"
                        and pj["provenance"]["version"] == COMMIT, f"{x['id']} provenance")
        lst = run([kbench, "list", "--levels-dir", out])
        f.check(lst.returncode == 0 and "5 problems" in lst.stdout, f"kbench list: {lst.stdout}"
                f"{lst.stderr}")

        # What the lowering made of each construct.
        def ops(pid):
            return [n["op"] for n in problems.get(pid, {}).get("graph", [])]

        def node(pid, op):
            return next((n for n in problems.get(pid, {}).get("graph", []) if n["op"] == op), {})

        f.check(ops("l1/kb001_gelu") == ["gelu"], "single op")
        f.check(ops("l2/kb004_conv2d_batchnorm_min_add") ==
                ["conv2d", "batch_norm_train", "clamp", "add"],
                f"fused chain: {ops('l2/kb004_conv2d_batchnorm_min_add')}")
        f.check(node("l2/kb004_conv2d_batchnorm_min_add", "clamp").get("attrs", {}).get("max")
                == 0.25, "min with a scalar tensor is a clamp with that maximum")
        conv = problems.get("l2/kb004_conv2d_batchnorm_min_add", {})
        params = {p["name"]: p for p in conv.get("params", [])}
        bound = 1.0 / (3 * 3 * 3) ** 0.5
        w = params.get("conv_weight", {}).get("dist", {})
        f.check(w.get("kind") == "uniform" and abs(w.get("b", 0) - bound) < 1e-12
                and abs(w.get("a", 0) + bound) < 1e-12, f"conv weight U(+-1/sqrt(fan_in)): {w}")
        bn_w = params.get("bn_weight", {}).get("dist", {})
        f.check(bn_w.get("kind") == "normal" and bn_w.get("a") == 1.0 and bn_w.get("b") == 0.1,
                f"BatchNorm weight (ones in PyTorch) drawn N(1, 0.1): {bn_w}")
        b = params.get("bias", {}).get("dist", {})
        f.check(b.get("kind") == "normal" and b.get("b") == 0.5,
                f"the file's randn * 0.5 parameter is N(0, 0.5): {b}")
        f.check("drawn around that value" in conv.get("description", ""),
                "the description states the constant-parameter departure")
        tri = problems.get("l1/kb002_triangular_scaled", {})
        f.check([i["name"] for i in tri.get("inputs", [])] == ["a_draw", "b_draw0", "b_draw1"],
                f"get_inputs() draws are the inputs: {tri.get('inputs')}")
        f.check(ops("l1/kb002_triangular_scaled") == ["triu", "mul", "matmul", "triu", "mul"],
                f"preparation and body: {ops('l1/kb002_triangular_scaled')}")
        f.check(node("l1/kb002_triangular_scaled", "matmul").get("attrs", {}).get(
            "transpose_b") is True, "b.T folded into the matmul")
        cnn = ops("l3/kb006_tinycnn")
        f.check(cnn.count("batch_norm_train") == 2 and "max_pool2d" in cnn and "mean" in cnn
                and "layer_norm" in cnn and cnn[-1] == "softmax",
                f"tiny CNN lowering: {cnn}")
        rnn = problems.get("l3/kb007_attention_rnn", {})
        f.check([i["name"] for i in rnn.get("inputs", [])] == ["x", "forward_draw0"],
                "a random state forward() draws is an input")
        f.check("gru" in ops("l3/kb007_attention_rnn") and "scaled_dot_product_attention" in
                ops("l3/kb007_attention_rnn"), "GRU and attention lowered")

        # A second run changes no byte; --check agrees.
        before = digest(out)
        r2 = run(base)
        f.check(r2.returncode == 1, "second run exits 1 again")
        f.check(digest(out) == before, "second run changes no byte")
        f.check("unchanged" in r2.stdout and "new " not in r2.stdout
                and "updated" not in r2.stdout, "second run reports every file unchanged")
        ok_files = [os.path.join(FIXTURES, "level1", "1_Gelu.py"),
                    os.path.join(FIXTURES, "level3", "6_TinyCNN.py")]
        r3 = run([py, IMPORT, "--check", "--kbench", kbench, "--out-dir", out,
                  "--kernelbench-commit", COMMIT] + ok_files)
        f.check(r3.returncode == 0, f"--check on unchanged files exits 0: {r3.stderr}")
        target = os.path.join(out, "level1", "kb001_gelu.yaml")
        with open(target, "a") as fh:
            fh.write("# edited\n")
        r4 = run([py, IMPORT, "--check", "--kbench", kbench, "--out-dir", out,
                  "--kernelbench-commit", COMMIT] + ok_files)
        f.check(r4.returncode == 1 and "updated" in r4.stdout,
                "--check exits 1 when a YAML would change")
        # Without a KernelBench commit the provenance is kbench's own.
        own = os.path.join(work, "own")
        r5 = run([py, IMPORT, "--kbench", kbench, "--out-dir", own, ok_files[0]])
        pj, err = load_json(kbench, os.path.join(own, "level1", "kb001_gelu.yaml"))
        f.check(r5.returncode == 0 and pj is not None and pj["provenance"]["source"] == "kbench",
                f"a user's file imports with source kbench: {r5.stderr} {err}")
        r6 = run([py, IMPORT, "--kbench", kbench, "--out-dir", own,
                  os.path.join(FIXTURES, "level1", "1_Gelu.py"), "--level", "2"])
        f.check(r6.returncode == 0, "--level applies to files outside a level folder too")

        # A KernelBench file on the exclusion list (degenerate) is named and not written; the same
        # file as a user's own (source kbench) is imported.
        kb_dir = os.path.join(work, "kb", "level2")
        os.makedirs(kb_dir)
        degenerate = os.path.join(kb_dir, "80_Gemm_Max_Subtract_GELU.py")
        with open(os.path.join(FIXTURES, "level1", "1_Gelu.py")) as src, open(degenerate, "w") as dst:
            dst.write(src.read())
        excl = os.path.join(work, "excl")
        r7 = run([py, IMPORT, "--kbench", kbench, "--out-dir", excl, "--kernelbench-commit",
                  COMMIT, degenerate])
        f.check(r7.returncode == 0 and "EXCLUDED level2/80_Gemm_Max_Subtract_GELU.py: degenerate"
                in r7.stderr and not os.path.exists(excl),
                f"an excluded KernelBench file is named and not written: {r7.stderr}")
        r8 = run([py, IMPORT, "--kbench", kbench, "--out-dir", excl, degenerate])
        f.check(r8.returncode == 0 and os.path.exists(
            os.path.join(excl, "level2", "kb080_gemm_max_subtract_gelu.yaml")),
                f"the exclusion list applies to KernelBench's files only: {r8.stderr}")

        # The renderings agree with the original models (the fixtures are small).
        with open(target, "w") as fh:
            pass
        run(base)  # restores kb001_gelu.yaml
        rp = run([py, PROOF, "--kbench", kbench, "--levels-dir", out, "--screen-seeds", "2",
                  "--json", os.path.join(work, "proof.json"), FIXTURES])
        print(rp.stdout, rp.stderr)
        f.check(rp.returncode == 0, f"the proof passes (exit {rp.returncode})")
        with open(os.path.join(work, "proof.json")) as fh:
            rows = json.load(fh)["rows"]
        agree = sorted(x["id"] for x in rows if x["status"] == "agrees")
        f.check(agree == sorted(x["id"] for x in rep["imported"]),
                f"every imported fixture agrees: {agree}")
        # A wrong rendering is caught: swap an attribute and prove again.
        bad = os.path.join(out, "level2", "kb004_conv2d_batchnorm_min_add.yaml")
        with open(bad) as fh:
            text = fh.read()
        with open(bad, "w") as fh:
            fh.write(text.replace("max: 0.25", "max: 0.3"))
        rb = run([py, PROOF, "--kbench", kbench, "--levels-dir", out, "--only",
                  "kb004_conv2d_batchnorm_min_add", FIXTURES])
        f.check(rb.returncode == 1 and "FAIL" in rb.stdout, f"a wrong clamp bound fails the "
                f"proof: {rb.stdout}")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if f.items:
        print(f"{len(f.items)} check(s) failed")
        return 1
    print("all checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
