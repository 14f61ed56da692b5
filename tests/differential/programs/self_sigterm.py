# The program kills itself with SIGTERM: it dies of the signal.
import os
import signal
print("before kill", flush=True)
os.kill(os.getpid(), signal.SIGTERM)
import time
time.sleep(5)
print("not reached")
