# sys.exit(-1): 255
import sys
sys.exit(-1)
