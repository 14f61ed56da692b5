# sys.exit with an object that is not an int: printed, exit code 1
import sys
sys.exit(["a", 1])
