# sys.stdout.write(None): python3's TypeError message.
import sys
try:
    sys.stdout.write(None)
except TypeError as e:
    print("caught:", e)
try:
    sys.stderr.write(5)
except TypeError as e:
    print("caught:", e)
try:
    sys.stdout.buffer.write("str")
except TypeError as e:
    print("caught:", e)
sys.stdout.write(None)
