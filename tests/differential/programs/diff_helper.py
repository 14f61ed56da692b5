"""A helper module imported by sibling_import.py."""
import os

GREETING = "hello from diff_helper"


def where():
    return os.path.basename(__file__), __name__


def double(x):
    return 2 * x
