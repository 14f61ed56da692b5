# PYTHONIOENCODING from the caller's environment.
import sys
print(sys.stdout.encoding, sys.stdout.errors)
print("caf\u00e9 \u20ac \u2603")
print("to stderr \u20ac", file=sys.stderr)
