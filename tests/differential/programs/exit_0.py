# sys.exit(0)
import sys
print("out")
sys.exit(0)
