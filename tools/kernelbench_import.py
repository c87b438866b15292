#!/usr/bin/env python3
"""Imports KernelBench-format problem files (a Python file with Model, get_inputs() and
get_init_inputs(), as in KernelBench/level{1,2,3}/*.py) as kbench problem YAML.

Each file's Model is built with get_init_inputs() (in training mode, as KernelBench builds it),
get_inputs() and forward() are traced with torch.fx at the file's shapes (on the 'meta' device:
nothing of the problem's size is allocated), and the trace is lowered to the ops of the kbench
binary's registry. Every YAML is loaded by `kbench problem` before it is written, and kbench's
inferred shapes must equal PyTorch's. A file that kbench cannot express is reported with the
missing op or construct; the others are still written, and the exit status is then 1.

Usage (from the repository root; needs PyTorch, a built build/bin/kbench):
  tools/kernelbench_import.py /path/to/KernelBench                 # every level, into levels/
  tools/kernelbench_import.py --kernelbench-commit HASH KernelBench/level1
  tools/kernelbench_import.py --level 2 --out-dir my_levels my_problem.py
  tools/kernelbench_import.py --check /path/to/KernelBench         # exit 1 if any YAML would change

Output: <out-dir>/level<N>/kb<NNN>_<name>.yaml (23_Softmax.py -> level1/kb023_softmax.yaml, problem
id l1/kb023_softmax), provenance {source: kernelbench, version: <commit>, ref: "L1/23 23_Softmax"}.
Files without a KernelBench commit get source kbench. Re-running on the same files rewrites no byte.
Exit status: 0 all imported, 1 some file not expressible (or, with --check, some YAML would
change), 2 usage error. docs/problems.md ("Importing KernelBench-format problems") has the details.
"""
import os
import sys


def _reexec_with_torch():
    """Runs this script under an interpreter that has PyTorch (/usr/bin/python3 on Debian) when
    the current one lacks it."""
    try:
        import torch  # noqa: F401

        return
    except ImportError:
        pass
    alt = os.environ.get("KB_TORCH_PYTHON", "/usr/bin/python3")
    if os.environ.get("KB_IMPORT_REEXEC") or not os.path.exists(alt) or os.path.realpath(
            alt) == os.path.realpath(sys.executable):
        sys.exit("kernelbench_import: PyTorch is not importable (set KB_TORCH_PYTHON to a Python "
                 "that has it)")
    os.environ["KB_IMPORT_REEXEC"] = "1"
    os.execv(alt, [alt] + sys.argv)


if __name__ == "__main__":
    _reexec_with_torch()
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from kbimport.cli import main

    sys.exit(main())
