# PYTHONWARNINGS with entries python3 ignores: its "Invalid -W option ignored" lines come
# first on stderr; the valid entry applies.
import sys
import warnings
print(sys.warnoptions)
warnings.warn("ignored by the valid entry")
print("done", file=sys.stderr)
