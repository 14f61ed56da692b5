# A segmentation fault: the process dies of SIGSEGV.
import ctypes
print("about to crash", flush=True)
ctypes.string_at(0)
print("not reached")
