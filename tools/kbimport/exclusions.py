"""KernelBench problems the importer does not write although it can express them: their output
does not depend on the input at all, so any constant kernel passes (docs/problems.md, "Degenerate
problems", has the measurements). Keyed by (level, file name); applies to source kernelbench only.
"""

EXCLUDED = {
    (2, "80_Gemm_Max_Subtract_GELU.py"): (
        "degenerate: the output is 0 for every input (max over dim 1 with keepdim leaves one "
        "column, minus its own mean is 0, and gelu(0) = 0); the degenerate screen measured it "
        "near-constant across seeds and 100% within tolerance of zero"
    ),
}


def excluded(level, file_name):
    """The reason a KernelBench file is excluded, else None."""
    return EXCLUDED.get((level, file_name))
