"""Command line of tools/kernelbench_import.py (see its docstring and docs/problems.md)."""
import argparse
import json
import os
import re
import shutil
import sys
import tempfile
import traceback
import warnings

from . import exclusions, kbench, source, yamlout
from .errors import NotExpressible
from .importer import import_file

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def collect_files(paths):
    """KernelBench-format files under `paths` (files, level folders, or a checkout holding
    KernelBench/level<N>/ or level<N>/), sorted by level and problem number."""
    files = []
    for p in paths:
        if os.path.isfile(p):
            files.append(p)
            continue
        if not os.path.isdir(p):
            raise SystemExit(f"kernelbench_import: no such file or folder: {p}")
        roots = [p]
        if os.path.isdir(os.path.join(p, "KernelBench")):
            roots = [os.path.join(p, "KernelBench")]
        found = False
        for root in roots:
            levels = sorted(d for d in os.listdir(root) if re.match(r"^level\d+$", d))
            if levels:
                for d in levels:
                    folder = os.path.join(root, d)
                    files.extend(os.path.join(folder, f) for f in os.listdir(folder)
                                 if f.endswith(".py"))
                found = True
        if not found:
            files.extend(os.path.join(p, f) for f in os.listdir(p) if f.endswith(".py"))

    def key(f):
        n, rest = source.parse_name(f)
        return (source.level_of(f) or 0, n if n is not None else 1 << 30, rest)

    return sorted(set(files), key=key)


def parse_args(argv):
    ap = argparse.ArgumentParser(
        prog="kernelbench_import.py",
        description="Import KernelBench-format problem files as kbench problem YAML.")
    ap.add_argument("paths", nargs="+", help="files, level<N> folders or a KernelBench checkout")
    ap.add_argument("--out-dir", default=os.path.join(REPO_ROOT, "levels"),
                    help="root of level<N>/ folders to write (default: the repository's levels/)")
    ap.add_argument("--kbench", default=None,
                    help="kbench binary (default: $KBENCH or build/bin/kbench)")
    ap.add_argument("--kernelbench-commit", default=None,
                    help="KernelBench commit the files come from: provenance source kernelbench, "
                         "version this hash (without it: source kbench, no version)")
    ap.add_argument("--source", choices=["kernelbench", "kbench"], default=None,
                    help="provenance source (default: kernelbench when a commit is known, else "
                         "kbench)")
    ap.add_argument("--prefix", default="kb", help="file-name prefix (kb023_softmax)")
    ap.add_argument("--level", type=int, default=None,
                    help="level of files outside a level<N> folder")
    ap.add_argument("--check", action="store_true",
                    help="write nothing; exit 1 if any file would change")
    ap.add_argument("--prune", action="store_true",
                    help="remove <prefix>NNN_*.yaml files of the levels imported that this run "
                         "did not produce")
    ap.add_argument("--report", default=None, help="write a JSON report of the run here")
    ap.add_argument("--quiet", action="store_true", help="print only what is not expressible")
    return ap.parse_args(argv)


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    # PyTorch's deprecation notices (meshgrid's indexing, ...) are about the files, not the import.
    warnings.simplefilter("ignore", UserWarning)
    binary = args.kbench or kbench.default_binary(REPO_ROOT)
    try:
        registry = kbench.load_registry(binary)
    except kbench.KbenchError as e:
        print(f"kernelbench_import: {e}", file=sys.stderr)
        return 2
    files = collect_files(args.paths)
    if not files:
        print("kernelbench_import: no .py files found", file=sys.stderr)
        return 2
    commit = args.kernelbench_commit
    src = args.source or ("kernelbench" if commit else "kbench")
    if src == "kernelbench" and not commit:
        print("kernelbench_import: --source kernelbench needs --kernelbench-commit (the catalog "
              "requires a version for KernelBench problems)", file=sys.stderr)
        return 2
    version = commit if src == "kernelbench" else ""
    results, failures, changed, produced, excluded = [], [], [], {}, []
    staging = tempfile.mkdtemp(prefix="kbimport-")
    try:
        for f in files:
            level = args.level or source.level_of(f)
            rel = f"level{level}/{os.path.basename(f)}" if level else os.path.basename(f)
            if level is None:
                failures.append({"file": f, "reason": "not in a level<N> folder; pass --level"})
                print(f"NOT EXPRESSIBLE {f}: not in a level<N> folder; pass --level",
                      file=sys.stderr)
                continue
            stem = source.problem_stem(f, args.prefix)
            pid = f"l{level}/{stem}"
            number, rest = source.parse_name(f)
            ref = f"L{level}/{number} {os.path.splitext(os.path.basename(f))[0]}" \
                if number is not None else os.path.splitext(os.path.basename(f))[0]
            why = exclusions.excluded(level, os.path.basename(f)) if src == "kernelbench" else None
            if why:
                excluded.append({"file": f, "ref": ref, "reason": why})
                print(f"EXCLUDED {rel}: {why}", file=sys.stderr)
                continue
            try:
                res = import_file(f, registry, rel)
                origin = f"KernelBench {rel}" + (f" (commit {version[:12]})" if version else "")
                if src != "kernelbench":
                    origin = rel
                title = f"{source.human_title(f)} (KernelBench L{level}/{number})" \
                    if src == "kernelbench" and number is not None else source.human_title(f)
                text = yamlout.render(
                    res.ir, name=title, origin=origin, provenance=(src, version, ref),
                    header=f"Problem {stem} (level {level}), generated by "
                           f"tools/kernelbench_import.py from {rel}; schema: docs/problems.md")
                stage_dir = os.path.join(staging, f"level{level}")
                os.makedirs(stage_dir, exist_ok=True)
                stage = os.path.join(stage_dir, stem + ".yaml")
                with open(stage, "w", encoding="utf-8") as fh:
                    fh.write(text)
                try:
                    pj = kbench.load_problem(binary, stage)
                except kbench.KbenchError as e:
                    raise NotExpressible(f"kbench rejects the lowered problem: {e}")
                diffs = kbench.check_against(pj, res.ir)
                if diffs:
                    raise NotExpressible("kbench's shapes differ from PyTorch's: "
                                         + "; ".join(diffs[:3]))
            except NotExpressible as e:
                failures.append({"file": f, "ref": ref, "reason": str(e)})
                print(f"NOT EXPRESSIBLE {rel}: {e}", file=sys.stderr)
                continue
            except Exception as e:  # a defect of the importer: say so, keep going
                failures.append({"file": f, "ref": ref,
                                 "reason": f"importer error: {type(e).__name__}: {e}"})
                print(f"IMPORTER ERROR {rel}: {type(e).__name__}: {e}", file=sys.stderr)
                traceback.print_exc()
                continue
            out_dir = os.path.join(args.out_dir, f"level{level}")
            out = os.path.join(out_dir, stem + ".yaml")
            produced.setdefault(level, set()).add(stem + ".yaml")
            old = None
            if os.path.exists(out):
                with open(out, encoding="utf-8") as fh:
                    old = fh.read()
            status = "unchanged" if old == text else ("updated" if old is not None else "new")
            if status != "unchanged":
                changed.append(out)
                if not args.check:
                    os.makedirs(out_dir, exist_ok=True)
                    with open(out, "w", encoding="utf-8") as fh:
                        fh.write(text)
            results.append({"file": f, "ref": ref, "id": pid, "status": status,
                            "nodes": len(res.ir.nodes), "ops": sorted({n.op for n in res.ir.nodes})})
            if not args.quiet:
                print(f"{status:9} {pid:70} {rel}")
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    stale = []
    if args.prune or args.check:
        pat = re.compile(rf"^{re.escape(args.prefix)}\d{{3}}_.*\.yaml$")
        for level, names in sorted(produced.items()):
            d = os.path.join(args.out_dir, f"level{level}")
            for fn in sorted(os.listdir(d)):
                if pat.match(fn) and fn not in names:
                    stale.append(os.path.join(d, fn))
        if args.prune and not args.check:
            for p in stale:
                os.remove(p)
    if args.report:
        with open(args.report, "w", encoding="utf-8") as fh:
            json.dump({"kernelbench_commit": version, "imported": results, "not_expressible":
                       failures, "excluded": excluded, "changed": changed, "stale": stale}, fh,
                      indent=1)
            fh.write("\n")
    n_ok = len(results)
    print(f"{n_ok} imported ({len(changed)} {'would change' if args.check else 'written'}), "
          f"{len(failures)} not expressible" + (f", {len(excluded)} excluded" if excluded else "")
          + (f", {len(stale)} stale" if stale else ""),
          file=sys.stderr)
    if args.check and (changed or (args.prune and stale)):
        return 1
    return 1 if failures else 0
