# sys.exit("message"): the message on stderr, exit code 1
import sys
print("out")
sys.exit("message")
