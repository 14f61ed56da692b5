# Non-daemon threads still running when the main code ends: python3 waits for them.
import sys
import threading
import time


def work(n):
    for i in range(3):
        time.sleep(0.05 * (n + 1))
        sys.stdout.write(f"T{n}: step {i}\n")
    sys.stdout.write(f"T{n}: done\n")


for n in range(3):
    threading.Thread(target=work, args=(n,)).start()
print("main: end of main code")
