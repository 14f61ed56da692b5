# sys.exit(256): the status is 256 & 0xff
import sys
print("out")
sys.exit(256)
