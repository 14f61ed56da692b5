# The caller's environment.
import os
print("DIFF_EXTRA =", os.environ.get("DIFF_EXTRA"))
print("DIFF_CASE =", os.environ.get("DIFF_CASE"))
print("PYTHONUNBUFFERED" in os.environ)
print(os.getenv("DIFF_MISSING", "default"))
print(sorted(k for k in os.environ if k.startswith("DIFF_")))
os.environ["DIFF_SET_HERE"] = "x"
print(os.environ["DIFF_SET_HERE"], os.getenv("DIFF_SET_HERE"))
