"""The one error of the importer: a construct of a KernelBench-format file that kbench's problem
format or op library cannot express. Its message names the missing op or construct."""


class NotExpressible(Exception):
    """A file (or one of its ops) that kbench cannot express; the message says what is missing."""
