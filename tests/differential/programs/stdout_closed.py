# Writing after sys.stdout.close().
import sys
print("before close")
sys.stdout.close()
try:
    print("after close")
except ValueError as e:
    sys.stderr.write(f"ValueError: {e}\n")
