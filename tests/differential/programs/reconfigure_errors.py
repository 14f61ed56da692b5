# sys.stdout.reconfigure() is honoured.
import sys
sys.stdout.reconfigure(encoding="ascii", errors="replace")
print("caf\u00e9 \u2603")
sys.stdout.reconfigure(errors="backslashreplace")
print("caf\u00e9 \u2603")
sys.stdout.reconfigure(errors="ignore")
print("caf\u00e9 \u2603")
print(sys.stdout.encoding, sys.stdout.errors)
sys.stdout.reconfigure(encoding="utf-8", errors="strict")
print("caf\u00e9 \u2603")
print("lone \udcff")
