# atexit handlers run after an uncaught exception's traceback too.
import atexit
atexit.register(print, "atexit ran")
print("before")
raise RuntimeError("boom")
