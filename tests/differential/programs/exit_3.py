# sys.exit(3)
import sys
print("out")
sys.exit(3)
