# PYTHONPATH from the caller's environment.
import sys
import ppmod
print(ppmod.VALUE)
print(any(p.endswith("pp_lib") for p in sys.path))
