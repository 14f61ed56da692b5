# SIGINT sent to itself: KeyboardInterrupt in the main thread, caught, then uncaught.
import os
import signal
import time
try:
    os.kill(os.getpid(), signal.SIGINT)
    time.sleep(5)
except KeyboardInterrupt:
    print("caught KeyboardInterrupt")
signal.signal(signal.SIGINT, lambda s, f: print("handler", s))
os.kill(os.getpid(), signal.SIGINT)
time.sleep(0.1)
print("end")
