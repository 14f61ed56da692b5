# PYTHONHASHSEED from the caller's environment.
import sys
print(hash("abc"), hash(b"xyz"), sys.flags.hash_randomization)
print(list({"a", "b", "c", "d", "e"}) == list({"a", "b", "c", "d", "e"}))
