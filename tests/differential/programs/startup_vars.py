# Variables CPython reads only at start-up, from the caller's environment.
import sys
import warnings
print(hash("abc"), sys.flags.hash_randomization, sys.flags.int_max_str_digits, sys.flags.dev_mode)
print(sys.flags.dont_write_bytecode, sys.dont_write_bytecode, sys.warnoptions)
print([f[0] for f in warnings.filters][:3])
try:
    int("1" * 700)
except ValueError as e:
    print(e)
warnings.warn("shown once", DeprecationWarning)
