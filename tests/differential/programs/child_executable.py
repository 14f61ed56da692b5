# A python child started with sys.executable.
import subprocess
import sys
r = subprocess.run([sys.executable, "-c", "import sys; print('child', sys.argv[1:]); sys.exit(5)", "a"],
                   capture_output=True, text=True)
print(repr(r.stdout), repr(r.stderr), r.returncode)
print("parent before", flush=True)
r = subprocess.run([sys.executable, "-c", "import sys; print('child out'); print('child err', file=sys.stderr)"])
print("parent after", r.returncode)
out = subprocess.check_output([sys.executable, "-c", "import sys; print(sys.stdin.read().upper())"], input=b"piped in")
print(out)
