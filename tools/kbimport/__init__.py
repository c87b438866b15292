"""Importer of KernelBench-format problem files into kbench problem YAML (docs/problems.md,
"Importing KernelBench-format problems"). Entry points: tools/kernelbench_import.py and
tools/kernelbench_proof.py."""
